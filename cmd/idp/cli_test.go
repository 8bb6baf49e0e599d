package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

// testConfig is the smallest config the loader accepts; %s is the database.
const testConfig = `
issuer: https://id.example.com
listen: 127.0.0.1:0
database: %q
crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
smtp: {host: smtp.example.com, username: u, password: p}
clients:
  - id: web
    secret_hash: $2a$10$abcdefghijklmnopqrstuu5W1eTu8C9cZp5M9aQxQ6mP1lWcE4b6y
    redirect_uris: [https://www.example.com/cb]
  - id: app
    secret_hash: $2a$10$abcdefghijklmnopqrstuu5W1eTu8C9cZp5M9aQxQ6mP1lWcE4b6y
    redirect_uris: [https://app.example.com/cb]
`

// cli runs the idp command line against one fresh database, as a support
// operator named "tester" would.
type cli struct {
	t      *testing.T
	config string
	store  *sqlstore.Store // a second connection, to look behind the CLI's back
}

type result struct {
	stdout, stderr string
	err            error
}

func (r result) status() int { return exitStatus(r.err) }

func newCLI(t *testing.T, flavor string) *cli {
	t.Helper()
	dsn := storagetest.DSN(t, flavor)
	config := writeConfig(t, dsn)
	cfg, err := (&configFlags{path: config}).load()
	if err != nil {
		t.Fatal(err)
	}
	key, err := server.AuditKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The deployment's audit key, so that what the test appends verifies.
	return &cli{t: t, config: config, store: storagetest.Open(t, dsn).WithAuditKey(key)}
}

func writeConfig(t *testing.T, dsn string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idp.yaml")
	body := strings.Replace(testConfig, "%q", `"`+dsn+`"`, 1)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs idp with args plus --config, feeding stdin.
func (c *cli) runIn(stdin string, args ...string) result {
	c.t.Helper()
	c.t.Setenv("IDP_OPERATOR", "tester")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, append(args, "--config", c.config), strings.NewReader(stdin), &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), err: err}
}

func (c *cli) run(args ...string) result { c.t.Helper(); return c.runIn("", args...) }

// ok runs a command that must succeed and returns its standard output.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.err != nil {
		c.t.Fatalf("idp %v: %v\nstdout:\n%s\nstderr:\n%s", args, r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

func (c *cli) user(loginID string) *storage.User {
	c.t.Helper()
	u, err := c.store.UserByLoginID(context.Background(), loginID)
	if err != nil {
		c.t.Fatalf("user %q: %v", loginID, err)
	}
	return u
}

func (c *cli) auditEvents() []storage.AuditEvent {
	c.t.Helper()
	events, err := c.store.ListAudit(context.Background(), 0, 0)
	if err != nil {
		c.t.Fatalf("list audit: %v", err)
	}
	return events
}

var tempPasswordRE = regexp.MustCompile(`\(仮パスワード\)[^:]*: (\S+)`)

func tempPasswordFrom(t *testing.T, stdout string) string {
	t.Helper()
	m := tempPasswordRE.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no temporary password in output:\n%s", stdout)
	}
	return m[1]
}

func mustVerify(t *testing.T, hash, pw string, want bool) {
	t.Helper()
	ok, err := password.Verify(hash, pw)
	if err != nil || ok != want {
		t.Fatalf("password.Verify(%q) = %v, %v; want %v", pw, ok, err, want)
	}
}

func TestUsersLifecycle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx := context.Background()

		out := c.ok("users", "create", "alice", "--email", "alice@example.com", "--name", "山田 花子")
		first := tempPasswordFrom(t, out)
		alice := c.user("alice")
		if !alice.PasswordTemporary || alice.Email != "alice@example.com" || alice.DisplayName != "山田 花子" {
			t.Fatalf("created user = %+v", alice)
		}
		mustVerify(t, alice.PasswordHash, first, true)

		// show: status, passkeys and the latest logins from the audit trail.
		for _, e := range []storage.AuditEvent{
			{Type: "login.failure", Actor: "user:" + alice.ID, UserID: alice.ID, IP: "203.0.113.7", UserAgent: "Safari", Detail: map[string]string{"reason": "credentials", "method": "password"}},
			{Type: "otp.sent", Actor: "user:" + alice.ID, UserID: alice.ID, IP: "203.0.113.7"},
			{Type: "login.success", Actor: "user:" + alice.ID, UserID: alice.ID, IP: "203.0.113.8", UserAgent: "Chrome", Detail: map[string]string{"amr": "[pwd otp]"}},
			{Type: "login.success", Actor: "user:other", UserID: "someone-else", IP: "198.51.100.1"},
		} {
			if err := c.store.AppendAudit(ctx, &e); err != nil {
				t.Fatal(err)
			}
		}
		out = c.ok("users", "show", "alice")
		for _, want := range []string{"login ID:  alice", "e-mail 1:  alice@example.com", "status:    active",
			"temporary (仮パスワード)", "passkeys:  0", "last logins: 2",
			"FAILED (credentials) by password  ip 203.0.113.7  Safari", "success [pwd otp]  ip 203.0.113.8  Chrome"} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "198.51.100.1") || strings.Contains(out, "otp.sent") {
			t.Errorf("show lists another user's login or a non-login event:\n%s", out)
		}

		// reset-password: a new temporary password that verifies, and every session ended.
		sessionID := storage.HashSecret("alice-session-cookie")
		now := time.Now().UTC()
		if err := c.store.CreateSession(ctx, &storage.Session{ID: sessionID, UserID: alice.ID, AuthTime: now, AMR: []string{"pwd"},
			CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := c.store.UpdatePassword(ctx, alice.ID, alice.PasswordHash, false); err != nil {
			t.Fatal(err)
		}
		second := tempPasswordFrom(t, c.ok("users", "reset-password", "alice"))
		alice = c.user("alice")
		if !alice.PasswordTemporary || second == first {
			t.Fatalf("after reset: temporary=%v, same password=%v", alice.PasswordTemporary, second == first)
		}
		mustVerify(t, alice.PasswordHash, second, true)
		mustVerify(t, alice.PasswordHash, first, false)
		if _, err := c.store.SessionByID(ctx, sessionID); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("session after reset-password: err = %v, want ErrNotFound", err)
		}

		// lock and unlock.
		if out := c.ok("users", "lock", "alice"); !strings.Contains(out, "locked alice") {
			t.Errorf("lock said %q", out)
		}
		if !c.user("alice").Locked || !strings.Contains(c.ok("users", "show", "alice"), "status:    LOCKED") {
			t.Fatal("lock did not lock")
		}
		c.ok("users", "unlock", "alice")
		if c.user("alice").Locked {
			t.Fatal("unlock did not unlock")
		}

		// delete-passkeys: one by the ID that show prints, then the rest.
		for i, id := range [][]byte{{0xfb, 0xff, 1}, {2, 2, 2}, {3, 3, 3}} {
			if err := c.store.CreateCredential(ctx, &storage.Credential{ID: id, UserID: alice.ID, PublicKey: []byte{1}, AAGUID: make([]byte, 16),
				Name: "phone " + string(rune('A'+i)), BackupEligible: i == 0, CreatedAt: now}, false); err != nil {
				t.Fatal(err)
			}
		}
		out = c.ok("users", "show", "alice")
		if !strings.Contains(out, "passkeys:  3") || !strings.Contains(out, "- -_8B  \"phone A\"  synced") {
			t.Fatalf("show with passkeys:\n%s", out)
		}
		out = c.ok("users", "delete-passkeys", "alice", "--id", "-_8B")
		if !strings.Contains(out, "deleted passkey -_8B of alice") || !strings.Contains(out, "2 passkey(s) left") {
			t.Errorf("delete one said:\n%s", out)
		}
		if _, err := c.store.CredentialByID(ctx, []byte{0xfb, 0xff, 1}); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("deleted credential still there: %v", err)
		}
		r := c.run("users", "delete-passkeys", "alice", "--id", "-_8B")
		if r.status() != 1 || !strings.Contains(r.err.Error(), "alice has no passkey -_8B") {
			t.Errorf("deleting it again: status %d, %v", r.status(), r.err)
		}
		out = c.ok("users", "delete-passkeys", "alice")
		if !strings.Contains(out, "deleted 2 passkey(s) of alice") || !strings.Contains(out, "no passkey left") {
			t.Errorf("delete all said:\n%s", out)
		}
		if n, _ := c.store.CountCredentials(ctx, alice.ID); n != 0 {
			t.Fatalf("%d passkeys left after delete all", n)
		}

		// delete needs --yes, then removes the user.
		r = c.run("users", "delete", "alice")
		if r.status() != 1 || !strings.Contains(r.err.Error(), "--yes") {
			t.Fatalf("delete without --yes: status %d, %v", r.status(), r.err)
		}
		c.user("alice")
		c.ok("users", "delete", "alice", "--yes")
		if _, err := c.store.UserByLoginID(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("user after delete: %v", err)
		}

		// Every staff action is in the trail, by the operator, for the user.
		var staff []string
		for _, e := range c.auditEvents() {
			if strings.HasPrefix(e.Actor, "staff:") {
				if e.Actor != "staff:tester" || e.UserID != alice.ID {
					t.Errorf("event %s: actor %q, user %q", e.Type, e.Actor, e.UserID)
				}
				staff = append(staff, e.Type)
			}
			// The key S8's own deletion uses, so one query finds both.
			if e.Type == "passkey.deleted" && (e.Detail["credential"] != "-_8B" || e.Detail["sessions_ended"] == "") {
				t.Errorf("staff passkey.deleted detail = %v, want credential -_8B and what ended", e.Detail)
			}
		}
		want := "user.created user.viewed password.temporary_issued user.locked user.viewed user.unlocked user.viewed passkey.deleted passkey.deleted_all user.deleted"
		if got := strings.Join(staff, " "); got != want {
			t.Errorf("staff audit events:\n got %s\nwant %s", got, want)
		}
	})
}

func TestUsersAuditIsAlsoLogged(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		now := time.Now().UTC()
		if err := c.store.CreateUser(context.Background(), &storage.User{ID: "u1", LoginID: "bob", Email: "bob@example.com",
			PasswordHash: "$2a$04$xxxxxxxxxxxxxxxxxxxxxuxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		r := c.run("users", "lock", "bob")
		if r.err != nil {
			t.Fatal(r.err)
		}
		for _, want := range []string{"msg=audit", "type=user.locked", "actor=staff:tester", "user=u1", "login_id=bob"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("log line lacks %q:\n%s", want, r.stderr)
			}
		}
	})
}

func TestBadInputExitStatus(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		now := time.Now().UTC()
		if err := c.store.CreateUser(context.Background(), &storage.User{ID: "u1", LoginID: "alice", Email: "alice@example.com",
			PasswordHash: "$2a$04$xxxxxxxxxxxxxxxxxxxxxuxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			args   []string
			status int
			want   string
		}{
			{[]string{"users"}, 2, "missing command"},
			{[]string{"users", "frobnicate", "alice"}, 2, `unknown users command "frobnicate"`},
			{[]string{"users", "show"}, 2, "needs exactly one LOGIN_ID"},
			{[]string{"users", "show", "alice", "bob"}, 2, "needs exactly one LOGIN_ID"},
			{[]string{"users", "show", "alice", "--colour"}, 2, "flag provided but not defined: -colour"},
			{[]string{"users", "import"}, 2, "needs exactly one FILE"},
			{[]string{"users", "reset-password", "alice", "--email", "x@example.com"}, 2, "flag provided but not defined: -email"},
			{[]string{"users", "lock", "alice", "--yes"}, 2, "flag provided but not defined: -yes"},
			{[]string{"users", "show", "nobody"}, 1, `no user with login ID "nobody"`},
			{[]string{"users", "lock", "nobody"}, 1, `no user with login ID "nobody"`},
			{[]string{"users", "create", "bob"}, 1, "--email is required"},
			{[]string{"users", "create", "bob", "--email", "bob at example"}, 1, "--email: e-mail address"},
			{[]string{"users", "create", " bob", "--email", "bob@example.com"}, 1, "without surrounding spaces"},
			{[]string{"users", "delete-passkeys", "alice", "--id", "not base64!"}, 1, "--id must be a base64url credential ID"},
			{[]string{"users", "import", "/nonexistent/users.csv"}, 1, "open import file"},
			{[]string{"audit"}, 2, "missing command"},
			{[]string{"audit", "rewrite"}, 2, `unknown audit command "rewrite"`},
			{[]string{"audit", "list", "--limit", "many"}, 2, "invalid value"},
			{[]string{"audit", "list", "--limit", "0"}, 1, "--limit must be a positive number"},
			{[]string{"audit", "list", "--user", "nobody"}, 1, `no user with login ID "nobody", and no audit event names it`},
			{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		}
		for _, tc := range cases {
			r := c.run(tc.args...)
			if r.status() != tc.status || r.err == nil || !strings.Contains(r.err.Error(), tc.want) || strings.Contains(r.err.Error(), "\n") {
				t.Errorf("idp %v: status %d, error %v; want status %d and one line containing %q", tc.args, r.status(), r.err, tc.status, tc.want)
			}
		}
		// Nothing above may have changed the user or written audit events.
		if u := c.user("alice"); u.Locked {
			t.Error("a refused command locked alice")
		}
		if n := len(c.auditEvents()); n != 0 {
			t.Errorf("%d audit events after refused commands", n)
		}
	})
}

func TestConfigAndDatabaseErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"users", "show", "alice"}, nil, &out, &errOut)
	if exitStatus(err) != 1 || err.Error() != "--config FILE is required" {
		t.Errorf("without --config: status %d, %v", exitStatus(err), err)
	}
	// Nothing listens on port 1: the connection is refused at once.
	cfg := writeConfig(t, "postgres://app@127.0.0.1:1/idp?sslmode=disable&connect_timeout=5")
	for _, args := range [][]string{{"users", "show", "alice"}, {"audit", "verify"}} {
		err = run(context.Background(), append(args, "--config", cfg), nil, &out, &errOut)
		if exitStatus(err) != 1 || !strings.Contains(err.Error(), "database unreachable") || strings.Contains(err.Error(), "\n") {
			t.Errorf("idp %v with the database down: status %d, %v", args, exitStatus(err), err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("issuer: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), []string{"audit", "verify", "--config", bad}, nil, &out, &errOut)
	if exitStatus(err) != 1 || !strings.Contains(err.Error(), "config "+bad) {
		t.Errorf("broken config: status %d, %v", exitStatus(err), err)
	}
}

// lockedBuffer is a bytes.Buffer that a running server may write its log to
// while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
