package op_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

func TestCodeReuseRevokesGrant(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		loc := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk))
		code := loc.Query().Get("code")
		first := e.exchange(code, webRedirect, pk)
		if first.status != http.StatusOK || first.RefreshToken == "" {
			t.Fatalf("first exchange: %d %q", first.status, first.Error)
		}
		if status, _ := e.userinfo(first.AccessToken, false); status != http.StatusOK {
			t.Fatalf("userinfo before replay: %d", status)
		}
		second := e.exchange(code, webRedirect, pk)
		if second.status != http.StatusBadRequest || second.Error != "invalid_grant" || second.AccessToken != "" {
			t.Fatalf("second exchange: %d %q", second.status, second.Error)
		}
		if status, _ := e.userinfo(first.AccessToken, false); status == http.StatusOK {
			t.Error("access token of the first exchange still works at userinfo")
		}
		if in := e.introspect(first.AccessToken); in["active"] != false {
			t.Errorf("introspection after replay = %v", in)
		}
		if tr := e.refresh(first.RefreshToken); tr.status != http.StatusBadRequest {
			t.Errorf("refresh token of the first exchange: %d", tr.status)
		}
	})
}

func TestRefreshRotationAndReuse(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		params := authParams(webClientID, webRedirect, "openid profile offline_access", pk)
		loc := e.authorize(params)
		tr := e.exchange(loc.Query().Get("code"), webRedirect, pk)
		if tr.status != http.StatusOK || tr.RefreshToken == "" {
			t.Fatalf("exchange: %d %q", tr.status, tr.Error)
		}
		orig := e.verifyIDToken(tr.IDToken, params.Get("nonce"))

		r1 := e.refresh(tr.RefreshToken)
		if r1.status != http.StatusOK || r1.RefreshToken == "" || r1.RefreshToken == tr.RefreshToken || r1.IDToken == "" {
			t.Fatalf("refresh: %d %q rotated=%v", r1.status, r1.Error, r1.RefreshToken != tr.RefreshToken)
		}
		refreshed := e.verifyIDToken(r1.IDToken, "")
		if !slices.Equal(refreshed.AuthenticationMethodsReferences, orig.AuthenticationMethodsReferences) ||
			refreshed.AuthenticationContextClassReference != testACR ||
			!refreshed.GetAuthTime().Equal(orig.GetAuthTime()) || refreshed.Subject != e.user.ID {
			t.Errorf("refreshed ID token amr=%v acr=%q auth_time=%v, want %v %q %v",
				refreshed.AuthenticationMethodsReferences, refreshed.AuthenticationContextClassReference, refreshed.GetAuthTime(),
				orig.AuthenticationMethodsReferences, testACR, orig.GetAuthTime())
		}
		if status, _ := e.userinfo(r1.AccessToken, false); status != http.StatusOK {
			t.Errorf("userinfo with refreshed access token: %d", status)
		}

		// Replaying the rotated token revokes the whole family.
		if again := e.refresh(tr.RefreshToken); again.status != http.StatusBadRequest || again.Error != "invalid_grant" {
			t.Errorf("reuse of rotated token: %d %q", again.status, again.Error)
		}
		if next := e.refresh(r1.RefreshToken); next.status != http.StatusBadRequest {
			t.Errorf("successor after reuse: %d, want family revoked", next.status)
		}
		if status, _ := e.userinfo(r1.AccessToken, false); status == http.StatusOK {
			t.Error("access token of the revoked family still works")
		}
	})
}

func TestRefreshNeedsOfflineAccess(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid email")
		if tr.RefreshToken != "" {
			t.Errorf("refresh token without offline_access")
		}
		// The spa client is not allowed offline_access: the scope is dropped.
		pk := newPKCE()
		loc := e.authorize(authParams(spaClientID, spaRedirect, "openid profile offline_access", pk))
		spa := e.token(url.Values{"grant_type": {"authorization_code"}, "client_id": {spaClientID},
			"code": {loc.Query().Get("code")}, "redirect_uri": {spaRedirect}, "code_verifier": {pk.verifier}})
		if spa.status != http.StatusOK || spa.RefreshToken != "" {
			t.Errorf("spa exchange: %d %q refresh=%q", spa.status, spa.Error, spa.RefreshToken)
		}
	})
}

func TestRevocation(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid offline_access")
		resp := e.postForm("/revoke", url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}}, webClientID, webSecret)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke access token: %d", resp.StatusCode)
		}
		if status, _ := e.userinfo(tr.AccessToken, false); status == http.StatusOK {
			t.Error("revoked access token still works")
		}
		resp = e.postForm("/revoke", url.Values{"token": {tr.RefreshToken}}, webClientID, webSecret)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke refresh token: %d", resp.StatusCode)
		}
		if r := e.refresh(tr.RefreshToken); r.status != http.StatusBadRequest {
			t.Errorf("revoked refresh token: %d", r.status)
		}
		// Unknown tokens are fine (RFC 7009), a bad client secret is not.
		resp = e.postForm("/revoke", url.Values{"token": {"no-such-token"}}, webClientID, webSecret)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("revoke unknown token: %d", resp.StatusCode)
		}
		resp = e.postForm("/revoke", url.Values{"token": {tr.RefreshToken}}, webClientID, "bad-secret-000000000")
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("revoke with bad secret: %d", resp.StatusCode)
		}
	})
}

func TestLockedAndDeletedUsersAreRefused(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		ctx := context.Background()
		tr, _ := e.login("openid offline_access")
		pk := newPKCE()
		pending := e.authorize(authParams(webClientID, webRedirect, "openid", pk))
		if err := e.store.SetUserLocked(ctx, e.user.ID, true); err != nil {
			t.Fatal(err)
		}
		if status, _ := e.userinfo(tr.AccessToken, false); status == http.StatusOK {
			t.Error("userinfo for a locked user")
		}
		if in := e.introspect(tr.AccessToken); in["active"] != false {
			t.Errorf("introspection for a locked user = %v", in)
		}
		if r := e.refresh(tr.RefreshToken); r.status != http.StatusBadRequest {
			t.Errorf("refresh for a locked user: %d", r.status)
		}
		if r := e.exchange(pending.Query().Get("code"), webRedirect, pk); r.status != http.StatusBadRequest || r.AccessToken != "" {
			t.Errorf("code exchange for a locked user: %d", r.status)
		}
		if err := e.store.SetUserLocked(ctx, e.user.ID, false); err != nil {
			t.Fatal(err)
		}
		tr2, _ := e.login("openid offline_access")
		if err := e.store.DeleteUser(ctx, e.user.ID); err != nil {
			t.Fatal(err)
		}
		if status, _ := e.userinfo(tr2.AccessToken, false); status == http.StatusOK {
			t.Error("userinfo for a deleted user")
		}
		if r := e.refresh(tr2.RefreshToken); r.status != http.StatusBadRequest {
			t.Errorf("refresh for a deleted user: %d", r.status)
		}
	})
}

func TestConcurrentCodeExchangesLeaveNoLiveToken(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		loc := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk))
		code := loc.Query().Get("code")
		results := make(chan tokenResponse, 4)
		for range 4 {
			go func() { results <- e.exchange(code, webRedirect, pk) }()
		}
		var issued []tokenResponse
		for range 4 {
			switch tr := <-results; tr.status {
			case http.StatusOK:
				issued = append(issued, tr)
			case http.StatusBadRequest:
			default:
				t.Errorf("exchange: status %d %q", tr.status, tr.Error)
			}
		}
		// At most one exchange may win, and if several raced, none of
		// their tokens may survive.
		if len(issued) > 1 {
			t.Errorf("%d exchanges of one code succeeded", len(issued))
		}
		for _, tr := range issued {
			status, _ := e.userinfo(tr.AccessToken, false)
			if status == http.StatusOK {
				t.Error("a token from a raced code is still live")
			}
		}
	})
}

// A used code replayed by anyone who cannot prove to be the client it was
// issued to (unknown client_id, no or a wrong secret, another client, a
// wrong PKCE verifier) is refused without touching the grant: otherwise
// whoever saw a code in a browser history or log could revoke a customer's
// tokens at will. Only the real client's replay revokes.
func TestCodeReplayByAnotherPartyKeepsGrant(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
		first := e.exchange(code, webRedirect, pk)
		if first.status != http.StatusOK || first.RefreshToken == "" {
			t.Fatalf("first exchange: %d %q", first.status, first.Error)
		}
		replay := func(extra url.Values) url.Values {
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {webRedirect}, "code_verifier": {pk.verifier}}
			for k, v := range extra {
				form[k] = v
			}
			return form
		}
		attacks := []struct {
			name       string
			form       url.Values
			user, pass string
		}{
			{"unknown client_id, no secret", replay(url.Values{"client_id": {"nobody"}}), "", ""},
			{"no client at all", replay(nil), "", ""},
			{"right client_id, no secret", replay(url.Values{"client_id": {webClientID}}), "", ""},
			{"right client_id, wrong Basic secret", replay(nil), webClientID, "wrong-secret-0123456789"},
			{"right client_id, wrong posted secret", replay(url.Values{"client_id": {webClientID}, "client_secret": {"wrong-secret-0123456789"}}), "", ""},
			{"unknown client in Basic", replay(nil), "nobody", "whatever-0123456789"},
			{"another, public client", replay(url.Values{"client_id": {spaClientID}}), "", ""},
			{"right secret, wrong verifier", replay(url.Values{"code_verifier": {newPKCE().verifier}}), webClientID, webSecret},
		}
		for _, a := range attacks {
			tr := decodeToken(t, e.postForm("/oauth/token", a.form, a.user, a.pass))
			if tr.status < 400 || tr.status >= 500 || tr.AccessToken != "" {
				t.Errorf("%s: %d %q, want a 4xx", a.name, tr.status, tr.Error)
			}
			if status, _ := e.userinfo(first.AccessToken, false); status != http.StatusOK {
				t.Fatalf("%s: the replay revoked the grant (userinfo %d)", a.name, status)
			}
		}
		if r := e.refresh(first.RefreshToken); r.status != http.StatusOK {
			t.Fatalf("refresh token of the first exchange after the attacks: %d %q", r.status, r.Error)
		}
	})
}

// The public client proves itself with its PKCE verifier: its replay
// revokes, one without the verifier does not.
func TestPublicClientCodeReplay(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		pk := newPKCE()
		code := e.authorize(authParams(spaClientID, spaRedirect, "openid", pk)).Query().Get("code")
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {spaClientID}, "code": {code},
			"redirect_uri": {spaRedirect}, "code_verifier": {pk.verifier}}
		first := e.token(form)
		if first.status != http.StatusOK {
			t.Fatalf("first exchange: %d %q", first.status, first.Error)
		}
		wrong := url.Values{}
		for k, v := range form {
			wrong[k] = v
		}
		wrong.Set("code_verifier", newPKCE().verifier)
		if tr := e.token(wrong); tr.status != http.StatusBadRequest {
			t.Fatalf("replay with a wrong verifier: %d %q", tr.status, tr.Error)
		}
		if status, _ := e.userinfo(first.AccessToken, false); status != http.StatusOK {
			t.Fatalf("a replay without the verifier revoked the grant (userinfo %d)", status)
		}
		if tr := e.token(form); tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Fatalf("replay by the client: %d %q", tr.status, tr.Error)
		}
		if status, _ := e.userinfo(first.AccessToken, false); status == http.StatusOK {
			t.Error("the client's own replay left the grant alive")
		}
	})
}

// RFC 7009 section 2.1: a wrong token_type_hint must not make revocation
// miss the token.
func TestRevocationIgnoresAWrongHint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		tr, _ := e.login("openid offline_access")
		resp := e.postForm("/revoke", url.Values{"token": {tr.RefreshToken}, "token_type_hint": {"access_token"}}, webClientID, webSecret)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if r := e.refresh(tr.RefreshToken); r.status != http.StatusBadRequest {
			t.Errorf("refresh token revoked with the access_token hint still works: %d", r.status)
		}
		resp = e.postForm("/revoke", url.Values{"token": {tr.AccessToken}, "token_type_hint": {"refresh_token"}}, webClientID, webSecret)
		resp.Body.Close()
		if status, _ := e.userinfo(tr.AccessToken, false); status == http.StatusOK {
			t.Error("access token revoked with the refresh_token hint still works")
		}
	})
}
