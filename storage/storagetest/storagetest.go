// Package storagetest gives every package's tests a fresh, migrated
// database of each flavour.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/lib/pq" // the postgres driver, for creating test schemas

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

// PostgresURLEnv names the variable holding the test cluster's URL.
const PostgresURLEnv = "IDP_TEST_POSTGRES_URL"

// Flavors lists the backends every storage-using test should run on.
func Flavors() []string { return []string{"sqlite", "postgres"} }

// DSN returns a sqlstore DSN for a fresh, empty, migrated database that
// lives as long as t: a file under t.TempDir() for sqlite, a schema of its
// own (dropped at cleanup) in the cluster at $IDP_TEST_POSTGRES_URL for
// postgres. Without that variable the test is skipped, or fails under CI.
func DSN(t testing.TB, flavor string) string {
	t.Helper()
	dsn := EmptyDSN(t, flavor)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("storagetest: open %s: %v", flavor, err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("storagetest: migrate %s: %v", flavor, err)
	}
	return dsn
}

// EmptyDSN is DSN without the migration, for tests of Migrate itself.
func EmptyDSN(t testing.TB, flavor string) string {
	t.Helper()
	switch flavor {
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "idp.db")
	case "postgres":
		return postgresSchema(t)
	}
	t.Fatalf("storagetest: unknown flavor %q (want one of %v)", flavor, Flavors())
	return ""
}

// AuditKey is the audit MAC key of every store Open returns: a fixed test
// secret, so that separately opened stores on one database ("replicas")
// agree, as a deployment's replicas do.
func AuditKey() []byte {
	key, err := storage.AuditKey([]byte("storagetest audit secret, 32+ bytes long"))
	if err != nil {
		panic("storagetest: " + err.Error())
	}
	return key
}

// New opens a store on DSN(t, flavor) and closes it when t ends.
func New(t testing.TB, flavor string) *sqlstore.Store {
	t.Helper()
	return Open(t, DSN(t, flavor))
}

// Open opens another store on dsn (e.g. a second "replica" of the same
// database) with AuditKey and closes it when t ends.
func Open(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := sqlstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("storagetest: open: %v", err)
	}
	s.WithAuditKey(AuditKey())
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storagetest: close: %v", err)
		}
	})
	return s
}

// Each runs fn as one subtest per flavour.
func Each(t *testing.T, fn func(t *testing.T, flavor string)) {
	t.Helper()
	for _, flavor := range Flavors() {
		t.Run(flavor, func(t *testing.T) { fn(t, flavor) })
	}
}

func postgresSchema(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresURLEnv)
	if base == "" {
		// Never a skip: a test that did not run proves nothing.
		t.Fatalf("storagetest: %s is empty: run .ci/test, which starts a throwaway PostgreSQL", PostgresURLEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("storagetest: parse %s: %v", PostgresURLEnv, err)
	}
	schema := "t_" + randomHex(t, 8)

	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatalf("storagetest: open postgres: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// schema is generated here from hex digits: safe to splice in.
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("storagetest: create schema: %v", err)
	}
	t.Cleanup(func() { dropSchema(t, base, schema) })

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func dropSchema(t testing.TB, base, schema string) {
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Errorf("storagetest: open postgres to drop %s: %v", schema, err)
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		t.Errorf("storagetest: drop schema %s: %v", schema, err)
	}
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("storagetest: random: %v", err)
	}
	return hex.EncodeToString(b)
}
