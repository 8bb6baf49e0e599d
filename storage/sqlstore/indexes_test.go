package sqlstore_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// Every lookup a login, a token request or a sweep makes by something other
// than a primary key has an index; a missing one is a table scan per
// request once the tables grow.
func TestHotLookupsAreIndexed(t *testing.T) {
	want := []string{
		"sessions_user_id", "sessions_expires_at",
		"auth_requests_user_id", "auth_requests_expires_at",
		"access_tokens_subject", "access_tokens_auth_request_id", "access_tokens_refresh_token_id", "access_tokens_expires_at",
		"refresh_tokens_family_id", "refresh_tokens_subject", "refresh_tokens_auth_request_id", "refresh_tokens_expires_at",
		"login_flows_user_id", "login_flows_expires_at",
		"rate_events_kind_key_at", "rate_events_at",
		"webauthn_sessions_user_id", "webauthn_sessions_expires_at",
		"credentials_user_id", "audit_events_user_id",
	}
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s := storagetest.New(t, flavor)
		query := `SELECT name FROM sqlite_master WHERE type = 'index'`
		if flavor == "postgres" {
			query = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()`
		}
		var have []string
		if err := s.DB().Select(&have, query); err != nil {
			t.Fatalf("list indexes: %v", err)
		}
		for _, name := range want {
			if !slices.Contains(have, name) {
				t.Errorf("index %s missing (have %v)", name, have)
			}
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
