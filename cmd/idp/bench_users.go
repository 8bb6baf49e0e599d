package main

import (
	"crypto/rand"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/comstockloan/idp/login/password"
)

// benchUser is one line of a --users file.
type benchUser struct {
	LoginID, Email, Password string
}

var benchUsersHeader = []string{"login_id", "email", "password"}

func readBenchUsers(path string) ([]benchUser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bench users: %w", err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("bench users %s: %w", path, err)
	}
	if len(recs) < 2 || strings.Join(recs[0], ",") != strings.Join(benchUsersHeader, ",") {
		return nil, fmt.Errorf("bench users %s: want the header %s and at least one user", path, strings.Join(benchUsersHeader, ","))
	}
	users := make([]benchUser, 0, len(recs)-1)
	for i, r := range recs[1:] {
		if len(r) != 3 || r[0] == "" || r[2] == "" {
			return nil, fmt.Errorf("bench users %s: line %d: want login_id,email,password", path, i+2)
		}
		users = append(users, benchUser{LoginID: r[0], Email: r[1], Password: r[2]})
	}
	return users, nil
}

// benchUsers writes N users with random passwords twice: as a --users file
// for the bench, and as a CSV for "idp users import" that creates them with
// argon2id hashes (the server's cost, so a login costs what a customer's does).
func benchUsers(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("idp bench users", stderr)
	count := fs.Int("count", 64, "how many users")
	prefix := fs.String("prefix", "bench-", "login IDs are PREFIX0001 …; use one prefix for password users and another for passkey users")
	domain := fs.String("domain", "example.invalid", "their e-mail addresses are LOGINID@DOMAIN")
	out := fs.String("out", "bench-users.csv", "the --users file (created 0600: it holds the passwords)")
	importFile := fs.String("import", "bench-import.csv", `the file for "idp users import --config FILE"`)
	mem := fs.Uint("memory-kib", uint(password.DefaultParams.MemoryKiB), "argon2id memory of the hashes: the target's password.memory_kib")
	iter := fs.Uint("iterations", uint(password.DefaultParams.Iterations), "argon2id iterations: the target's password.iterations")
	par := fs.Uint("parallelism", uint(password.DefaultParams.Parallelism), "argon2id parallelism: the target's password.parallelism")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *count < 1 || *count > 100000 || *prefix == "" {
		return usagef("bench users: want 1 ≤ --count ≤ 100000 and a --prefix")
	}
	params := password.Params{MemoryKiB: uint32(*mem), Iterations: uint32(*iter), Parallelism: uint8(*par)}
	var users, imports [][]string
	users = append(users, benchUsersHeader)
	imports = append(imports, []string{"login_id", "email", "display_name", "temporary_password", "password_hash"})
	for i := 1; i <= *count; i++ {
		id := fmt.Sprintf("%s%04d", *prefix, i)
		email := id + "@" + *domain
		pw := rand.Text()
		hash, err := password.Hash(params, pw)
		if err != nil {
			return fmt.Errorf("bench users: %w", err)
		}
		users = append(users, []string{id, email, pw})
		imports = append(imports, []string{id, email, "bench " + id, "", hash})
	}
	if err := writeBenchCSV(*out, users); err != nil {
		return err
	}
	if err := writeBenchCSV(*importFile, imports); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d users to %s and %s\ncreate them with: idp users import --config FILE %s\n", *count, *out, *importFile, *importFile)
	return nil
}

// writeBenchCSV creates path (refusing to overwrite it: it may be the only copy
// of passwords already imported somewhere).
func writeBenchCSV(path string, recs [][]string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("bench users: %s exists: remove it or choose another name", path)
	}
	if err != nil {
		return fmt.Errorf("bench users: %w", err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(recs); err != nil {
		f.Close()
		return fmt.Errorf("bench users: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench users: write %s: %w", path, err)
	}
	return nil
}
