package op_test

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

// unstorable are values PostgreSQL cannot store or compare (invalid UTF-8,
// NUL) or that no real token, code or ID comes close to in length.
var unstorable = map[string]string{
	"invalid UTF-8": "\xff",
	"NUL":           "\x00",
	"NUL inside":    "ab\x00cd",
	"huge":          strings.Repeat("t", 8<<10),
}

// dbState counts what an OAuth request could write or revoke. Rate events
// are left out: a wrong secret for a real client counts as a failure
// whatever its bytes (TestClientSecretThrottle).
func dbState(t *testing.T, st *sqlstore.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, q := range map[string]string{
		"access tokens":            `SELECT COUNT(*) FROM access_tokens`,
		"refresh tokens":           `SELECT COUNT(*) FROM refresh_tokens`,
		"ended refresh tokens":     `SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL OR rotated_at IS NOT NULL`,
		"auth requests":            `SELECT COUNT(*) FROM auth_requests`,
		"consumed auth requests":   `SELECT COUNT(*) FROM auth_requests WHERE consumed_at IS NOT NULL`,
		"auth requests with codes": `SELECT COUNT(*) FROM auth_requests WHERE code_hash <> ''`,
	} {
		var n int
		if err := st.DB().Get(&n, q); err != nil {
			t.Fatalf("count %s: %v", name, err)
		}
		out[name] = n
	}
	return out
}

// Every OAuth endpoint treats input the database cannot hold as unknown:
// the answer an unknown value gets (a 4xx, or 200 where RFC 7009 and 7662
// say so), never a 500, and nothing written or revoked.
func TestUnstorableInputIsUnknownEverywhere(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := storagetest.New(t, flavor)
		e := newEnvOn(t, st, nil)
		tr, _ := e.login("openid offline_access")
		before := dbState(t, st)

		type request struct {
			name   string
			status int // 0: any 4xx
			req    *http.Request
		}
		form := func(path string, v url.Values, user, pass string) *http.Request {
			req := httptest.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(v.Encode()))
			req.RequestURI = ""
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if user != "" {
				// zitadel unescapes the Basic credentials (RFC 6749
				// section 2.3.1), so this delivers the raw bytes.
				req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
			}
			return req
		}
		get := func(path string, v url.Values) *http.Request {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+path+"?"+v.Encode(), nil)
			return req
		}
		for label, bad := range unstorable {
			code := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {webRedirect}, "code_verifier": {newPKCE().verifier}}
			with := func(v url.Values, k, val string) url.Values {
				c := maps.Clone(v)
				c.Set(k, val)
				return c
			}
			cases := []request{
				{"revoke token", http.StatusOK, form("/revoke", url.Values{"token": {bad}}, webClientID, webSecret)},
				{"revoke token hinted access_token", http.StatusOK, form("/revoke", url.Values{"token": {bad}, "token_type_hint": {"access_token"}}, webClientID, webSecret)},
				{"revoke token by the public client", http.StatusOK, form("/revoke", url.Values{"token": {bad}, "client_id": {spaClientID}}, "", "")},
				{"revoke client_id", 0, form("/revoke", url.Values{"token": {tr.AccessToken}, "client_id": {bad}}, "", "")},
				{"revoke Basic client", 0, form("/revoke", url.Values{"token": {tr.AccessToken}}, bad, webSecret)},
				{"revoke secret", 0, form("/revoke", url.Values{"token": {tr.AccessToken}}, webClientID, bad)},
				{"introspect token", http.StatusOK, form("/oauth/introspect", url.Values{"token": {bad}}, webClientID, webSecret)},
				{"introspect Basic client", 0, form("/oauth/introspect", url.Values{"token": {tr.AccessToken}}, bad, webSecret)},
				{"userinfo form token", 0, form("/userinfo", url.Values{"access_token": {bad}}, "", "")},
				{"token refresh_token", 0, form("/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bad}}, webClientID, webSecret)},
				{"token code", 0, form("/oauth/token", with(code, "code", bad), webClientID, webSecret)},
				{"token code_verifier", 0, form("/oauth/token", with(code, "code_verifier", bad), webClientID, webSecret)},
				{"token redirect_uri", 0, form("/oauth/token", with(code, "redirect_uri", bad), webClientID, webSecret)},
				{"token form client_id", 0, form("/oauth/token", with(code, "client_id", bad), "", "")},
				{"token posted secret", 0, form("/oauth/token", with(with(code, "client_id", webClientID), "client_secret", bad), "", "")},
				{"token Basic client", 0, form("/oauth/token", code, bad, webSecret)},
				{"token Basic secret", 0, form("/oauth/token", code, webClientID, bad)},
				{"authorize client_id", 0, get("/authorize", with(authParams(webClientID, webRedirect, "openid", newPKCE()), "client_id", bad))},
				{"authorize callback id", 0, get("/authorize/callback", url.Values{"id": {bad}})},
				{"end_session client_id", 0, get("/end_session", url.Values{"client_id": {bad}, "post_logout_redirect_uri": {webPostLogout}})},
				{"end_session id_token_hint", 0, get("/end_session", url.Values{"id_token_hint": {bad}})},
			}
			// A header cannot carry NUL; the other values go as a bearer.
			if !strings.ContainsRune(bad, 0) {
				req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
				req.Header.Set("Authorization", "Bearer "+bad)
				cases = append(cases, request{"userinfo bearer", 0, req})
			}
			for _, c := range cases {
				resp := e.do(c.req)
				var body map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				switch {
				case c.status != 0 && resp.StatusCode != c.status:
					t.Errorf("%s, %s: status %d, want %d (%v)", c.name, label, resp.StatusCode, c.status, body)
				case c.status == 0 && (resp.StatusCode < 400 || resp.StatusCode >= 500):
					t.Errorf("%s, %s: status %d, want 4xx (%v)", c.name, label, resp.StatusCode, body)
				}
				if c.name == "introspect token" && body["active"] != false {
					t.Errorf("%s, %s: %v, want active false", c.name, label, body)
				}
			}

			// Package login hands request IDs from its URLs to these.
			if _, err := complete(t.Context(), e.p, bad, unsavedSession(e.user.ID, time.Now(), "pwd")); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Complete(%s): %v, want ErrNotFound", label, err)
			}
			rec := httptest.NewRecorder()
			e.p.RedirectError(rec, httptest.NewRequest(http.MethodGet, "/login", nil), bad, errors.New("login_required"))
			if rec.Code != http.StatusBadRequest {
				t.Errorf("RedirectError(%s): status %d, want 400", label, rec.Code)
			}
		}

		if after := dbState(t, st); !maps.Equal(before, after) {
			t.Errorf("unstorable requests changed the database: before %v, after %v", before, after)
		}
		if status, _ := e.userinfo(tr.AccessToken, false); status != http.StatusOK {
			t.Errorf("access token after the requests: userinfo %d", status)
		}
		if r := e.refresh(tr.RefreshToken); r.status != http.StatusOK {
			t.Errorf("refresh token after the requests: %d %q", r.status, r.Error)
		}
	})
}
