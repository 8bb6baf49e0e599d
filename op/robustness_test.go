package op_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

func TestBadInputIsAClientError(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		valid := authParams(webClientID, webRedirect, "openid", newPKCE())
		with := func(k, v string) string {
			p := url.Values{}
			for kk, vv := range valid {
				p[kk] = vv
			}
			p.Set(k, v)
			return e.authorizeURL(p)
		}
		big := strings.Repeat("a", 200<<10)
		cases := []struct {
			name, method, path, body, contentType string
		}{
			// max_age=abc with a registered client and redirect_uri goes
			// back to the client: TestAuthorizeErrorsForATrustedRedirectGoBackToTheClient.
			{"authorize bad percent escape", "GET", e.issuer + "/authorize?client_id=%zz", "", ""},
			{"authorize without anything", "GET", e.issuer + "/authorize", "", ""},
			{"authorize form_post mode, foreign redirect", "GET", with("redirect_uri", "https://evil.example/cb") + "&response_mode=form_post", "", ""},
			{"authorize DELETE", "DELETE", e.issuer + "/authorize", "", ""},
			{"callback unknown id", "GET", e.issuer + "/authorize/callback?id=nope", "", ""},
			{"callback without id", "GET", e.issuer + "/authorize/callback", "", ""},
			{"token GET", "GET", e.issuer + "/oauth/token", "", ""},
			{"token garbage grant", "POST", e.issuer + "/oauth/token", "grant_type=%00%ff&code=x", "application/x-www-form-urlencoded"},
			{"token unknown grant", "POST", e.issuer + "/oauth/token", "grant_type=password&username=a&password=b", "application/x-www-form-urlencoded"},
			{"token client_credentials", "POST", e.issuer + "/oauth/token", "grant_type=client_credentials&client_id=web&client_secret=" + webSecret, "application/x-www-form-urlencoded"},
			{"token jwt-bearer", "POST", e.issuer + "/oauth/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c", "application/x-www-form-urlencoded"},
			{"token garbage code", "POST", e.issuer + "/oauth/token", "grant_type=authorization_code&client_id=spa&code=garbage&redirect_uri=" + url.QueryEscape(spaRedirect) + "&code_verifier=x", "application/x-www-form-urlencoded"},
			{"token garbage refresh", "POST", e.issuer + "/oauth/token", "grant_type=refresh_token&client_id=web&client_secret=" + webSecret + "&refresh_token=garbage", "application/x-www-form-urlencoded"},
			{"token oversized body", "POST", e.issuer + "/oauth/token", "grant_type=authorization_code&code=" + big, "application/x-www-form-urlencoded"},
			{"token bad semicolon body", "POST", e.issuer + "/oauth/token", "a=%", "application/x-www-form-urlencoded"},
			{"token unknown client", "POST", e.issuer + "/oauth/token", "grant_type=authorization_code&client_id=nobody&code=x&code_verifier=y", "application/x-www-form-urlencoded"},
			{"introspect without auth", "POST", e.issuer + "/oauth/introspect", "token=x", "application/x-www-form-urlencoded"},
			{"introspect GET", "GET", e.issuer + "/oauth/introspect", "", ""},
			{"userinfo without token", "GET", e.issuer + "/userinfo", "", ""},
			{"userinfo garbage token", "GET", e.issuer + "/userinfo?access_token=garbage", "", ""},
			{"userinfo PUT", "PUT", e.issuer + "/userinfo", "", ""},
			{"revoke without client", "POST", e.issuer + "/revoke", "token=x", "application/x-www-form-urlencoded"},
			{"end_session bad ui_locales", "GET", e.issuer + "/end_session?ui_locales=%%%", "", ""},
			{"end_session unknown client", "GET", e.issuer + "/end_session?client_id=nobody&post_logout_redirect_uri=" + url.QueryEscape(webPostLogout), "", ""},
			{"end_session garbage id_token_hint", "GET", e.issuer + "/end_session?id_token_hint=garbage", "", ""},
			{"keys POST", "POST", e.issuer + "/keys", "", ""},
			{"device authorization", "POST", e.issuer + "/device_authorization", "client_id=web", "application/x-www-form-urlencoded"},
			{"unknown path", "GET", e.issuer + "/nope", "", ""},
		}
		for _, c := range cases {
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			} else {
				body = strings.NewReader("")
			}
			req, err := http.NewRequest(c.method, c.path, body)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("%s: status %d, want 4xx (Location %q)", c.name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	})
}

func TestEndSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid")
		cases := []struct {
			name   string
			params url.Values
			want   string // exact Location, "" for a 4xx
		}{
			{"registered uri with client_id", url.Values{"client_id": {webClientID}, "post_logout_redirect_uri": {webPostLogout}, "state": {"s1"}}, webPostLogout + "?state=s1"},
			{"registered uri with id_token_hint", url.Values{"id_token_hint": {tr.IDToken}, "post_logout_redirect_uri": {webPostLogout}}, webPostLogout},
			{"unregistered uri", url.Values{"client_id": {webClientID}, "post_logout_redirect_uri": {"https://evil.example/"}}, ""},
			{"altered uri", url.Values{"client_id": {webClientID}, "post_logout_redirect_uri": {webPostLogout + "/x"}}, ""},
			{"uri of another client", url.Values{"client_id": {spaClientID}, "post_logout_redirect_uri": {webPostLogout}}, ""},
			{"uri without client", url.Values{"post_logout_redirect_uri": {"https://evil.example/"}}, e.issuer + "/logged-out"},
		}
		for _, c := range cases {
			resp := e.get(e.issuer + "/end_session?" + c.params.Encode())
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if c.want == "" {
				if resp.StatusCode < 400 || resp.StatusCode >= 500 || loc != "" {
					t.Errorf("%s: %d %q, want 4xx without redirect", c.name, resp.StatusCode, loc)
				}
				continue
			}
			if resp.StatusCode != http.StatusFound || loc != c.want {
				t.Errorf("%s: %d %q, want redirect to %q", c.name, resp.StatusCode, loc, c.want)
			}
		}
	})
}

func TestCORS(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		preflight := func(origin, path string) *http.Response {
			req, _ := http.NewRequest(http.MethodOptions, e.issuer+path, nil)
			req.Header.Set("Origin", origin)
			req.Header.Set("Access-Control-Request-Method", "POST")
			req.Header.Set("Access-Control-Request-Headers", "content-type")
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		ok := preflight("http://localhost:3000", "/oauth/token")
		if ok.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
			t.Errorf("registered origin not allowed: %v", ok.Header)
		}
		if ok.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("credentials allowed: %v", ok.Header)
		}
		if bad := preflight("https://evil.example", "/oauth/token"); bad.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign origin allowed: %v", bad.Header)
		}
	})
}

// Parameters PostgreSQL cannot store (NUL, invalid UTF-8) or absurdly long
// ones are the client's error: invalid_request back at its redirect URI,
// never server_error.
func TestUnstorableAuthorizeParameters(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		for name, mutate := range map[string]func(url.Values){
			"NUL in nonce":          func(v url.Values) { v.Set("nonce", "a\x00b") },
			"invalid UTF-8 hint":    func(v url.Values) { v.Set("login_hint", "\xff\xfe") },
			"huge nonce":            func(v url.Values) { v.Set("nonce", strings.Repeat("n", 4096)) },
			"NUL in acr_values":     func(v url.Values) { v.Set("acr_values", "phr \x00") },
			"invalid UTF-8 in code": func(v url.Values) { v.Set("code_challenge", "\xff"+newPKCE().challenge) },
		} {
			params := authParams(webClientID, webRedirect, "openid", newPKCE())
			mutate(params)
			resp := e.get(e.authorizeURL(params))
			resp.Body.Close()
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusFound || err != nil {
				t.Fatalf("%s: status %d", name, resp.StatusCode)
			}
			if got := loc.Query().Get("error"); got != "invalid_request" {
				t.Errorf("%s: error=%q, want invalid_request (%s)", name, got, loc)
			}
		}
	})
}

// RFC 6750 section 2.3: a token in the URL ends up in logs, history and
// Referer headers, so userinfo refuses it there, even a valid one; the
// header and the form body (section 2.2) still work.
func TestUserinfoRefusesTokenInQuery(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid profile")
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			req, _ := http.NewRequest(method, e.issuer+"/userinfo?access_token="+url.QueryEscape(tr.AccessToken), nil)
			resp := e.do(req)
			var body struct{ Error string }
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || body.Error != "invalid_request" {
				t.Errorf("%s with the token in the query: %d %q, want 400 invalid_request", method, resp.StatusCode, body.Error)
			}
		}
		if status, _ := e.userinfo(tr.AccessToken, false); status != http.StatusOK {
			t.Errorf("userinfo with the Authorization header: %d", status)
		}
		if status, _ := e.userinfo(tr.AccessToken, true); status != http.StatusOK {
			t.Errorf("userinfo with the token in the form body: %d", status)
		}
	})
}
