package sqlstore_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

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

// lib/pq's binary_parameters is on unless the operator's DSN decides.
func TestPostgresDSNGetsBinaryParameters(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://app@db:5432/idp?sslmode=disable":                     "postgres://app@db:5432/idp?binary_parameters=yes&sslmode=disable",
		"postgresql://app@db/idp":                                        "postgresql://app@db/idp?binary_parameters=yes",
		"postgres://app@db/idp?binary_parameters=no&sslmode=verify-full": "postgres://app@db/idp?binary_parameters=no&sslmode=verify-full",
	} {
		got, err := sqlstore.WithBinaryParameters(dsn)
		if err != nil || got != want {
			t.Errorf("withBinaryParameters(%q) = %q, %v; want %q", dsn, got, err, want)
		}
	}
}
