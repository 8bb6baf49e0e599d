package op_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func TestDiscovery(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		resp := e.get(e.issuer + "/.well-known/openid-configuration")
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if doc["issuer"] != e.issuer {
			t.Errorf("issuer = %v, want %s", doc["issuer"], e.issuer)
		}
		if doc["authorization_response_iss_parameter_supported"] != true {
			t.Errorf("authorization_response_iss_parameter_supported = %v", doc["authorization_response_iss_parameter_supported"])
		}
		wantList := map[string][]string{
			"response_types_supported":         {"code"},
			"grant_types_supported":            {"authorization_code", "refresh_token"},
			"code_challenge_methods_supported": {"S256"},
			"response_modes_supported":         {"query"},
			// zitadel accepts client_secret_post at the token and
			// revocation endpoints (TestClientSecretPost), so it is
			// advertised; introspection takes Basic only.
			"token_endpoint_auth_methods_supported":         {"client_secret_basic", "client_secret_post", "none"},
			"revocation_endpoint_auth_methods_supported":    {"client_secret_basic", "client_secret_post", "none"},
			"introspection_endpoint_auth_methods_supported": {"client_secret_basic"},
		}
		for field, want := range wantList {
			if got := stringList(doc[field]); !slices.Equal(got, want) {
				t.Errorf("%s = %v, want %v", field, got, want)
			}
		}
		for _, absent := range []string{"device_authorization_endpoint", "request_object_signing_alg_values_supported"} {
			if _, ok := doc[absent]; ok {
				t.Errorf("%s still advertised", absent)
			}
		}
		// A registered browser relying party reads the document
		// cross-origin; another origin does not.
		for origin, want := range map[string]string{"http://localhost:3000": "http://localhost:3000", "https://evil.example": ""} {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+"/.well-known/openid-configuration", nil)
			req.Header.Set("Origin", origin)
			cresp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			cresp.Body.Close()
			if got := cresp.Header.Get("Access-Control-Allow-Origin"); got != want {
				t.Errorf("discovery from %s: Access-Control-Allow-Origin = %q, want %q", origin, got, want)
			}
		}
		if doc["jwks_uri"] != e.issuer+"/keys" {
			t.Errorf("jwks_uri = %v", doc["jwks_uri"])
		}
		keys := e.get(e.issuer + "/keys")
		defer keys.Body.Close()
		var set struct{ Keys []map[string]any }
		if err := json.NewDecoder(keys.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
			t.Fatalf("jwks: %v, %d keys", err, len(set.Keys))
		}
		if set.Keys[0]["alg"] != "RS256" || set.Keys[0]["use"] != "sig" || set.Keys[0]["d"] != nil {
			t.Errorf("jwks key = %v", set.Keys[0])
		}
	})
}

func stringList(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestCodeFlowHappyPath(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		params := authParams(webClientID, webRedirect, "openid profile email", pk)
		loc := e.authorize(params)
		if got := loc.Scheme + "://" + loc.Host + loc.Path; got != webRedirect {
			t.Fatalf("redirected to %s, want %s", got, webRedirect)
		}
		q := loc.Query()
		if q.Get("state") != params.Get("state") {
			t.Errorf("state = %q, want %q", q.Get("state"), params.Get("state"))
		}
		if q.Get("iss") != e.issuer {
			t.Errorf("iss = %q, want %q (RFC 9207)", q.Get("iss"), e.issuer)
		}
		tr := e.exchange(q.Get("code"), webRedirect, pk)
		if tr.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", tr.status, tr.Error)
		}
		if tr.RefreshToken != "" {
			t.Error("refresh token issued without offline_access")
		}
		claims := e.verifyIDToken(tr.IDToken, params.Get("nonce"))
		if claims.Subject != e.user.ID {
			t.Errorf("sub = %q, want %q", claims.Subject, e.user.ID)
		}
		if !slices.Equal(claims.AuthenticationMethodsReferences, []string{"pwd"}) || claims.AuthenticationContextClassReference != testACR {
			t.Errorf("amr/acr = %v/%q", claims.AuthenticationMethodsReferences, claims.AuthenticationContextClassReference)
		}
		if at := claims.GetAuthTime(); at.IsZero() || time.Since(at) > 5*time.Minute {
			t.Errorf("auth_time = %v", at)
		}
		if claims.Nonce != params.Get("nonce") {
			t.Errorf("nonce = %q", claims.Nonce)
		}
		if claims.PreferredUsername != testLoginID || claims.Email != testEmail || !bool(claims.EmailVerified) || claims.Name != testDisplayName {
			t.Errorf("profile/email claims = %+v", claims.UserInfoProfile)
		}

		for _, post := range []bool{false, true} {
			status, info := e.userinfo(tr.AccessToken, post)
			if status != http.StatusOK || info["sub"] != e.user.ID || info["preferred_username"] != testLoginID ||
				info["email"] != testEmail || info["email_verified"] != true || info["name"] != testDisplayName {
				t.Errorf("userinfo (post=%v): %d %v", post, status, info)
			}
		}
		in := e.introspect(tr.AccessToken)
		if in["active"] != true || in["sub"] != e.user.ID || in["client_id"] != webClientID {
			t.Errorf("introspection = %v", in)
		}
		// A wrong client secret is refused.
		resp := e.postForm("/oauth/introspect", url.Values{"token": {tr.AccessToken}}, webClientID, "wrong-secret-0000000")
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("introspect with wrong secret: %d, want 401", resp.StatusCode)
		}
	})
}

func TestScopeLimitsClaims(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid")
		status, info := e.userinfo(tr.AccessToken, false)
		if status != http.StatusOK || info["sub"] != e.user.ID {
			t.Fatalf("userinfo: %d %v", status, info)
		}
		for _, k := range []string{"email", "name", "preferred_username"} {
			if _, ok := info[k]; ok {
				t.Errorf("%s released without its scope", k)
			}
		}
	})
}

func TestPKCERequired(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		cases := map[string]func(url.Values){
			"missing challenge": func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") },
			"plain":             func(v url.Values) { v.Set("code_challenge_method", "plain") },
			"no method":         func(v url.Values) { v.Del("code_challenge_method") },
		}
		for name, mutate := range cases {
			for _, cl := range []struct{ id, redirect string }{{webClientID, webRedirect}, {spaClientID, spaRedirect}} {
				params := authParams(cl.id, cl.redirect, "openid", newPKCE())
				mutate(params)
				resp := e.get(e.authorizeURL(params))
				resp.Body.Close()
				loc, err := resp.Location()
				if resp.StatusCode != http.StatusFound || err != nil {
					t.Fatalf("%s/%s: status %d", name, cl.id, resp.StatusCode)
				}
				q := loc.Query()
				if q.Get("error") != "invalid_request" || q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer {
					t.Errorf("%s/%s: redirect %s", name, cl.id, loc)
				}
			}
		}

		pk := newPKCE()
		loc := e.authorize(authParams(webClientID, webRedirect, "openid", pk))
		wrong := newPKCE()
		if tr := e.exchange(loc.Query().Get("code"), webRedirect, wrong); tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("wrong verifier: %d %q", tr.status, tr.Error)
		}
		noVerifier := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {webRedirect}})
		if noVerifier.status != http.StatusBadRequest {
			t.Errorf("missing verifier: %d %q", noVerifier.status, noVerifier.Error)
		}
	})
}

func TestRedirectURIMustMatchExactly(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		for name, params := range map[string]url.Values{
			"unregistered":   authParams(webClientID, "https://evil.example/cb", "openid", newPKCE()),
			"extra path":     authParams(webClientID, webRedirect+"/x", "openid", newPKCE()),
			"extra query":    authParams(webClientID, webRedirect+"?a=b", "openid", newPKCE()),
			"trailing slash": authParams(webClientID, webRedirect+"/", "openid", newPKCE()),
			"other port":     authParams(spaClientID, "http://localhost:3001/cb", "openid", newPKCE()),
			"unknown client": authParams("nobody", webRedirect, "openid", newPKCE()),
		} {
			resp := e.get(e.authorizeURL(params))
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
				t.Errorf("%s: status %d, Location %q; want 400 without redirect", name, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		// The code must be redeemed with the same redirect_uri.
		pk := newPKCE()
		loc := e.authorize(authParams(webClientID, webRedirect, "openid", pk))
		if tr := e.exchange(loc.Query().Get("code"), webRedirect+"/x", pk); tr.status != http.StatusBadRequest {
			t.Errorf("exchange with other redirect_uri: %d", tr.status)
		}
	})
}

func TestPromptNoneRedirectError(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		params := authParams(webClientID, webRedirect, "openid", newPKCE())
		params.Set("prompt", "none")
		loc := e.authorize(params)
		q := loc.Query()
		if q.Get("error") != "login_required" || q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer {
			t.Errorf("redirect = %s", loc)
		}
	})
}

func TestAuthRequestCopiesLoginParameters(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		params := authParams(webClientID, webRedirect, "openid profile", newPKCE())
		params.Set("prompt", "login")
		params.Set("max_age", "300")
		params.Set("login_hint", "taro")
		params.Set("acr_values", "urn:a urn:b")
		params.Set("ui_locales", "ja en")
		resp := e.get(e.authorizeURL(params))
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil || loc.Path != "/login" {
			t.Fatalf("authorize: %d %v", resp.StatusCode, loc)
		}
		ar, err := e.store.AuthRequestByID(context.Background(), loc.Query().Get("authRequestID"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ar.Prompt, []string{"login"}) || ar.LoginHint != "taro" || !slices.Equal(ar.ACRValues, []string{"urn:a", "urn:b"}) ||
			!slices.Equal(ar.UILocales, []string{"ja", "en"}) || ar.Nonce != params.Get("nonce") || ar.MaxAge == nil {
			t.Errorf("stored request = %+v", ar)
		}
		if ar.ExpiresAt.Sub(ar.CreatedAt) != 30*time.Minute {
			t.Errorf("auth request lifetime = %v", ar.ExpiresAt.Sub(ar.CreatedAt))
		}
		if ar.CodeChallengeMethod != "S256" || ar.CodeChallenge != params.Get("code_challenge") {
			t.Errorf("pkce = %q %q", ar.CodeChallenge, ar.CodeChallengeMethod)
		}
	})
}

// signedInCallback starts an authorization request with pk, completes it
// without a code and returns its callback URL.
func (e *env) signedInCallback(pk pkce) string {
	e.t.Helper()
	resp := e.get(e.authorizeURL(authParams(webClientID, webRedirect, "openid", pk)))
	resp.Body.Close()
	login, _ := resp.Location()
	return e.completedWithoutCode(login.Query().Get("authRequestID"))
}

// completedWithoutCode completes request id as a replica of the previous
// version did, with no code (its login then sent the browser to the
// callback, which mints one), and returns the callback URL. A rolling
// deploy meets such requests.
func (e *env) completedWithoutCode(id string) string {
	e.t.Helper()
	if _, err := e.store.CompleteAuthRequest(e.t.Context(), id, storage.Completion{
		UserID: e.user.ID, AuthTime: time.Now().Add(-time.Minute).Truncate(time.Second), AMR: []string{"pwd"}, ACR: testACR,
	}); err != nil {
		e.t.Fatalf("complete %s without a code: %v", id, err)
	}
	return e.issuer + "/authorize/callback?id=" + url.QueryEscape(id)
}

func TestCallbackCannotMintASecondCode(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		callback := e.signedInCallback(pk)
		first := e.get(callback)
		first.Body.Close()
		if first.StatusCode != http.StatusFound {
			t.Fatalf("callback: %d", first.StatusCode)
		}
		again := e.get(callback)
		again.Body.Close()
		if again.StatusCode != http.StatusBadRequest || again.Header.Get("Location") != "" {
			t.Errorf("replayed callback: %d %q", again.StatusCode, again.Header.Get("Location"))
		}
		loc, _ := first.Location()
		if tr := e.exchange(loc.Query().Get("code"), webRedirect, pk); tr.status != http.StatusOK {
			t.Errorf("the first code no longer works: %d %q", tr.status, tr.Error)
		}
	})
}

// The secret in the form body (RFC 6749 section 2.3.1) works where the
// discovery document says it does, and a wrong one there is refused.
func TestClientSecretPost(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect},
			"code_verifier": {pk.verifier}, "client_id": {webClientID}, "client_secret": {webSecret}}
		tr := decodeToken(t, e.postForm("/oauth/token", form, "", ""))
		if tr.status != http.StatusOK || tr.RefreshToken == "" {
			t.Fatalf("exchange with client_secret_post: %d %q", tr.status, tr.Error)
		}
		refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken},
			"client_id": {webClientID}, "client_secret": {"wrong-secret-0123456789"}}
		if bad := decodeToken(t, e.postForm("/oauth/token", refresh, "", "")); bad.status != http.StatusUnauthorized || bad.Error != "invalid_client" {
			t.Errorf("refresh with a wrong posted secret: %d %q", bad.status, bad.Error)
		}
		refresh.Set("client_secret", webSecret)
		r1 := decodeToken(t, e.postForm("/oauth/token", refresh, "", ""))
		if r1.status != http.StatusOK {
			t.Fatalf("refresh with client_secret_post: %d %q", r1.status, r1.Error)
		}
		resp := e.postForm("/revoke", url.Values{"token": {r1.RefreshToken}, "client_id": {webClientID}, "client_secret": {webSecret}}, "", "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke with client_secret_post: %d", resp.StatusCode)
		}
		if again := e.refresh(r1.RefreshToken); again.status != http.StatusBadRequest {
			t.Errorf("refresh token revoked with client_secret_post: %d", again.status)
		}
	})
}

// A callback whose code was stored but whose answer never reached the
// browser (the database went away in between) is retried in the same
// browser: it gets a new code, the old one is dead, and after the
// exchange the request is answered for good.
func TestRetriedCallbackReplacesItsCode(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		callback := e.signedInCallback(pk)
		// The first answer is lost: the browser keeps its binding cookie.
		u, _ := url.Parse(e.issuer)
		keep := e.client.Jar.Cookies(u)
		first := e.get(callback)
		first.Body.Close()
		e.client.Jar.SetCookies(u, keep)
		lost, _ := first.Location()
		again := e.get(callback)
		again.Body.Close()
		if again.StatusCode != http.StatusFound {
			t.Fatalf("retried callback: %d", again.StatusCode)
		}
		loc, _ := again.Location()
		if tr := e.exchange(lost.Query().Get("code"), webRedirect, pk); tr.status != http.StatusBadRequest {
			t.Fatalf("the replaced code still works: %d", tr.status)
		}
		if tr := e.exchange(loc.Query().Get("code"), webRedirect, pk); tr.status != http.StatusOK {
			t.Fatalf("the new code: %d %q", tr.status, tr.Error)
		}
		e.client.Jar.SetCookies(u, keep)
		late := e.get(callback)
		late.Body.Close()
		if late.StatusCode != http.StatusBadRequest || late.Header.Get("Location") != "" {
			t.Fatalf("callback after the exchange: %d %q", late.StatusCode, late.Header.Get("Location"))
		}
	})
}
