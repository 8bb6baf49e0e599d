package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// passwordLogin signs a customer without a passkey in with ID + password
// and has the bank redeem the code.
func (cu *customer) passwordLogin() {
	cu.t.Helper()
	pk := newPKCE()
	if status, _, body := cu.follow(authorizeURL(cu.st, pk, "")); status != http.StatusOK {
		cu.t.Fatalf("authorize: status %d, want S1\n%s", status, body)
	}
	p := cu.postForm("/login", url.Values{"loginID": {cu.user.LoginID}, "password": {cu.pw}})
	if p.status == http.StatusSeeOther && p.header.Get("Location") == "/login/passkey/offer" {
		p = cu.postForm("/login/passkey/offer/skip", nil) // 「今はしない」
	}
	if p.status != http.StatusSeeOther {
		cu.t.Fatalf("password login: status %d\n%s", p.status, p.body)
	}
	cu.tokens = cu.exchange(p.header.Get("Location"), pk)
}

// RP-initiated logout that the OP refuses (an unknown or mismatched
// client_id, a post_logout_redirect_uri the client never registered) must
// leave the customer signed in and say so; before, the session was deleted
// first and the OP's refusal came after.
func TestEndSessionRefusedByTheOPKeepsTheSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		cu := newCustomer(t, st, c, "leaver")
		cu.passwordLogin()
		if !cu.ssoSignsIn() {
			t.Fatal("no SSO session after the login")
		}
		hint := cu.tokens.IDToken
		confirm := func(q url.Values) page {
			q.Set("confirm_logout", "1")
			return cu.postForm("/end_session", q)
		}
		for _, tc := range []struct {
			name string
			send func() page
		}{
			{"hint with an unregistered post_logout_redirect_uri", func() page {
				return cu.get("/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode())
			}},
			{"hint with another client's client_id", func() page {
				return cu.get("/end_session?" + url.Values{"id_token_hint": {hint}, "client_id": {"demo-rp"}}.Encode())
			}},
			{"confirmed, unregistered post_logout_redirect_uri", func() page {
				return confirm(url.Values{"client_id": {bankClientID}, "post_logout_redirect_uri": {"https://evil.example/"}})
			}},
			{"confirmed, unknown client_id", func() page {
				return confirm(url.Values{"client_id": {"nobody"}, "post_logout_redirect_uri": {bankBye}})
			}},
			{"confirmed, post_logout_redirect_uri of another client", func() page {
				return confirm(url.Values{"client_id": {bankClientID}, "post_logout_redirect_uri": {st.RPURL + "/"}})
			}},
		} {
			p := tc.send()
			if p.status < 400 || p.status >= 500 || !strings.Contains(p.body, "ログアウトできませんでした") || !strings.Contains(p.header.Get("Content-Type"), "text/html") {
				t.Errorf("%s: status %d, %s\n%s", tc.name, p.status, p.header.Get("Content-Type"), p.body)
			}
			if !cu.ssoSignsIn() {
				t.Fatalf("%s: the refused logout ended the session", tc.name)
			}
		}
		for _, e := range c.auditEvents() {
			if e.Type == "session.ended" {
				t.Fatalf("session.ended audited for a refused logout: %+v", e)
			}
		}

		// The real thing still works, and goes where the client registered.
		p := cu.get("/end_session?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bankBye}, "state": {"s"}}.Encode())
		if p.status != http.StatusFound || !strings.HasPrefix(p.header.Get("Location"), bankBye+"?state=s") {
			t.Fatalf("valid logout: status %d Location %q\n%s", p.status, p.header.Get("Location"), p.body)
		}
		if cu.ssoSignsIn() {
			t.Fatal("the session survived a valid logout")
		}
	})
}
