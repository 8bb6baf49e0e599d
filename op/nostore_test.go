package op_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// RFC 6749 section 5.1: responses carrying tokens or credentials MUST NOT
// be cached, success and error alike; userinfo and introspection carry the
// same personal data.
func TestTokenResponsesAreNotCacheable(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
		exchange := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {pk.verifier}}
		resp := e.postForm("/oauth/token", exchange, webClientID, webSecret)
		tr := decodeToken(t, resp)
		if tr.status != http.StatusOK {
			t.Fatalf("exchange: %d %q", tr.status, tr.Error)
		}
		assertNoStore(t, "token success", resp)

		cases := []struct {
			name   string
			status int
			do     func() *http.Response
		}{
			{"token error", http.StatusBadRequest, func() *http.Response {
				bad := url.Values{"grant_type": {"authorization_code"}, "code": {"garbage"}, "redirect_uri": {webRedirect}, "code_verifier": {pk.verifier}}
				return e.postForm("/oauth/token", bad, webClientID, webSecret)
			}},
			{"token wrong method", http.StatusMethodNotAllowed, func() *http.Response { return e.get(e.issuer + "/oauth/token") }},
			{"userinfo success", http.StatusOK, func() *http.Response {
				req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
				req.Header.Set("Authorization", "Bearer "+tr.AccessToken)
				return e.do(req)
			}},
			{"userinfo error", http.StatusUnauthorized, func() *http.Response {
				req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
				req.Header.Set("Authorization", "Bearer garbage")
				return e.do(req)
			}},
			{"introspect success", http.StatusOK, func() *http.Response {
				return e.postForm("/oauth/introspect", url.Values{"token": {tr.AccessToken}}, webClientID, webSecret)
			}},
			{"introspect error", http.StatusUnauthorized, func() *http.Response {
				return e.postForm("/oauth/introspect", url.Values{"token": {tr.AccessToken}}, "", "")
			}},
			{"revoke", http.StatusOK, func() *http.Response {
				return e.postForm("/revoke", url.Values{"token": {"unknown"}}, webClientID, webSecret)
			}},
		}
		for _, c := range cases {
			resp := c.do()
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
			}
			assertNoStore(t, c.name, resp)
		}
	})
}

func assertNoStore(t *testing.T, name string, resp *http.Response) {
	t.Helper()
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s: Cache-Control %q, want no-store", name, cc)
	}
	if p := resp.Header.Get("Pragma"); p != "no-cache" {
		t.Errorf("%s: Pragma %q, want no-cache", name, p)
	}
}
