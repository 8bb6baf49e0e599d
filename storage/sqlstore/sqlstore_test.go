package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/conformance"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		conformance.Run(t, storagetest.AuditKey(), func(t *testing.T) storage.Store { return storagetest.New(t, flavor) })
	})
}

func TestConformanceReplicas(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		conformance.RunReplicas(t, storagetest.AuditKey(), func(t *testing.T) (storage.Store, storage.Store) {
			dsn := storagetest.DSN(t, flavor)
			return storagetest.Open(t, dsn), storagetest.Open(t, dsn)
		})
	})
}

func TestConformanceInMemorySQLite(t *testing.T) {
	conformance.Run(t, storagetest.AuditKey(), func(t *testing.T) storage.Store {
		s, err := sqlstore.Open(t.Context(), "sqlite::memory:", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		s.WithAuditKey(storagetest.AuditKey())
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return s
	})
}

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

// Replicas starting together all run Migrate: each must succeed and the
// schema must be applied once.
func TestMigrateConcurrentlyAndTwice(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		dsn := storagetest.EmptyDSN(t, flavor)
		stores := make([]*sqlstore.Store, 4)
		for i := range stores {
			stores[i] = storagetest.Open(t, dsn)
		}
		errs := make(chan error, len(stores))
		for _, s := range stores {
			go func() { errs <- s.Migrate(t.Context()) }()
		}
		for range stores {
			if err := <-errs; err != nil {
				t.Fatalf("concurrent migrate: %v", err)
			}
		}
		if err := stores[0].Migrate(t.Context()); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
		var versions []int
		if err := stores[1].DB().Select(&versions, "SELECT version FROM schema_migrations ORDER BY version"); err != nil {
			t.Fatalf("read schema_migrations: %v", err)
		}
		if len(versions) == 0 || versions[0] != 1 {
			t.Fatalf("schema_migrations: %v", versions)
		}
		for i := 1; i < len(versions); i++ {
			if versions[i] == versions[i-1] {
				t.Fatalf("migration %d recorded twice: %v", versions[i], versions)
			}
		}
		if err := stores[2].CreateUser(t.Context(), &storage.User{ID: "u1", LoginID: "taro"}); err != nil {
			t.Fatalf("store unusable after migrate: %v", err)
		}
	})
}

// Times go in in any zone and precision and come out in UTC, exact to the
// microsecond.
func TestTimesComeBackUTCMicroseconds(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		s := storagetest.New(t, flavor)
		ctx := t.Context()
		jst := time.FixedZone("JST", 9*60*60)
		in := time.Now().In(jst).Add(time.Hour).Round(0)
		in = in.Add(time.Duration(789 - in.Nanosecond()%1000)) // sub-microsecond digits to drop
		if err := s.CreateLoginFlow(ctx, &storage.LoginFlow{ID: "f", CreatedAt: in, ExpiresAt: in, OTPSentAt: &in}); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := s.LoginFlowByID(ctx, "f")
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		want := in.UTC().Truncate(time.Microsecond)
		for name, tm := range map[string]time.Time{"created": got.CreatedAt, "expires": got.ExpiresAt, "otp sent": *got.OTPSentAt} {
			if tm != want {
				t.Errorf("%s: got %v (%v), want %v", name, tm, tm.Location(), want)
			}
		}
	})
}

func BenchmarkCreateLoginFlow(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			s := storagetest.New(b, flavor)
			ctx := context.Background()
			n := time.Now()
			for i := 0; b.Loop(); i++ {
				f := &storage.LoginFlow{ID: fmt.Sprint("flow-", i), Step: "start", Version: 1, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
				if err := s.CreateLoginFlow(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTakeWebAuthnSession(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			s := storagetest.New(b, flavor)
			ctx := context.Background()
			n := time.Now()
			for i := 0; b.Loop(); i++ {
				ch := fmt.Sprint("challenge-", i)
				if err := s.SaveWebAuthnSession(ctx, &storage.WebAuthnSession{Challenge: ch, Ceremony: "login", CreatedAt: n, ExpiresAt: n.Add(time.Minute)}); err != nil {
					b.Fatal(err)
				}
				if _, err := s.TakeWebAuthnSession(ctx, ch, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Upgrading moves the OTP sends of the old otp_sends table into rate_events,
// where the resend throttle keeps counting them, and drops the old table.
func TestMigrateMovesOTPSendsToRateEvents(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		s := storagetest.Open(t, storagetest.EmptyDSN(t, flavor))
		ctx := t.Context()
		if err := s.MigrateUpTo(ctx, 2); err != nil {
			t.Fatalf("migrate to 2: %v", err)
		}
		if err := s.CreateUser(ctx, &storage.User{ID: "u1", LoginID: "taro"}); err != nil {
			t.Fatalf("create user: %v", err)
		}
		n := time.Now().UTC().Truncate(time.Microsecond)
		sent := []time.Time{n.Add(-2 * time.Hour), n.Add(-10 * time.Minute), n}
		for _, at := range sent {
			var arg any = at
			if flavor == "sqlite" {
				arg = at.UnixMicro()
			}
			if _, err := s.DB().Exec(s.DB().Rebind(`INSERT INTO otp_sends (user_id, sent_at) VALUES (?, ?)`), "u1", arg); err != nil {
				t.Fatalf("old-schema otp send: %v", err)
			}
		}
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		for since, want := range map[time.Duration]int{-3 * time.Hour: 3, -time.Hour: 2, 0: 1} {
			got, err := s.CountRateEvents(ctx, "otp_send", "u1", n.Add(since))
			if err != nil || got != want {
				t.Errorf("otp_send events since %v: %d, %v; want %d", since, got, err, want)
			}
		}
		if _, err := s.DB().Exec(`SELECT 1 FROM otp_sends`); err == nil {
			t.Error("otp_sends still exists after migration")
		}
	})
}

// The hot-path count is answered from the (kind, key, at) index, not by
// scanning the table.
func TestCountRateEventsUsesIndex(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		s := storagetest.New(t, flavor)
		query := s.DB().Rebind(`SELECT COUNT(*) FROM rate_events WHERE kind = ? AND key = ? AND at >= ?`)
		var plan []string
		var err error
		if flavor == "sqlite" {
			var rows []struct {
				ID      int    `db:"id"`
				Parent  int    `db:"parent"`
				NotUsed int    `db:"notused"`
				Detail  string `db:"detail"`
			}
			err = s.DB().Select(&rows, `EXPLAIN QUERY PLAN `+query, "otp_send", "u1", time.Now().UnixMicro())
			for _, r := range rows {
				plan = append(plan, r.Detail)
			}
		} else {
			// A fresh table is tiny, where a sequential scan would win;
			// forbid it to see whether the index can serve the query.
			tx, terr := s.DB().Beginx()
			if terr != nil {
				t.Fatal(terr)
			}
			defer tx.Rollback()
			if _, err := tx.Exec(`SET LOCAL enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			err = tx.Select(&plan, `EXPLAIN `+query, "otp_send", "u1", time.Now())
		}
		if err != nil {
			t.Fatalf("explain: %v", err)
		}
		joined := strings.Join(plan, "\n")
		if !strings.Contains(joined, "rate_events_kind_key_at") {
			t.Fatalf("count does not use rate_events_kind_key_at:\n%s", joined)
		}
	})
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
