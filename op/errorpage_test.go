package op_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/storagetest"
)

// pageOf stands in for package login's error page: it names the reason.
func pageOf(w http.ResponseWriter, _ *http.Request, status int, reason op.PageReason) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<p>page:%s</p>", reason)
}

const (
	devClientID = "devweb"
	devRedirect = "http://localhost:8081/cb" // confidential, http: what `idp dev` registers
)

func withErrorPage(c *op.Config) {
	c.ErrorPage = pageOf
	hash, _ := bcrypt.GenerateFromPassword([]byte(webSecret), bcrypt.MinCost)
	c.Clients = append(c.Clients, op.ClientConfig{ID: devClientID, SecretHash: string(hash), RedirectURIs: []string{devRedirect}})
}

// An /authorize request that names no trustworthy client and
// redirect_uri, and a path the provider does not serve, get the pages'
// error page and never a redirect (RFC 6749 section 4.1.2.1); zitadel's
// plain English texts are not shown.
func TestAuthorizeRefusalsWithoutATrustedRedirectShowTheErrorPage(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, withErrorPage)
		ok := authParams(webClientID, webRedirect, "openid", newPKCE())
		with := func(k, v string) string {
			p := url.Values{}
			for kk, vv := range ok {
				p[kk] = vv
			}
			if v == "" {
				p.Del(k)
			} else {
				p.Set(k, v)
			}
			return e.authorizeURL(p)
		}
		cases := []struct {
			name, url string
			status    int
			reason    op.PageReason
		}{
			{"unknown client", with("client_id", "nobody"), 400, op.ReasonAuthorizeRequest},
			{"unregistered redirect_uri", with("redirect_uri", "https://evil.example/cb"), 400, op.ReasonAuthorizeRequest},
			{"redirect_uri of another client", with("redirect_uri", spaRedirect), 400, op.ReasonAuthorizeRequest},
			{"redirect_uri missing", with("redirect_uri", ""), 400, op.ReasonAuthorizeRequest},
			{"client_id missing", with("client_id", ""), 400, op.ReasonAuthorizeRequest},
			{"nothing at all", e.issuer + "/authorize", 400, op.ReasonAuthorizeRequest},
			{"unregistered redirect_uri with response_type=token", with("redirect_uri", "https://evil.example/cb") + "&response_type=token", 400, op.ReasonAuthorizeRequest},
			{"callback of an unknown request", e.issuer + "/authorize/callback?id=nope", 400, op.ReasonAuthRequestGone},
			{"unknown path", e.issuer + "/nope", 404, op.ReasonNotFound},
		}
		for _, c := range cases {
			resp := e.get(c.url)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || resp.Header.Get("Location") != "" || string(body) != "<p>page:"+string(c.reason)+"</p>" {
				t.Errorf("%s: %d Location=%q body %q, want %d and page:%s", c.name, resp.StatusCode, resp.Header.Get("Location"), body, c.status, c.reason)
			}
		}
	})
}

// Once client and redirect_uri are a registered pair, the errors RFC 6749
// section 4.1.2.1 names go back to that redirect_uri with error, state and
// iss: response_type=token for our code-only clients (zitadel answered it
// with a text page for an http redirect_uri), a missing response_type,
// parameters zitadel cannot decode, a scope without openid.
func TestAuthorizeErrorsForATrustedRedirectGoBackToTheClient(t *testing.T) {
	e := newEnv(t, "sqlite", withErrorPage)
	cases := []struct {
		name, client, redirect, key, value, wantError string
	}{
		{"response_type=token, http redirect", devClientID, devRedirect, "response_type", "token", "unsupported_response_type"},
		{"response_type=token, https redirect", webClientID, webRedirect, "response_type", "token", "unsupported_response_type"},
		{"response_type=id_token", webClientID, webRedirect, "response_type", "id_token", "unsupported_response_type"},
		{"response_type missing", webClientID, webRedirect, "response_type", "", "invalid_request"},
		{"max_age not a number", webClientID, webRedirect, "max_age", "abc", "invalid_request"},
		{"scope without openid", webClientID, webRedirect, "scope", "profile", "invalid_scope"},
	}
	for _, c := range cases {
		p := authParams(c.client, c.redirect, "openid", newPKCE())
		if c.value == "" {
			p.Del(c.key)
		} else {
			p.Set(c.key, c.value)
		}
		resp := e.get(e.authorizeURL(p))
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), c.redirect+"?") {
			t.Errorf("%s: %d Location=%q, want a 302 to %s", c.name, resp.StatusCode, resp.Header.Get("Location"), c.redirect)
			continue
		}
		q := loc.Query()
		if q.Get("error") != c.wantError || q.Get("state") != p.Get("state") || q.Get("iss") != e.issuer || loc.Fragment != "" {
			t.Errorf("%s: Location %s, want error=%s with state and iss in the query", c.name, loc, c.wantError)
		}
	}
}

// The callback of a live request opened in a browser without its binding
// cookie is the other-browser page, not a redirect and not "expired".
func TestCallbackInAnotherBrowserShowsItsPage(t *testing.T) {
	e := newEnv(t, "sqlite", withErrorPage)
	resp := e.get(e.authorizeURL(authParams(webClientID, webRedirect, "openid", newPKCE())))
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize: %d, no Location", resp.StatusCode)
	}
	other := &http.Client{CheckRedirect: e.client.CheckRedirect}
	resp, err = other.Get(e.issuer + "/authorize/callback?id=" + url.QueryEscape(loc.Query().Get("authRequestID")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || string(body) != "<p>page:other_browser</p>" {
		t.Fatalf("callback in another browser: %d %q", resp.StatusCode, body)
	}
}
