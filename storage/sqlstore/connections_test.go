package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

// 64 concurrent writers of one SQLite file (plain statements and
// transactions mixed, readers beside them) all succeed: the writes queue
// for the store's one writer connection instead of polling in SQLite's busy
// handler until busy_timeout ("database is locked"). On PostgreSQL the same
// load checks the pool.
func TestConcurrentWritersAllSucceed(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s := storagetest.New(t, flavor)
		ctx := t.Context()
		now := time.Now().UTC()
		const workers, rounds = 64, 8
		errs := make(chan error, workers*rounds*3)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				key := fmt.Sprintf("k%d", w)
				for range rounds {
					if err := s.RecordRateEvent(ctx, "t", key, now); err != nil {
						errs <- err
					}
					if _, ok, err := s.ReserveRateEvent(ctx, "r", key, now, now.Add(-time.Hour), 1000); err != nil || !ok {
						errs <- fmt.Errorf("reserve: ok %v: %w", ok, err)
					}
					if _, err := s.CountRateEvents(ctx, "t", key, now.Add(-time.Hour)); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent writer failed: %v", err)
		}
		for _, kind := range []string{"t", "r"} {
			n, err := s.CountRateEvents(ctx, kind, "k0", now.Add(-time.Hour))
			if err != nil || n != rounds {
				t.Fatalf("%s events of one writer: %d (%v), want %d", kind, n, err, rounds)
			}
		}
	})
}

// lib/pq's binary_parameters is on and connect_timeout bounded unless the
// operator's DSN decides; prepared_statements is ours and never reaches
// lib/pq (which would send it to the server as a setting it refuses).
func TestPostgresDSNDefaults(t *testing.T) {
	for dsn, want := range map[string]struct {
		dsn     string
		prepare bool
	}{
		"postgres://app@db:5432/idp?sslmode=disable":                     {"postgres://app@db:5432/idp?binary_parameters=yes&connect_timeout=5&sslmode=disable", true},
		"postgresql://app@db/idp":                                        {"postgresql://app@db/idp?binary_parameters=yes&connect_timeout=5", true},
		"postgres://app@db/idp?binary_parameters=no&sslmode=verify-full": {"postgres://app@db/idp?binary_parameters=no&connect_timeout=5&sslmode=verify-full", true},
		"postgres://app@db/idp?connect_timeout=0":                        {"postgres://app@db/idp?binary_parameters=yes&connect_timeout=0", true},
		"postgres://app@db/idp?connect_timeout=30&binary_parameters=yes": {"postgres://app@db/idp?binary_parameters=yes&connect_timeout=30", true},
		"postgres://app@db/idp?prepared_statements=no":                   {"postgres://app@db/idp?binary_parameters=yes&connect_timeout=5", false},
		"postgres://app@db/idp?prepared_statements=yes":                  {"postgres://app@db/idp?binary_parameters=yes&connect_timeout=5", true},
	} {
		got, prepare, err := sqlstore.PostgresDSN(dsn)
		if err != nil || got != want.dsn || prepare != want.prepare {
			t.Errorf("postgresDSN(%q) = %q, %v, %v; want %q, %v", dsn, got, prepare, err, want.dsn, want.prepare)
		}
	}
	if _, _, err := sqlstore.PostgresDSN("postgres://app@db/idp?prepared_statements=off"); err == nil {
		t.Error("prepared_statements=off accepted; want an error naming yes or no")
	}
}

// A store told not to prepare (for a pooler in transaction mode) works,
// so prepared_statements did not reach the server, which would refuse it
// as an unknown setting.
func TestPostgresWithoutPreparedStatements(t *testing.T) {
	dsn := storagetest.DSN(t, "postgres")
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	s := storagetest.Open(t, dsn+sep+"prepared_statements=no")
	now := time.Now()
	for range 2 {
		if err := s.RecordRateEvent(t.Context(), "t", "k", now); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.CountRateEvents(t.Context(), "t", "k", now.Add(-time.Hour)); err != nil || n != 2 {
		t.Errorf("count: %d, %v; want 2", n, err)
	}
}

// A database that accepts connections and never answers makes a store
// call fail (ErrUnavailable, so the request answers 503) after the default
// connect_timeout instead of hanging for as long as the caller waits: a
// request's context has no deadline, and lib/pq ignores it while it sets
// a connection up.
func TestPostgresHungDatabaseFailsFast(t *testing.T) {
	dsn, proxy := storagetest.PostgresBehindProxy(t)
	s := storagetest.Open(t, dsn)
	if _, err := s.CountRateEvents(t.Context(), "t", "k", time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("database up: %v", err)
	}
	proxy.Hang() // closes the pool's connections: the next call dials
	done := make(chan error, 1)
	go func() {
		_, err := s.CountRateEvents(context.Background(), "t", "k", time.Now().Add(-time.Hour))
		done <- err
	}()
	// Not a timer on the store: a bound far above the default, which a
	// call without connect_timeout never meets.
	select {
	case err := <-done:
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("store call against a hung database: %v, want ErrUnavailable", err)
		}
	case <-time.After(12 * sqlstore.DefaultConnectTimeout):
		t.Fatal("a store call against a hung database still waits: no connect_timeout")
	}
	proxy.Resume()
	if _, err := s.CountRateEvents(t.Context(), "t", "k", time.Now().Add(-time.Hour)); err != nil {
		t.Errorf("database back: %v", err)
	}
}
