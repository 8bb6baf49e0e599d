package sqlstore_test

import (
	"log/slog"
	"testing"

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
