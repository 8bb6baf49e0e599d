package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"os/user"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/storage/sqlstore"
)

const usersUsage = `usage: idp users <command> --config FILE [flags] ARG

commands (for the support centre):
  create LOGIN_ID --email ADDR [--name NAME]   new user with a temporary password (printed once)
  show LOGIN_ID                                status, passkeys, last logins
  reset-password LOGIN_ID                      issue a new temporary password (仮パスワード), printed once
  delete-passkeys LOGIN_ID [--id CREDENTIAL]   lost device: delete one or all passkeys (server side only)
  enrolment-link LOGIN_ID [--print]            mail a single-use link to register a passkey (lost
                                               device; or print it with --print); supersedes older links
  lock LOGIN_ID | unlock LOGIN_ID
  delete LOGIN_ID --yes                        delete the user and everything they own
  import FILE.csv | -                          import users from CSV (header: login_id,email,
                                               display_name,temporary_password,password_hash)

reset-password, delete-passkeys, lock and delete also end every session of the
customer and revoke the tokens relying parties hold (the output says how many).
Every command is recorded in the audit trail as staff:$IDP_OPERATOR (or the OS user).
`

// jst is the support centre's time zone; a fixed offset needs no tzdata.
var jst = time.FixedZone("JST", 9*60*60)

// maxLoginIDLen bounds login IDs; the login pages accept no longer ones.
const maxLoginIDLen = 64

// usersCmd carries what every users subcommand needs.
type usersCmd struct {
	store  *sqlstore.Store
	params password.Params
	actor  audit.Actor
	rec    *audit.Recorder
	out    io.Writer
	logger *slog.Logger
}

func cmdUsers(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		fmt.Fprint(stderr, usersUsage)
		return usagef("users: missing command (create, show, reset-password, delete-passkeys, enrolment-link, lock, unlock, delete, import)")
	}
	sub := args[0]
	switch sub {
	case "create", "show", "reset-password", "delete-passkeys", "enrolment-link", "lock", "unlock", "delete", "import":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usersUsage)
		return nil
	default:
		fmt.Fprint(stderr, usersUsage)
		return usagef("unknown users command %q", sub)
	}
	var cf configFlags
	fs := newFlagSet("idp users "+sub, stderr)
	cf.register(fs)
	// Each command knows only its own flags, so a misplaced one (say
	// --email on reset-password) is refused instead of silently ignored.
	var email, name, credID string
	var yes, printLink bool
	switch sub {
	case "create":
		fs.StringVar(&email, "email", "", "registered e-mail address 1 (required)")
		fs.StringVar(&name, "name", "", "display name")
	case "delete-passkeys":
		fs.StringVar(&credID, "id", "", "credential ID (base64url, as `idp users show` prints it) of the one passkey to delete")
	case "delete":
		fs.BoolVar(&yes, "yes", false, "confirm the irreversible delete")
	case "enrolment-link":
		fs.BoolVar(&printLink, "print", false, "print the link instead of mailing it to address 1")
	}
	positional, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		what := "LOGIN_ID"
		if sub == "import" {
			what = "FILE (or - for standard input)"
		}
		return usagef("users %s needs exactly one %s, got %d arguments", sub, what, len(positional))
	}
	arg := positional[0]
	if sub == "delete" && !yes {
		return fmt.Errorf("deleting %s cannot be undone: repeat with --yes", arg)
	}
	logger := newLogger(stderr, cf.logFormat, slog.LevelInfo)
	cfg, store, err := openStore(ctx, &cf, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	u := &usersCmd{
		store:  store,
		params: password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism},
		actor:  audit.Staff(operatorName()),
		rec:    audit.NewRecorder(store, logger),
		out:    stdout,
		logger: logger,
	}
	switch sub {
	case "create":
		return u.create(ctx, arg, email, name)
	case "show":
		return u.show(ctx, arg)
	case "reset-password":
		return u.resetPassword(ctx, arg)
	case "delete-passkeys":
		return u.deletePasskeys(ctx, arg, credID)
	case "enrolment-link":
		return u.enrolmentLink(ctx, cfg, arg, printLink)
	case "lock", "unlock":
		return u.setLocked(ctx, arg, sub == "lock")
	case "delete":
		return u.delete(ctx, arg)
	default: // "import"
		return u.importFile(ctx, arg, stdin)
	}
}

func (u *usersCmd) user(ctx context.Context, loginID string) (*storage.User, error) {
	usr, err := u.store.UserByLoginID(ctx, loginID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("no user with login ID %q", loginID)
	}
	if err != nil {
		return nil, fmt.Errorf("look up %q: %w", loginID, err)
	}
	return usr, nil
}

// audit records a staff action on usr in the keyed trail and in the
// structured log, whose line also names the login ID acted on.
func (u *usersCmd) audit(ctx context.Context, ev audit.Event, usr *storage.User, detail audit.Detail) error {
	return u.rec.With("login_id", usr.LoginID).Record(ctx, ev, audit.Entry{
		Actor: u.actor, UserID: usr.ID, UserAgent: "idp-cli", Detail: detail,
	})
}

// validateLoginID is shared by create and import so both accept the same IDs.
func validateLoginID(loginID string) error {
	if loginID == "" || strings.TrimSpace(loginID) != loginID || len(loginID) > maxLoginIDLen {
		return fmt.Errorf("login ID must be 1..%d characters without surrounding spaces", maxLoginIDLen)
	}
	// The login form refuses what unicode.IsControl calls a control
	// character (C1 included): such an ID could never sign in.
	if !utf8.ValidString(loginID) || strings.ContainsFunc(loginID, unicode.IsControl) {
		return fmt.Errorf("login ID must not contain control characters")
	}
	return nil
}

// validateDisplayName keeps control characters out of the name ID tokens
// carry; NUL would also make PostgreSQL refuse the user halfway through an
// import. Line breaks and tabs (a quoted CSV field may hold them) may stay.
func validateDisplayName(name string) error {
	if !utf8.ValidString(name) || strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t'
	}) {
		return fmt.Errorf("display name must not contain control characters other than line breaks and tabs")
	}
	return nil
}

func validateEmail(email string) error {
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return fmt.Errorf("e-mail address %q is not a plain address like name@example.com", email)
	}
	return nil
}

func (u *usersCmd) create(ctx context.Context, loginID, email, name string) error {
	if err := validateLoginID(loginID); err != nil {
		return err
	}
	if email == "" {
		return fmt.Errorf("--email is required: the one-time passwords go there")
	}
	if err := validateEmail(email); err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	if err := validateDisplayName(name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	temp := temporaryPassword()
	hash, err := password.Hash(u.params, temp)
	if err != nil {
		return fmt.Errorf("hash temporary password: %w", err)
	}
	now := time.Now().UTC()
	usr := &storage.User{ID: rand.Text(), LoginID: loginID, Email: email, DisplayName: name, PasswordHash: hash,
		PasswordTemporary: true, CreatedAt: now, UpdatedAt: now}
	if err := u.store.CreateUser(ctx, usr); errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("login ID %q is already taken", loginID)
	} else if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	if err := u.audit(ctx, audit.UserCreated, usr, audit.Detail{audit.KeyLoginID: loginID}); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "created %s (%s)\ntemporary password (仮パスワード), tell the customer by a separate channel: %s\n", loginID, email, temp)
	return nil
}

// lastLoginsShown is how many recent login attempts show prints.
const lastLoginsShown = 5

func (u *usersCmd) show(ctx context.Context, loginID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	creds, err := u.store.CredentialsByUser(ctx, usr.ID)
	if err != nil {
		return fmt.Errorf("list passkeys: %w", err)
	}
	logins, err := lastAuditEvents(ctx, u.store, lastLoginsShown, func(e *storage.AuditEvent) bool {
		return e.UserID == usr.ID && (e.Type == audit.LoginSuccess.String() || e.Type == audit.LoginFailure.String())
	})
	if err != nil {
		return err
	}
	// Reading a customer's record is an action too: the trail shows who
	// looked at whom, before anything is printed.
	if err := u.audit(ctx, audit.UserViewed, usr, nil); err != nil {
		return err
	}
	status := "active"
	if usr.Locked {
		status = "LOCKED"
	}
	pw := "set"
	if usr.PasswordTemporary {
		pw = "temporary (仮パスワード): must be changed at next login"
	}
	fmt.Fprintf(u.out, "login ID:  %s\nuser ID:   %s\ne-mail 1:  %s\nname:      %s\nstatus:    %s\npassword:  %s\ncreated:   %s\npasskeys:  %d\n",
		usr.LoginID, usr.ID, usr.Email, usr.DisplayName, status, pw, usr.CreatedAt.In(jst).Format(time.DateTime+" MST"), len(creds))
	for _, c := range creds {
		last := "never"
		if c.LastUsedAt != nil {
			last = c.LastUsedAt.In(jst).Format(time.DateTime + " MST")
		}
		kind := "this device only"
		if c.BackupEligible {
			kind = "synced"
		}
		warn := ""
		if c.CloneWarning {
			warn = "  CLONE WARNING (sign counter went back)"
		}
		fmt.Fprintf(u.out, "  - %s  %q  %s, created %s, last used %s%s\n",
			base64.RawURLEncoding.EncodeToString(c.ID), c.Name, kind, c.CreatedAt.In(jst).Format(time.DateTime+" MST"), last, warn)
	}
	fmt.Fprintf(u.out, "last logins: %d\n", len(logins))
	for _, e := range logins {
		result := "success"
		if e.Type == "login.failure" {
			result = "FAILED (" + e.Detail["reason"] + ")"
		}
		if m := e.Detail["method"]; m != "" {
			result += " by " + m
		}
		if amr := e.Detail["amr"]; amr != "" && e.Type == "login.success" {
			result += " " + amr
		}
		fmt.Fprintf(u.out, "  - %s  %s  ip %s  %s\n", e.Time.In(jst).Format(time.DateTime+" MST"), result, orDash(e.IP), orDash(e.UserAgent))
	}
	return nil
}

func (u *usersCmd) resetPassword(ctx context.Context, loginID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	temp := temporaryPassword()
	hash, err := password.Hash(u.params, temp)
	if err != nil {
		return fmt.Errorf("hash temporary password: %w", err)
	}
	if err := u.store.UpdatePassword(ctx, usr.ID, hash, true); err != nil {
		return fmt.Errorf("store temporary password: %w", err)
	}
	// Whoever holds a session or a token may be the one the customer lost
	// control to.
	ended, err := u.endAccess(ctx, usr, audit.PasswordTemporaryIssued, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(u.out, "issued a temporary password for %s; %s\ntemporary password (仮パスワード): %s\n", loginID, ended, temp)
	return nil
}

func (u *usersCmd) deletePasskeys(ctx context.Context, loginID, credID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if credID != "" {
		id, err := base64.RawURLEncoding.DecodeString(credID)
		if err != nil || len(id) == 0 {
			return fmt.Errorf("--id must be a base64url credential ID as printed by `idp users show`")
		}
		if err := u.store.DeleteCredential(ctx, usr.ID, id); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s has no passkey %s", loginID, credID)
		} else if err != nil {
			return fmt.Errorf("delete passkey: %w", err)
		}
		// The lost device may still hold a session or an RP's tokens.
		ended, err := u.endAccess(ctx, usr, audit.PasskeyDeleted, audit.Detail{audit.KeyCredential: audit.Credential(id)})
		if err != nil {
			return err
		}
		fmt.Fprintf(u.out, "deleted passkey %s of %s (the copy on the customer's device stays; it no longer works here); %s\n", credID, loginID, ended)
	} else {
		n, err := u.store.DeleteUserCredentials(ctx, usr.ID)
		if err != nil {
			return fmt.Errorf("delete passkeys: %w", err)
		}
		ended, err := u.endAccess(ctx, usr, audit.PasskeyDeletedAll, audit.Detail{audit.KeyCount: fmt.Sprint(n)})
		if err != nil {
			return err
		}
		fmt.Fprintf(u.out, "deleted %d passkey(s) of %s (copies on devices stay; they no longer work here); %s\n", n, loginID, ended)
	}
	left, err := u.store.CountCredentials(ctx, usr.ID)
	if err != nil {
		return fmt.Errorf("count passkeys: %w", err)
	}
	if left == 0 {
		fmt.Fprintln(u.out, "no passkey left: the customer signs in with ID + password and can register a passkey again with 「パスキー初回登録」")
	} else {
		fmt.Fprintf(u.out, "%d passkey(s) left\n", left)
	}
	return nil
}

func (u *usersCmd) setLocked(ctx context.Context, loginID string, locked bool) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if err := u.store.SetUserLocked(ctx, usr.ID, locked); err != nil {
		return fmt.Errorf("set locked: %w", err)
	}
	if !locked {
		if err := u.audit(ctx, audit.UserUnlocked, usr, nil); err != nil {
			return err
		}
		fmt.Fprintf(u.out, "unlocked %s\n", loginID)
		return nil
	}
	ended, err := u.endAccess(ctx, usr, audit.UserLocked, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(u.out, "locked %s: %s, no login until unlocked\n", loginID, ended)
	return nil
}

func (u *usersCmd) delete(ctx context.Context, loginID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	// DeleteUser removes the sessions and tokens too; ending them first
	// only tells the trail how many there were.
	e, err := u.store.EndUserAccess(ctx, usr.ID, "", time.Now())
	if err != nil {
		return fmt.Errorf("end sessions and tokens: %w", err)
	}
	ended := accessEnded(e)
	if err := u.store.DeleteUser(ctx, usr.ID); err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	detail := audit.Detail{audit.KeyLoginID: loginID}.WithAccessEnded(e)
	if err := u.audit(ctx, audit.UserDeleted, usr, detail); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "deleted %s with their passkeys; %s\n", loginID, ended)
	return nil
}

// accessEnded is what EndUserAccess ended, as the CLI and the trail say it.
type accessEnded storage.AccessEnded

func (a accessEnded) String() string {
	return fmt.Sprintf("ended %d session(s), revoked %d refresh token(s) and %d access token(s)", a.Sessions, a.RefreshTokens, a.AccessTokens)
}

// endAccess signs usr out of every browser and relying party after the
// staff action ev, then audits ev with detail and what ended. The action
// is already done, so it is audited even when ending access fails (the
// recorder logs a failed append; the ending's error is the one returned).
func (u *usersCmd) endAccess(ctx context.Context, usr *storage.User, ev audit.Event, detail audit.Detail) (accessEnded, error) {
	if detail == nil {
		detail = audit.Detail{}
	}
	ended, err := u.store.EndUserAccess(ctx, usr.ID, "", time.Now())
	if err != nil {
		detail[audit.KeyAccessEnded] = "failed"
		_ = u.audit(ctx, ev, usr, detail)
		return accessEnded{}, fmt.Errorf("%s is done, but ending the sessions and tokens failed (`idp users lock %s` ends them): %w", ev, usr.LoginID, err)
	}
	return accessEnded(ended), u.audit(ctx, ev, usr, detail.WithAccessEnded(ended))
}

// temporaryPassword is 12 characters from an alphabet without look-alikes,
// easy to read out over the phone.
func temporaryPassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
	// Bytes at or above the largest multiple of len(alphabet) are drawn
	// again, so every character is equally likely.
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, 12)
	var b [1]byte
	for len(out) < cap(out) {
		rand.Read(b[:]) // crypto/rand.Read never fails
		if int(b[0]) < limit {
			out = append(out, alphabet[int(b[0])%len(alphabet)])
		}
	}
	return string(out)
}

func operatorName() string {
	if n := os.Getenv("IDP_OPERATOR"); n != "" {
		return n
	}
	if cur, err := user.Current(); err == nil {
		return cur.Username
	}
	return "unknown"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
