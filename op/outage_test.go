package op_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// While the database cannot be reached, the token endpoint, userinfo and
// the authorize callback answer 503 (temporarily_unavailable, Retry-After):
// never invalid_grant or a 400 that would make the RP drop a good code or
// blame the customer. When the database is back, the same code works.
func TestDatabaseOutageAnswers503NotClientErrors(t *testing.T) {
	dsn, proxy := storagetest.PostgresBehindProxy(t)
	e := newEnvOn(t, storagetest.Open(t, dsn), nil)

	tr, _ := e.login("openid")
	pk := newPKCE()
	loc := e.authorize(authParams(webClientID, webRedirect, "openid", pk))
	code := loc.Query().Get("code")
	// A second request left at the callback step.
	pending := e.authorizeURL(authParams(webClientID, webRedirect, "openid", newPKCE()))

	proxy.Cut()
	got := e.exchange(code, webRedirect, pk)
	if got.status != http.StatusServiceUnavailable || got.Error != "temporarily_unavailable" {
		t.Fatalf("code exchange during the outage: %d %q, want 503 temporarily_unavailable", got.status, got.Error)
	}
	if status, _ := e.userinfo(tr.AccessToken, false); status != http.StatusServiceUnavailable {
		t.Fatalf("userinfo during the outage: %d, want 503", status)
	}
	res := e.get(pending)
	res.Body.Close()
	if res.StatusCode == http.StatusFound {
		// The authorization endpoint hands server_error to the RP's
		// redirect URI, which is the RFC's way; only a non-redirect
		// answer must be a 503.
		if q := res.Header.Get("Location"); q == "" {
			t.Fatal("redirect without Location during the outage")
		}
	} else if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("authorize during the outage: %d, want a redirect to the RP or 503", res.StatusCode)
	}
	res = e.get(e.issuer + "/authorize/callback?id=00000000-0000-0000-0000-000000000000")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("callback during the outage: %d %q, want 503 with Retry-After", res.StatusCode, body)
	}

	proxy.Resume()
	got = e.exchange(code, webRedirect, pk)
	if got.status != http.StatusOK || got.IDToken == "" {
		t.Fatalf("the code after the outage: %d %q, want tokens", got.status, got.Error)
	}
	if status, info := e.userinfo(got.AccessToken, false); status != http.StatusOK || info["sub"] == nil {
		t.Fatalf("userinfo after the outage: %d %v", status, info)
	}
}
