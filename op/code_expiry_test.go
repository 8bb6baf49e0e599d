package op_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

// expireCode moves the code's expiry an hour into the past, as if the
// client had waited that long, while its request stays alive.
func expireCode(t *testing.T, st *sqlstore.Store, flavor, code string) {
	t.Helper()
	var past any = time.Now().Add(-time.Hour).UTC()
	if flavor == "sqlite" {
		past = time.Now().Add(-time.Hour).UnixMicro()
	}
	res, err := st.DB().Exec(st.DB().Rebind(`UPDATE auth_requests SET code_expires_at = ? WHERE code_hash = ?`),
		past, storage.HashSecret(code))
	if err != nil {
		t.Fatalf("expire code: %v", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("expire code: %d rows, %v", n, err)
	}
}

func TestCodeLifetime(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := storagetest.New(t, flavor)
		e := newEnvOn(t, st, func(c *op.Config) { c.CodeLifetime = 30 * time.Second })

		t.Run("fresh code is exchanged and expires CodeLifetime after issue", func(t *testing.T) {
			pk := newPKCE()
			before := time.Now()
			code := e.authorize(authParams(webClientID, webRedirect, "openid", pk)).Query().Get("code")
			ar, _, err := st.AuthRequestByCode(t.Context(), storage.HashSecret(code))
			if err != nil {
				t.Fatalf("stored code: %v", err)
			}
			if earliest, latest := before.Add(30*time.Second).Add(-time.Second), time.Now().Add(30*time.Second); ar.CodeExpiresAt.Before(earliest) || ar.CodeExpiresAt.After(latest) {
				t.Errorf("code expires at %v, want within [%v, %v]", ar.CodeExpiresAt, earliest, latest)
			}
			if tr := e.exchange(code, webRedirect, pk); tr.status != http.StatusOK || tr.AccessToken == "" {
				t.Fatalf("fresh code: %d %q", tr.status, tr.Error)
			}
		})

		t.Run("expired code is refused and issues nothing", func(t *testing.T) {
			pk := newPKCE()
			code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
			expireCode(t, st, flavor, code)
			tr := e.exchange(code, webRedirect, pk)
			if tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.AccessToken != "" || tr.RefreshToken != "" {
				t.Fatalf("expired code: %d %q access=%q", tr.status, tr.Error, tr.AccessToken)
			}
			ar, _, err := st.AuthRequestByCode(t.Context(), storage.HashSecret(code))
			if err != nil {
				t.Fatalf("request of the expired code: %v", err)
			}
			if ar.ConsumedAt != nil {
				t.Error("refused code was marked consumed")
			}
			var issued int
			if err := st.DB().Get(&issued, st.DB().Rebind(`SELECT COUNT(*) FROM access_tokens WHERE auth_request_id = ?`), ar.ID); err != nil {
				t.Fatal(err)
			}
			if issued != 0 {
				t.Errorf("%d access tokens issued for an expired code", issued)
			}
		})

		t.Run("replay after expiry still revokes the grant", func(t *testing.T) {
			pk := newPKCE()
			code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
			first := e.exchange(code, webRedirect, pk)
			if first.status != http.StatusOK {
				t.Fatalf("first exchange: %d %q", first.status, first.Error)
			}
			expireCode(t, st, flavor, code)
			if again := e.exchange(code, webRedirect, pk); again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
				t.Fatalf("late replay: %d %q", again.status, again.Error)
			}
			if status, _ := e.userinfo(first.AccessToken, false); status == http.StatusOK {
				t.Error("access token of the replayed code still works")
			}
			if tr := e.refresh(first.RefreshToken); tr.status != http.StatusBadRequest {
				t.Errorf("refresh token of the replayed code: %d", tr.status)
			}
		})
	})
}
