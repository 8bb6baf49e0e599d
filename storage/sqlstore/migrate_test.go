package sqlstore_test

import (
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

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
		n := time.Now().UTC().Truncate(time.Microsecond)
		var created any = n
		if flavor == "sqlite" {
			created = n.UnixMicro()
		}
		// The schema of version 2, not today's CreateUser.
		if _, err := s.DB().Exec(s.DB().Rebind(`INSERT INTO users (id, login_id, email, display_name, password_hash,
			password_temporary, locked, created_at, updated_at) VALUES (?, ?, '', '', '', ?, ?, ?, ?)`),
			"u1", "taro", false, false, created, created); err != nil {
			t.Fatalf("old-schema user: %v", err)
		}
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
