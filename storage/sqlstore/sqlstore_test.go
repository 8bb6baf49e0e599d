package sqlstore_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

func TestOpenRejectsUnknownSchemes(t *testing.T) {
	for _, dsn := range []string{"mysql://root@localhost/idp", "idp.db", "", "sqlite:"} {
		s, err := sqlstore.Open(t.Context(), dsn, nil)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if dsn != "sqlite:" && !strings.Contains(err.Error(), "unsupported database scheme") {
			t.Errorf("Open(%q): error %q does not name the problem", dsn, err)
		}
	}
}

func TestOpenSQLiteCreatesDirectoryAndDoesNotMigrate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var", "lib", "idp", "idp.db")
	s, err := sqlstore.Open(t.Context(), "sqlite:"+path, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	if _, err := s.UserByID(t.Context(), "u1"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("query before Migrate: got %v, want a missing-table error", err)
	}
	var fk, timeout int
	var journal string
	if err := s.DB().Get(&fk, "PRAGMA foreign_keys"); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v", fk, err)
	}
	if err := s.DB().Get(&timeout, "PRAGMA busy_timeout"); err != nil || timeout != 5000 {
		t.Fatalf("busy_timeout = %d, %v", timeout, err)
	}
	if err := s.DB().Get(&journal, "PRAGMA journal_mode"); err != nil || journal != "wal" {
		t.Fatalf("journal_mode = %q, %v", journal, err)
	}
}

// The pool keeps as many idle connections as it may open (a burst then
// reuses them rather than reconnecting), and configured sizes apply.
func TestPoolDefaultsAndConfiguration(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s := storagetest.Open(t, storagetest.DSN(t, flavor))
		st := s.DB().Stats()
		want := sqlstore.DefaultPool.MaxOpenConns
		if flavor == "sqlite" {
			want = 8
		}
		if st.MaxOpenConnections != want {
			t.Fatalf("default max open %d, want %d", st.MaxOpenConnections, want)
		}
		// A burst of 8 concurrent queries leaves its connections idle,
		// none closed for exceeding the idle limit.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := s.DB().Exec("SELECT 1"); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if st := s.DB().Stats(); st.MaxIdleClosed != 0 {
			t.Fatalf("%d connections closed for the idle limit after a burst of 8", st.MaxIdleClosed)
		}
		s.WithPool(sqlstore.Pool{MaxOpenConns: 3})
		if st := s.DB().Stats(); st.MaxOpenConnections != 3 {
			t.Fatalf("configured max open %d, want 3", st.MaxOpenConnections)
		}
	})
}
