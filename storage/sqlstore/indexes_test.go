package sqlstore_test

import (
	"slices"
	"testing"

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
