package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// Column names of the import file's header row.
const (
	colLoginID       = "login_id"
	colEmail         = "email"
	colDisplayName   = "display_name"
	colTempPassword  = "temporary_password"
	colPasswordHash  = "password_hash"
	minTempPassword  = 8
	maxImportFileLen = 64 << 20
)

// importRow is one valid data row of an import file.
type importRow struct {
	line         int // as an editor shows it; the header is line 1
	loginID      string
	email        string
	displayName  string
	tempPassword string // exactly one of tempPassword and passwordHash is set
	passwordHash string
}

// rowProblem is one reason a row cannot be imported.
type rowProblem struct {
	line int
	msg  string
}

func (p rowProblem) String() string { return fmt.Sprintf("line %d: %s", p.line, p.msg) }

// parseImport reads and validates a whole import file. It returns every
// problem it finds rather than stopping at the first, so that the support
// centre can fix the file in one pass. The error is for a file that cannot
// be read at all.
func parseImport(r io.Reader) ([]importRow, []rowProblem, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxImportFileLen+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read import file: %w", err)
	}
	if len(raw) > maxImportFileLen {
		return nil, nil, fmt.Errorf("import file is larger than %d MiB: split it", maxImportFileLen>>20)
	}
	// Excel writes a byte-order mark in front of UTF-8 CSV.
	raw = bytes.TrimPrefix(raw, []byte("\ufeff"))
	if !utf8.Valid(raw) {
		return nil, []rowProblem{{line: firstInvalidUTF8Line(raw), msg: "not UTF-8 text: save the file as CSV UTF-8"}}, nil
	}
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.FieldsPerRecord = -1 // column counts are checked here, with a clearer message
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, []rowProblem{{line: 1, msg: "empty file: a header row is required (" + strings.Join(allColumns(), ",") + ")"}}, nil
	}
	if err != nil {
		return nil, []rowProblem{csvProblem(err, 1)}, nil
	}
	cols, problems := parseHeader(header)
	if len(problems) > 0 {
		return nil, problems, nil
	}

	var rows []importRow
	firstLine := map[string]int{} // login ID → line it first appeared on
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			problems = append(problems, csvProblem(err, 0))
			if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
				continue
			}
			// A broken quote swallows the rest of the file: nothing
			// after it can be trusted to have the right line numbers.
			break
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && rec[0] == "" {
			continue // a blank line
		}
		if len(rec) != len(header) {
			msg := fmt.Sprintf("%d columns, the header has %d", len(rec), len(header))
			if len(rec) > len(header) && slices.ContainsFunc(rec, func(f string) bool { return strings.HasPrefix(f, "$argon2id$") }) {
				msg += ` (an argon2id hash contains commas: put it in double quotes)`
			}
			problems = append(problems, rowProblem{line, msg})
			continue
		}
		row := rowFromRecord(rec, cols, line)
		var msgs []string
		if err := validateLoginID(row.loginID); err != nil {
			msgs = append(msgs, err.Error())
		} else if prev, dup := firstLine[row.loginID]; dup {
			msgs = append(msgs, fmt.Sprintf("login ID %q already appears on line %d", row.loginID, prev))
		} else {
			firstLine[row.loginID] = line
		}
		msgs = append(msgs, row.fieldProblems()...)
		for _, m := range msgs {
			problems = append(problems, rowProblem{line, m})
		}
		if len(msgs) == 0 {
			rows = append(rows, row)
		}
	}
	return rows, problems, nil
}

// rowFromRecord picks a record's fields by the header's column positions.
func rowFromRecord(rec []string, cols map[string]int, line int) importRow {
	field := func(name string) string {
		if i, ok := cols[name]; ok {
			return rec[i]
		}
		return ""
	}
	return importRow{
		line:         line,
		loginID:      field(colLoginID),
		email:        strings.TrimSpace(field(colEmail)),
		displayName:  strings.TrimSpace(field(colDisplayName)),
		tempPassword: field(colTempPassword),
		passwordHash: strings.TrimSpace(field(colPasswordHash)),
	}
}

// fieldProblems checks a row's e-mail address and password columns (the
// login ID needs the whole file and is checked by parseImport).
func (row importRow) fieldProblems() []string {
	var msgs []string
	if err := validateEmail(row.email); err != nil {
		msgs = append(msgs, err.Error())
	}
	if err := validateDisplayName(row.displayName); err != nil {
		msgs = append(msgs, err.Error())
	}
	switch {
	case row.tempPassword != "" && row.passwordHash != "":
		msgs = append(msgs, fmt.Sprintf("both %s and %s are set: give exactly one", colTempPassword, colPasswordHash))
	case row.tempPassword == "" && row.passwordHash == "":
		msgs = append(msgs, fmt.Sprintf("neither %s nor %s is set: give exactly one", colTempPassword, colPasswordHash))
	case row.tempPassword != "" && utf8.RuneCountInString(row.tempPassword) < minTempPassword:
		msgs = append(msgs, fmt.Sprintf("%s is shorter than %d characters", colTempPassword, minTempPassword))
	case row.passwordHash != "":
		// The hash itself is never echoed: it is a secret too.
		if err := checkHashFormat(row.passwordHash); err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: %v", colPasswordHash, err))
		}
	}
	return msgs
}

func allColumns() []string {
	return []string{colLoginID, colEmail, colDisplayName, colTempPassword, colPasswordHash}
}

func parseHeader(header []string) (map[string]int, []rowProblem) {
	cols := map[string]int{}
	var problems []rowProblem
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case colLoginID, colEmail, colDisplayName, colTempPassword, colPasswordHash:
		default:
			problems = append(problems, rowProblem{1, fmt.Sprintf("unknown column %q in the header (known: %s)", header[i], strings.Join(allColumns(), ","))})
			continue
		}
		if _, dup := cols[name]; dup {
			problems = append(problems, rowProblem{1, fmt.Sprintf("column %q appears twice in the header", name)})
			continue
		}
		cols[name] = i
	}
	for _, need := range []string{colLoginID, colEmail, colTempPassword, colPasswordHash} {
		if _, ok := cols[need]; !ok {
			problems = append(problems, rowProblem{1, fmt.Sprintf("header lacks the column %q (header row required: %s)", need, strings.Join(allColumns(), ","))})
		}
	}
	return cols, problems
}

func csvProblem(err error, fallbackLine int) rowProblem {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return rowProblem{pe.Line, "CSV syntax: " + pe.Err.Error()}
	}
	return rowProblem{fallbackLine, "CSV syntax: " + err.Error()}
}

func firstInvalidUTF8Line(raw []byte) int {
	line := 1
	for len(raw) > 0 {
		r, size := utf8.DecodeRune(raw)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		raw = raw[size:]
	}
	return line
}

// checkHashFormat accepts what password.Verify can check later, without
// spending the hash's cost now: an argon2id PHC string or a bcrypt hash.
func checkHashFormat(h string) error {
	switch {
	case strings.HasPrefix(h, "$argon2id$"):
		parts := strings.Split(h, "$")
		if len(parts) != 6 || parts[2] != "v=19" {
			return errors.New("malformed argon2id hash: want $argon2id$v=19$m=…,t=…,p=…$SALT$KEY")
		}
		var m, t, p uint64
		if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || n != 3 ||
			parts[3] != fmt.Sprintf("m=%d,t=%d,p=%d", m, t, p) {
			return errors.New("malformed argon2id parameters: want m=…,t=…,p=…")
		}
		// Bounds keep a hostile file from making every later login
		// allocate gigabytes.
		if m < 8*p || m > 1<<21 || t == 0 || t > 100 || p == 0 || p > 255 {
			return fmt.Errorf("argon2id parameters out of range (m=%d KiB, t=%d, p=%d)", m, t, p)
		}
		salt, err := base64.RawStdEncoding.DecodeString(parts[4])
		if err != nil || len(salt) < 8 {
			return errors.New("malformed argon2id salt")
		}
		key, err := base64.RawStdEncoding.DecodeString(parts[5])
		if err != nil || len(key) < 16 {
			return errors.New("malformed argon2id key")
		}
		return nil
	case strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"), strings.HasPrefix(h, "$2y$"):
		const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
		if len(h) != 60 || h[6] != '$' || strings.Trim(h[7:], bcryptAlphabet) != "" {
			return errors.New("malformed bcrypt hash: want $2b$CC$ and 53 characters")
		}
		if _, err := strconv.Atoi(h[4:6]); err != nil {
			return errors.New("malformed bcrypt cost")
		}
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return fmt.Errorf("malformed bcrypt hash: %v", err)
		}
		return nil
	default:
		return errors.New("not an argon2id ($argon2id$…) or bcrypt ($2a$/$2b$/$2y$…) hash")
	}
}

// importFile imports users all or nothing: every row is checked (format and
// clashes with existing users) before the first insert, and if an insert
// still fails the users created so far are deleted again.
func (u *usersCmd) importFile(ctx context.Context, path string, stdin io.Reader) error {
	var r io.Reader = stdin
	source := "standard input"
	if path == "-" && stdin == nil {
		return fmt.Errorf("no standard input to import from")
	}
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("open import file: %w", err)
		}
		defer f.Close()
		r, source = f, path
	}
	rows, problems, err := parseImport(r)
	if err != nil {
		return err
	}

	var toCreate []importRow
	unchanged := 0
	for _, row := range rows {
		existing, err := u.store.UserByLoginID(ctx, row.loginID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			toCreate = append(toCreate, row)
		case err != nil:
			return fmt.Errorf("line %d: look up %q: %w", row.line, row.loginID, err)
		case existing.Email == row.email:
			unchanged++ // a re-run of the same file: keep whatever password they have now
		default:
			problems = append(problems, rowProblem{row.line, fmt.Sprintf(
				"login ID %q already exists with a different e-mail address (%s): fix the file or the user first",
				row.loginID, maskEmail(existing.Email))})
		}
	}
	if len(problems) > 0 {
		sortProblems(problems)
		for _, p := range problems {
			fmt.Fprintln(u.out, p)
		}
		u.logger.Warn("user import refused", "source", source, "bad_rows", len(problems), "actor", u.actor)
		return fmt.Errorf("import refused: %d problem(s) in %s, nothing imported", len(problems), source)
	}

	// Hash before the first insert: the slow part cannot leave half a run.
	users := make([]*storage.User, len(toCreate))
	now := time.Now().UTC()
	for i, row := range toCreate {
		usr := &storage.User{ID: rand.Text(), LoginID: row.loginID, Email: row.email, DisplayName: row.displayName,
			PasswordHash: row.passwordHash, CreatedAt: now, UpdatedAt: now}
		if row.tempPassword != "" {
			h, err := password.Hash(u.params, row.tempPassword)
			if err != nil {
				return fmt.Errorf("line %d: hash temporary password: %w", row.line, err)
			}
			usr.PasswordHash, usr.PasswordTemporary = h, true
		}
		users[i] = usr
	}
	for i, usr := range users {
		if err := u.store.CreateUser(ctx, usr); err != nil {
			if errors.Is(err, storage.ErrAlreadyExists) {
				err = fmt.Errorf("login ID %q was created by someone else meanwhile", usr.LoginID)
			}
			return u.undoImport(ctx, users[:i], fmt.Errorf("line %d: create user: %w", toCreate[i].line, err))
		}
	}
	for i, usr := range users {
		detail := audit.Detail{audit.KeyLoginID: usr.LoginID, audit.KeySource: source, audit.KeyLine: strconv.Itoa(toCreate[i].line)}
		if usr.PasswordTemporary {
			detail[audit.KeyPassword] = "temporary"
		} else {
			detail[audit.KeyPassword] = "imported_hash"
		}
		if err := u.audit(ctx, audit.UserImported, usr, detail); err != nil {
			return u.undoImport(ctx, users, err)
		}
	}
	for i, usr := range users {
		fmt.Fprintf(u.out, "line %d: created %s\n", toCreate[i].line, usr.LoginID)
	}
	fmt.Fprintf(u.out, "import from %s: created %d, unchanged %d\n", source, len(users), unchanged)
	return nil
}

// undoImport deletes the users this run created, so a failed import leaves
// the database as it found it, and reports both the cause and the cleanup.
func (u *usersCmd) undoImport(ctx context.Context, created []*storage.User, cause error) error {
	var failed []string
	for _, usr := range created {
		if err := u.store.DeleteUser(ctx, usr.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			u.logger.Error("import rollback: delete user", "login_id", usr.LoginID, "user", usr.ID, "err", err)
			failed = append(failed, usr.LoginID)
		}
	}
	u.logger.Warn("user import rolled back", "actor", u.actor, "created_then_deleted", len(created)-len(failed), "cause", cause)
	if len(failed) > 0 {
		return fmt.Errorf("%w; rollback FAILED for %s: delete them by hand", cause, strings.Join(failed, ", "))
	}
	return fmt.Errorf("%w; the %d user(s) created before it were deleted again, nothing imported", cause, len(created))
}

func sortProblems(ps []rowProblem) {
	// Stable, so the problems of one line keep the order they were found in.
	slices.SortStableFunc(ps, func(a, b rowProblem) int { return a.line - b.line })
}

// maskEmail shows enough of an address for staff to recognise it in a
// terminal that others may see.
func maskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "***"
	}
	r, _ := utf8.DecodeRuneInString(local)
	return string(r) + "***@" + domain
}
