package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func writeCSV(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// legacyHashes are what the previous system exported: cheap parameters keep
// the test fast, Verify reads them from the hash itself.
func legacyHashes(t *testing.T) (argon, bcryptHash string) {
	t.Helper()
	argon, err := password.Hash(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, "ken-old-secret")
	if err != nil {
		t.Fatal(err)
	}
	b, err := bcrypt.GenerateFromPassword([]byte("old-system-secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return argon, string(b)
}

func (c *cli) userCount() int {
	c.t.Helper()
	users, err := c.store.ListUsers(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	return len(users)
}

func (c *cli) countAudit(typ string) int {
	n := 0
	for _, e := range c.auditEvents() {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func TestImportGoodFileIsIdempotent(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		argon, bc := legacyHashes(t)
		// As Excel saves "CSV UTF-8": a byte-order mark and CRLF line ends.
		file := "\ufefflogin_id,email,display_name,temporary_password,password_hash\r\n" +
			"hana,hana@example.com,山田 花子,Temp-pass-1,\r\n" +
			"ken,ken@example.com,,\"\"," + `"` + argon + `"` + "\r\n" +
			"old,old@example.com,\"Old, System\",," + bc + "\r\n"
		path := writeCSV(t, file)

		out := c.ok("users", "import", path)
		if !strings.Contains(out, "created 3, unchanged 0") || !strings.Contains(out, "line 4: created old") {
			t.Fatalf("import said:\n%s", out)
		}
		hana := c.user("hana")
		if !hana.PasswordTemporary || hana.DisplayName != "山田 花子" || !strings.HasPrefix(hana.PasswordHash, "$argon2id$") {
			t.Errorf("hana = %+v", hana)
		}
		mustVerify(t, hana.PasswordHash, "Temp-pass-1", true)
		ken := c.user("ken")
		if ken.PasswordTemporary || ken.PasswordHash != argon {
			t.Errorf("ken = %+v", ken)
		}
		mustVerify(t, ken.PasswordHash, "ken-old-secret", true)
		old := c.user("old")
		if old.DisplayName != "Old, System" || old.PasswordHash != bc {
			t.Errorf("old = %+v", old)
		}
		mustVerify(t, old.PasswordHash, "old-system-secret", true)
		for _, e := range c.auditEvents() {
			if e.Type == "user.imported" && (e.Actor != "staff:tester" || e.UserID == "" || e.Detail["login_id"] == "") {
				t.Errorf("audit event %+v", e)
			}
		}
		if n := c.countAudit("user.imported"); n != 3 {
			t.Errorf("%d user.imported events, want 3", n)
		}

		// The same file again, from standard input, after hana changed her
		// password: nothing is created and her password stays hers.
		if err := c.store.UpdatePassword(context.Background(), hana.ID, ken.PasswordHash, false); err != nil {
			t.Fatal(err)
		}
		r := c.runIn(file, "users", "import", "-")
		if r.err != nil || !strings.Contains(r.stdout, "import from standard input: created 0, unchanged 3") {
			t.Fatalf("re-run: %v\n%s", r.err, r.stdout)
		}
		if h := c.user("hana"); h.PasswordHash != ken.PasswordHash || h.PasswordTemporary {
			t.Error("re-run overwrote a password")
		}

		// display_name is an optional column; a new row next to known ones.
		r = c.runIn("login_id,email,temporary_password,password_hash\nken,ken@example.com,,\""+argon+"\"\nnew,new@example.com,Temp-pass-2,\n",
			"users", "import", "-")
		if r.err != nil || !strings.Contains(r.stdout, "created 1, unchanged 1") {
			t.Fatalf("third run: %v\n%s", r.err, r.stdout)
		}
		if c.userCount() != 4 || c.countAudit("user.imported") != 4 {
			t.Errorf("users %d, user.imported events %d; want 4 and 4", c.userCount(), c.countAudit("user.imported"))
		}
	})
}

func TestImportBadRowsImportNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		_, bc := legacyHashes(t)
		file := strings.Join([]string{
			"login_id,email,display_name,temporary_password,password_hash", // 1
			"good,good@example.com,\"two",                                  // 2: a quoted name over two lines
			"lines\",Temp-pass-1,",                                         // 3
			",empty@example.com,,Temp-pass-1,",                             // 4
			"dup,dup@example.com,,Temp-pass-1,",                            // 5
			"dup,dup2@example.com,,Temp-pass-1,",                           // 6
			"bademail,not-an-address,,Temp-pass-1,",                        // 7
			"both,both@example.com,,Temp-pass-1," + bc,                     // 8
			"neither,neither@example.com,,,",                               // 9
			"badargon,ba@example.com,,,$argon2id$v=19$m=abc$c2FsdA$a2V5",   // 10
			"badbcrypt,bb@example.com,,,$2b$04$short",                      // 11
			"md5,md5@example.com,,,$1$abc$def",                             // 12
			"short,short@example.com,,abc,",                                // 13
			"cols,cols@example.com",                                        // 14
			"unquoted,uq@example.com,,,$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5aw", // 15
			"",
		}, "\n")
		r := c.run("users", "import", writeCSV(t, file))
		if r.status() != 1 || !strings.Contains(r.err.Error(), "import refused: 11 problem(s)") || !strings.Contains(r.err.Error(), "nothing imported") {
			t.Fatalf("status %d, err %v\n%s", r.status(), r.err, r.stdout)
		}
		for _, want := range []string{
			"line 4: login ID must be 1..64 characters",
			`line 6: login ID "dup" already appears on line 5`,
			`line 7: e-mail address "not-an-address" is not a plain address`,
			"line 8: both temporary_password and password_hash are set",
			"line 9: neither temporary_password nor password_hash is set",
			"line 10: password_hash: malformed argon2id",
			"line 11: password_hash: malformed bcrypt hash",
			"line 12: password_hash: not an argon2id",
			"line 13: temporary_password is shorter than 8 characters",
			"line 14: 2 columns, the header has 5",
			"line 15: 7 columns, the header has 5 (an argon2id hash contains commas: put it in double quotes)",
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("report lacks %q:\n%s", want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "line 2") || strings.Contains(r.stdout, "line 3") || strings.Contains(r.stdout, "line 5:") {
			t.Errorf("a good row was reported:\n%s", r.stdout)
		}
		if strings.Contains(r.stdout, "Temp-pass-1") || strings.Contains(r.stdout, bc) {
			t.Errorf("the report echoes a password or hash:\n%s", r.stdout)
		}
		if n := c.userCount(); n != 0 {
			t.Errorf("%d users imported from a bad file", n)
		}

		// A header that does not name the columns is refused before any row.
		r = c.runIn("login_id,email,password\nx,x@example.com,secret-pw\n", "users", "import", "-")
		for _, want := range []string{`line 1: unknown column "password"`, `line 1: header lacks the column "temporary_password"`,
			`line 1: header lacks the column "password_hash"`} {
			if r.status() != 1 || !strings.Contains(r.stdout, want) {
				t.Errorf("bad header: status %d, report lacks %q:\n%s", r.status(), want, r.stdout)
			}
		}
		r = c.runIn("", "users", "import", "-")
		if r.status() != 1 || !strings.Contains(r.stdout, "line 1: empty file") {
			t.Errorf("empty file: status %d\n%s", r.status(), r.stdout)
		}
		r = c.runIn("login_id,email,display_name,temporary_password,password_hash\nx,x@example.com,\xff\xfe,Temp-pass-1,\n", "users", "import", "-")
		if r.status() != 1 || !strings.Contains(r.stdout, "line 2: not UTF-8") {
			t.Errorf("Shift_JIS-like bytes: status %d\n%s", r.status(), r.stdout)
		}
		if n := c.userCount(); n != 0 || c.countAudit("user.imported") != 0 {
			t.Errorf("%d users imported from bad files", n)
		}
	})
}

func TestImportConflictingEmailImportsNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		_, bc := legacyHashes(t)
		if err := c.store.CreateUser(context.Background(), &storage.User{ID: "carol-id", LoginID: "carol", Email: "carol@example.com",
			PasswordHash: bc}); err != nil {
			t.Fatal(err)
		}
		file := "login_id,email,display_name,temporary_password,password_hash\n" +
			"newbie,newbie@example.com,,," + bc + "\n" +
			"carol,carol@other.example,,," + bc + "\n"
		r := c.run("users", "import", writeCSV(t, file))
		want := `line 3: login ID "carol" already exists with a different e-mail address (c***@example.com)`
		if r.status() != 1 || !strings.Contains(r.stdout, want) || !strings.Contains(r.err.Error(), "nothing imported") {
			t.Fatalf("status %d, err %v, report:\n%s", r.status(), r.err, r.stdout)
		}
		if _, err := c.store.UserByLoginID(context.Background(), "newbie"); err == nil {
			t.Error("the good row was imported next to a conflicting one")
		}
		if c.user("carol").Email != "carol@example.com" {
			t.Error("carol's e-mail changed")
		}
	})
}

// An insert that fails midway (here a trigger refuses one login ID, as a
// concurrent insert or a constraint would) must leave no user behind.
func TestImportFailedInsertIsRolledBack(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ddl := []string{`CREATE TRIGGER refuse_boom BEFORE INSERT ON users WHEN NEW.login_id = 'boom'
			BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END`}
		if flavor == "postgres" {
			ddl = []string{
				`CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN IF NEW.login_id = 'boom' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$`,
				`CREATE TRIGGER refuse_boom BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION refuse_boom()`,
			}
		}
		for _, q := range ddl {
			if _, err := c.store.DB().Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		_, bc := legacyHashes(t)
		file := "login_id,email,display_name,temporary_password,password_hash\n" +
			"a1,a1@example.com,,," + bc + "\n" +
			"a2,a2@example.com,,," + bc + "\n" +
			"boom,boom@example.com,,," + bc + "\n" +
			"a3,a3@example.com,,," + bc + "\n"
		r := c.run("users", "import", writeCSV(t, file))
		if r.status() != 1 || !strings.Contains(r.err.Error(), "line 4: create user") ||
			!strings.Contains(r.err.Error(), "the 2 user(s) created before it were deleted again, nothing imported") {
			t.Fatalf("status %d, err %v\n%s", r.status(), r.err, r.stdout)
		}
		if n := c.userCount(); n != 0 || c.countAudit("user.imported") != 0 {
			t.Errorf("after rollback: %d users, %d user.imported events", n, c.countAudit("user.imported"))
		}
		if !strings.Contains(r.stderr, "user import rolled back") {
			t.Errorf("rollback not logged:\n%s", r.stderr)
		}
	})
}
