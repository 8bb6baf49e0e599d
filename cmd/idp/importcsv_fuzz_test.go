package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/storage/storagetest"
)

// FuzzImportCSV feeds the user importer arbitrary files, first to the
// parser and then to the real import on SQLite. Either every returned row
// passes the same checks `users create` applies (and is text PostgreSQL
// and the login form accept), or there are problems, each with a line
// number in the file, and the import writes no user.
func FuzzImportCSV(f *testing.F) {
	store := storagetest.New(f, "sqlite")
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	u := &usersCmd{store: store, params: password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1},
		actor: audit.Staff("fuzz"), rec: audit.NewRecorder(store, logger), out: io.Discard, logger: logger}
	f.Add([]byte("login_id,email,display_name,temporary_password,password_hash\n" +
		"loan0001,taro@example.jp,山田 太郎,Temp-Pass-123,\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		rows, problems, err := parseImport(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("parseImport of %d bytes in memory: %v", len(raw), err)
		}
		lines := bytes.Count(raw, []byte("\n")) + 1
		for _, p := range problems {
			if p.line < 1 || p.line > lines || p.msg == "" {
				t.Fatalf("problem %q: line outside the file's 1..%d", p, lines)
			}
		}
		if len(problems) == 0 {
			checkImportRows(t, rows)
		}

		err = u.importFile(ctx, "-", bytes.NewReader(raw))
		users, lerr := store.ListUsers(ctx)
		if lerr != nil {
			t.Fatal(lerr)
		}
		// Leave the store empty for the next input whatever happens.
		defer func() {
			for _, usr := range users {
				if err := store.DeleteUser(ctx, usr.ID); err != nil {
					t.Fatalf("cleanup: %v", err)
				}
			}
		}()
		if len(problems) > 0 || err != nil {
			if err == nil {
				t.Fatalf("import succeeded despite problems %v", problems)
			}
			if len(users) != 0 {
				t.Fatalf("refused import (%v) left %d user(s) behind", err, len(users))
			}
			if len(problems) == 0 {
				t.Fatalf("rows the parser accepted could not be imported: %v", err)
			}
			return
		}
		if len(users) != len(rows) {
			t.Fatalf("imported %d users from %d rows", len(users), len(rows))
		}
		byLogin := map[string]bool{}
		for _, usr := range users {
			byLogin[usr.LoginID] = true
		}
		for _, row := range rows {
			if !byLogin[row.loginID] {
				t.Fatalf("line %d: login ID %q was not imported", row.line, row.loginID)
			}
		}
	})
}

// checkImportRows asserts what an accepted file's rows must satisfy.
func checkImportRows(t *testing.T, rows []importRow) {
	t.Helper()
	seen := map[string]bool{}
	prevLine := 1
	for _, row := range rows {
		if row.line <= prevLine {
			t.Fatalf("row line %d does not follow line %d", row.line, prevLine)
		}
		prevLine = row.line
		if err := validateLoginID(row.loginID); err != nil {
			t.Fatalf("line %d: accepted login ID %q: %v", row.line, row.loginID, err)
		}
		if seen[row.loginID] {
			t.Fatalf("line %d: login ID %q accepted twice", row.line, row.loginID)
		}
		seen[row.loginID] = true
		if err := validateEmail(row.email); err != nil {
			t.Fatalf("line %d: accepted %v", row.line, err)
		}
		if (row.tempPassword == "") == (row.passwordHash == "") {
			t.Fatalf("line %d: want exactly one of temporary password and hash", row.line)
		}
		if row.passwordHash != "" {
			if err := checkHashFormat(row.passwordHash); err != nil {
				t.Fatalf("line %d: accepted hash: %v", row.line, err)
			}
		} else if utf8.RuneCountInString(row.tempPassword) < minTempPassword {
			t.Fatalf("line %d: accepted a temporary password of %d characters", row.line, utf8.RuneCountInString(row.tempPassword))
		}
		// Text columns go to PostgreSQL as text (the temporary password
		// only as its hash). The login form refuses login IDs with control
		// characters; the name goes into ID tokens, where only line breaks
		// and tabs are tolerated.
		for name, v := range map[string]string{"login_id": row.loginID, "email": row.email,
			"display_name": row.displayName, "password_hash": row.passwordHash} {
			if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
				t.Fatalf("line %d: %s %q is no storable text", row.line, name, v)
			}
		}
		if strings.ContainsFunc(row.loginID, unicode.IsControl) {
			t.Fatalf("line %d: login ID %q contains a control character", row.line, row.loginID)
		}
		if strings.ContainsFunc(row.displayName, func(r rune) bool { return unicode.IsControl(r) && !strings.ContainsRune("\t\n\r", r) }) {
			t.Fatalf("line %d: display name %q contains a control character", row.line, row.displayName)
		}
	}
}
