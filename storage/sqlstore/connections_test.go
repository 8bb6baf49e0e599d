package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
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
// operator's DSN decides.
func TestPostgresDSNDefaults(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://app@db:5432/idp?sslmode=disable":                     "postgres://app@db:5432/idp?binary_parameters=yes&connect_timeout=5&sslmode=disable",
		"postgresql://app@db/idp":                                        "postgresql://app@db/idp?binary_parameters=yes&connect_timeout=5",
		"postgres://app@db/idp?binary_parameters=no&sslmode=verify-full": "postgres://app@db/idp?binary_parameters=no&connect_timeout=5&sslmode=verify-full",
		"postgres://app@db/idp?connect_timeout=0":                        "postgres://app@db/idp?binary_parameters=yes&connect_timeout=0",
		"postgres://app@db/idp?connect_timeout=30&binary_parameters=yes": "postgres://app@db/idp?binary_parameters=yes&connect_timeout=30",
	} {
		got, err := sqlstore.PostgresDSN(dsn)
		if err != nil || got != want {
			t.Errorf("postgresDSN(%q) = %q, %v; want %q", dsn, got, err, want)
		}
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
