package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

const usersUsage = `usage: idp users <command> --config FILE [flags] LOGIN_ID

commands (for the support centre):
  create LOGIN_ID --email ADDR [--name NAME]   new user with a temporary password (printed once)
  show LOGIN_ID                                status, passkeys, last use
  reset-password LOGIN_ID                      issue a new temporary password (仮パスワード), printed once
  delete-passkeys LOGIN_ID [--id CREDENTIAL]   lost device: delete one or all passkeys (server side only)
  lock LOGIN_ID | unlock LOGIN_ID
  delete LOGIN_ID --yes                        delete the user and everything they own
`

// usersCmd carries what every users subcommand needs.
type usersCmd struct {
	store  *sqlstore.Store
	params password.Params
	actor  string
	out    io.Writer
}

func cmdUsers(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usersUsage)
		return flag.ErrHelp
	}
	sub := args[0]
	var cf configFlags
	fs := newFlagSet("idp users "+sub, stderr)
	cf.register(fs)
	email := fs.String("email", "", "registered e-mail address 1 (create)")
	name := fs.String("name", "", "display name (create)")
	credID := fs.String("id", "", "credential ID (base64url) of the one passkey to delete")
	yes := fs.Bool("yes", false, "confirm an irreversible delete")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, usersUsage)
		return fmt.Errorf("users %s needs exactly one LOGIN_ID", sub)
	}
	loginID := fs.Arg(0)
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.Database, newLogger(stderr, cf.logFormat, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	u := &usersCmd{
		store:  store,
		params: password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism},
		actor:  "staff:" + operatorName(),
		out:    stdout,
	}
	switch sub {
	case "create":
		return u.create(ctx, loginID, *email, *name)
	case "show":
		return u.show(ctx, loginID)
	case "reset-password":
		return u.resetPassword(ctx, loginID)
	case "delete-passkeys":
		return u.deletePasskeys(ctx, loginID, *credID)
	case "lock", "unlock":
		return u.setLocked(ctx, loginID, sub == "lock")
	case "delete":
		if !*yes {
			return fmt.Errorf("deleting %s cannot be undone: repeat with --yes", loginID)
		}
		return u.delete(ctx, loginID)
	default:
		fmt.Fprint(stderr, usersUsage)
		return fmt.Errorf("unknown users command %q", sub)
	}
}

func (u *usersCmd) user(ctx context.Context, loginID string) (*storage.User, error) {
	usr, err := u.store.UserByLoginID(ctx, loginID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("no user with login ID %q", loginID)
	}
	return usr, err
}

func (u *usersCmd) audit(ctx context.Context, typ, userID string, detail map[string]string) error {
	return u.store.AppendAudit(ctx, &storage.AuditEvent{Time: time.Now().UTC(), Type: typ, Actor: u.actor, UserID: userID, Detail: detail})
}

func (u *usersCmd) create(ctx context.Context, loginID, email, name string) error {
	if strings.TrimSpace(loginID) != loginID || loginID == "" || len(loginID) > 64 {
		return fmt.Errorf("login ID must be 1..64 characters without surrounding spaces")
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return fmt.Errorf("--email must be a plain e-mail address, got %q", email)
	}
	temp := temporaryPassword()
	hash, err := password.Hash(u.params, temp)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	usr := &storage.User{ID: rand.Text(), LoginID: loginID, Email: email, DisplayName: name, PasswordHash: hash,
		PasswordTemporary: true, CreatedAt: now, UpdatedAt: now}
	if err := u.store.CreateUser(ctx, usr); errors.Is(err, storage.ErrAlreadyExists) {
		return fmt.Errorf("login ID %q is already taken", loginID)
	} else if err != nil {
		return err
	}
	if err := u.audit(ctx, "user.created", usr.ID, map[string]string{"login_id": loginID}); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "created %s (%s)\ntemporary password (仮パスワード), tell the customer by a separate channel: %s\n", loginID, email, temp)
	return nil
}

func (u *usersCmd) show(ctx context.Context, loginID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	creds, err := u.store.CredentialsByUser(ctx, usr.ID)
	if err != nil {
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
		usr.LoginID, usr.ID, usr.Email, usr.DisplayName, status, pw, usr.CreatedAt.Format(time.RFC3339), len(creds))
	for _, c := range creds {
		last := "never"
		if c.LastUsedAt != nil {
			last = c.LastUsedAt.Format(time.RFC3339)
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
			base64.RawURLEncoding.EncodeToString(c.ID), c.Name, kind, c.CreatedAt.Format(time.RFC3339), last, warn)
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
		return err
	}
	if err := u.store.UpdatePassword(ctx, usr.ID, hash, true); err != nil {
		return err
	}
	if err := u.store.DeleteUserSessions(ctx, usr.ID); err != nil {
		return err
	}
	if err := u.audit(ctx, "password.temporary_issued", usr.ID, nil); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "issued a temporary password for %s; their sessions are ended\ntemporary password (仮パスワード): %s\n", loginID, temp)
	return nil
}

func (u *usersCmd) deletePasskeys(ctx context.Context, loginID, credID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if credID != "" {
		id, err := base64.RawURLEncoding.DecodeString(credID)
		if err != nil {
			return fmt.Errorf("--id must be a base64url credential ID as printed by `idp users show`")
		}
		if err := u.store.DeleteCredential(ctx, usr.ID, id); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%s has no passkey %s", loginID, credID)
		} else if err != nil {
			return err
		}
		if err := u.audit(ctx, "passkey.deleted", usr.ID, map[string]string{"credential_id": credID}); err != nil {
			return err
		}
		fmt.Fprintf(u.out, "deleted passkey %s of %s (the copy on the customer's device stays; it no longer works here)\n", credID, loginID)
	} else {
		n, err := u.store.DeleteUserCredentials(ctx, usr.ID)
		if err != nil {
			return err
		}
		if err := u.audit(ctx, "passkey.deleted_all", usr.ID, map[string]string{"count": fmt.Sprint(n)}); err != nil {
			return err
		}
		fmt.Fprintf(u.out, "deleted %d passkey(s) of %s (copies on devices stay; they no longer work here)\n", n, loginID)
	}
	left, err := u.store.CountCredentials(ctx, usr.ID)
	if err != nil {
		return err
	}
	if left == 0 {
		fmt.Fprintln(u.out, "no passkey left: the customer signs in with ID + password and can register a passkey again with 「パスキー初回登録」")
	}
	return nil
}

func (u *usersCmd) setLocked(ctx context.Context, loginID string, locked bool) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if err := u.store.SetUserLocked(ctx, usr.ID, locked); err != nil {
		return err
	}
	typ, verb := "user.unlocked", "unlocked"
	if locked {
		typ, verb = "user.locked", "locked"
		if err := u.store.DeleteUserSessions(ctx, usr.ID); err != nil {
			return err
		}
		if err := u.store.RevokeUserTokens(ctx, usr.ID, "", time.Now()); err != nil {
			return err
		}
	}
	if err := u.audit(ctx, typ, usr.ID, nil); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "%s %s\n", verb, loginID)
	return nil
}

func (u *usersCmd) delete(ctx context.Context, loginID string) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if err := u.store.DeleteUser(ctx, usr.ID); err != nil {
		return err
	}
	if err := u.audit(ctx, "user.deleted", usr.ID, map[string]string{"login_id": loginID}); err != nil {
		return err
	}
	fmt.Fprintf(u.out, "deleted %s with their passkeys, sessions and tokens\n", loginID)
	return nil
}

// temporaryPassword is 12 characters from an alphabet without look-alikes,
// easy to read out over the phone.
func temporaryPassword() string {
	const alphabet = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
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
