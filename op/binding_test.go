package op_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// otherBrowser is a second user agent with its own cookies.
func (e *env) otherBrowser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: e.client.Timeout, CheckRedirect: e.client.CheckRedirect}
}

// The attack: the attacker starts a request, the victim signs it in on our
// real pages, the attacker collects the code at the callback. Only the
// browser that called /authorize may pass the login pages and the callback.
func TestAuthRequestIsBoundToItsBrowser(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		attacker := e.otherBrowser()
		resp, err := attacker.Get(e.authorizeURL(authParams(webClientID, webRedirect, "openid", pk)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		login, err := resp.Location()
		if err != nil {
			t.Fatalf("authorize: %d, no login redirect", resp.StatusCode)
		}
		id := login.Query().Get("authRequestID")

		victimReq, _ := http.NewRequest(http.MethodGet, login.String(), nil)
		if e.p.BrowserBound(victimReq, id) {
			t.Error("a browser without the binding cookie counts as bound")
		}
		attackerReq, _ := http.NewRequest(http.MethodGet, login.String(), nil)
		for _, c := range attacker.Jar.Cookies(login) {
			attackerReq.AddCookie(c)
		}
		if !e.p.BrowserBound(attackerReq, id) {
			t.Fatal("the browser that started the request is not bound to it")
		}
		if e.p.BrowserBound(attackerReq, "another-id") {
			t.Error("a binding cookie counts for another request")
		}

		// The request is signed in but has no code yet, as a replica of
		// the previous version leaves it (its login sent the browser to the
		// callback): the callback mints the code, for the bound browser only.
		callback := e.completedWithoutCode(id)
		victim := e.get(callback)
		victim.Body.Close()
		if victim.StatusCode != http.StatusBadRequest || victim.Header.Get("Location") != "" {
			t.Errorf("callback from a foreign browser: %d %q, want 400 without redirect", victim.StatusCode, victim.Header.Get("Location"))
		}
		// Here the attacker holds the cookie, so only the login pages'
		// BrowserBound check (above) stops this; the callback answers.
		resp, err = attacker.Get(callback)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("callback from the starting browser: %d", resp.StatusCode)
		}
		for _, c := range attacker.Jar.Cookies(login) {
			if c.Value != "" && c.Name == "idp_ar_"+id {
				t.Error("binding cookie not cleared by the callback")
			}
		}
	})
}

func TestUnsupportedResponseModeIsRedirectedAsError(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		for _, mode := range []string{"form_post", "fragment", "query.jwt", "nonsense"} {
			params := authParams(webClientID, webRedirect, "openid", newPKCE())
			params.Set("response_mode", mode)
			resp := e.get(e.authorizeURL(params))
			resp.Body.Close()
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusFound || err != nil {
				t.Errorf("%s: status %d, want a redirect to the client", mode, resp.StatusCode)
				continue
			}
			got := loc.Query()
			if mode == "fragment" {
				got, _ = url.ParseQuery(loc.Fragment)
			}
			if loc.Scheme+"://"+loc.Host+loc.Path != webRedirect || got.Get("error") != "invalid_request" ||
				got.Get("state") != params.Get("state") || got.Get("iss") != e.issuer || got.Get("code") != "" {
				t.Errorf("%s: redirected to %s", mode, loc)
			}
		}
		// Nothing may be redirected to an unregistered URI.
		params := authParams(webClientID, "https://evil.example/cb", "openid", newPKCE())
		params.Set("response_mode", "form_post")
		resp := e.get(e.authorizeURL(params))
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("foreign redirect_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

func TestCompleteRefusesFinishedOrExpiredRequests(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		ctx := context.Background()
		resp := e.get(e.authorizeURL(authParams(webClientID, webRedirect, "openid", newPKCE())))
		resp.Body.Close()
		login, _ := resp.Location()
		id := login.Query().Get("authRequestID")
		now := time.Now().Truncate(time.Second)
		if _, err := complete(ctx, e.p, id, unsavedSession(e.user.ID, now, "pwd")); err != nil {
			t.Fatalf("first Complete: %v", err)
		}
		other := &storage.User{ID: "other-user", LoginID: "jiro", Email: "jiro@example.jp", DisplayName: "次郎", PasswordHash: "unused"}
		if err := e.store.CreateUser(ctx, other); err != nil {
			t.Fatal(err)
		}
		if _, err := complete(ctx, e.p, id, unsavedSession(other.ID, now, "hwk", "user", "mfa")); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("second Complete: %v, want ErrConflict", err)
		}
		if ar, err := e.store.AuthRequestByID(ctx, id); err != nil || ar.UserID != e.user.ID {
			t.Errorf("request after refused Complete: %+v %v", ar, err)
		}

		expired := &storage.AuthRequest{
			ID: "expired-request", ClientID: webClientID, RedirectURI: webRedirect, Scopes: []string{"openid"},
			ResponseType: "code", CodeChallenge: "x", CodeChallengeMethod: "S256",
			CreatedAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute),
		}
		if err := e.store.CreateAuthRequest(ctx, expired); err != nil {
			t.Fatal(err)
		}
		if _, err := complete(ctx, e.p, expired.ID, unsavedSession(e.user.ID, now, "pwd")); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Complete of an expired request: %v, want ErrNotFound", err)
		}
	})
}

func TestAllowedReturnURL(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *op.Config) {
		c.Clients = append(c.Clients, op.ClientConfig{
			ID: "ports", Public: true, RedirectURIs: []string{"https://Loan.Example:8443/cb"},
			PostLogoutRedirectURIs: []string{"https://logout.example/bye"},
		})
	})
	cases := map[string]bool{
		"https://rp.example/":                     true, // origin of webRedirect
		"https://rp.example/menu?x=1#top":         true,
		"https://RP.example:443/menu":             true,
		"https://loan.example:8443/account":       true,
		"https://logout.example/":                 true,  // a post-logout URI
		"http://localhost:3000/":                  true,  // the public client
		"http://rp.example/":                      false, // scheme differs
		"https://rp.example:8443/":                false, // port differs
		"https://loan.example/account":            false,
		"http://localhost:3001/":                  false,
		"https://evil.example/":                   false,
		"https://rp.example.evil.example/":        false,
		"https://rp.example@evil.example/":        false,
		"https://evil.example\\@rp.example/":      false,
		"https://evil.example\\.rp.example/":      false,
		"//rp.example/":                           false,
		"/account":                                false,
		"javascript:alert(1)//https://rp.example": false,
		"https://rp.example\t/":                   false,
		"":                                        false,
		"%zz":                                     false,
	}
	for raw, want := range cases {
		if got := e.p.AllowedReturnURL(raw); got != want {
			t.Errorf("AllowedReturnURL(%q) = %v, want %v", raw, got, want)
		}
	}
}

// Requests that end (code issued, or an error such as prompt=none's
// login_required) take their binding cookie with them.
func TestBindingCookiesDoNotPileUp(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	for range 3 {
		params := authParams(webClientID, webRedirect, "openid", newPKCE())
		params.Set("prompt", "none")
		if loc := e.authorize(params); loc.Query().Get("error") != "login_required" {
			t.Fatalf("prompt=none: %s", loc)
		}
		e.authorize(authParams(webClientID, webRedirect, "openid", newPKCE()))
	}
	u, _ := url.Parse(e.issuer)
	for _, c := range e.client.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "idp_ar_") {
			t.Errorf("binding cookie %s left behind", c.Name)
		}
	}
}
