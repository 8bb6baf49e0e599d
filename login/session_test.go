package login

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// issueTokens stores a refresh token with its access token for userID, as
// the OP does at a code exchange; it returns their IDs.
func (e *env) issueTokens(userID, name string) (refreshID, accessID string) {
	e.t.Helper()
	now := time.Now().UTC()
	refreshID, accessID = storage.HashSecret("rt-"+name), "at-"+name
	err := e.store.CreateRefreshToken(context.Background(),
		&storage.RefreshToken{ID: refreshID, ClientID: "demo", Subject: userID, AMR: []string{"hwk"}, AuthTime: now,
			AccessTokenID: accessID, CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)},
		&storage.AccessToken{ID: accessID, ClientID: "demo", Subject: userID, RefreshTokenID: refreshID,
			CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	return refreshID, accessID
}

// tokensLive reports whether the refresh token can still be used and the
// access token still exists.
func (e *env) tokensLive(refreshID, accessID string) (refresh, access bool) {
	e.t.Helper()
	rt, err := e.store.RefreshTokenByID(context.Background(), refreshID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.t.Fatal(err)
	}
	_, aerr := e.store.AccessTokenByID(context.Background(), accessID)
	if aerr != nil && !errors.Is(aerr, storage.ErrNotFound) {
		e.t.Fatal(aerr)
	}
	return err == nil && rt.RevokedAt == nil && rt.RotatedAt == nil, aerr == nil
}

// signsIn reports whether the browser's SSO session still completes an
// auth request without the form.
func (e *env) signsIn() bool {
	e.t.Helper()
	ar := e.authRequest(nil)
	r := e.get("/login?authRequestID=" + ar)
	switch {
	case r.status == http.StatusSeeOther && r.location() == "/cb?id="+ar:
		return true
	case r.status == http.StatusOK:
		return false
	}
	e.t.Fatalf("GET /login: status %d, Location %q", r.status, r.location())
	return false
}

// A lost phone: deleting its passkey on S8 ends the sessions it opened and
// every token relying parties hold, but not the browser that deleted it,
// and nothing of another customer.
func TestS8DeleteEndsTheUsersOtherSessionsAndTokens(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, b, ub, _ := enrolledPair(t, flavor)
		// The "phone": a second browser signed in with the passkey.
		phone := a.browser()
		ar := phone.authRequest(nil)
		phone.expect(phone.get("/login?authRequestID="+ar), http.StatusOK)
		phone.expect(phone.passkeyLogin(da, "platform"), http.StatusOK)
		if !phone.signsIn() {
			t.Fatal("the phone's passkey session does not sign in")
		}
		phoneRT, phoneAT := a.issueTokens(ua.ID, "phone")
		pcRT, pcAT := a.issueTokens(ua.ID, "pc")
		otherRT, otherAT := a.issueTokens(ub.ID, "other")

		a.expectRedirect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), pathAccount+"?deleted=1")

		if phone.signsIn() {
			t.Fatal("the lost phone's session still signs in after its passkey was deleted")
		}
		phone.expectRedirect(phone.get(pathAccount), pathLogin)
		for _, tok := range [][2]string{{phoneRT, phoneAT}, {pcRT, pcAT}} {
			if rt, at := a.tokensLive(tok[0], tok[1]); rt || at {
				t.Fatalf("after the delete: refresh token live %v, access token live %v", rt, at)
			}
		}
		// The browser that deleted it stays signed in.
		a.expect(a.get(pathAccount+"?deleted=1"), http.StatusOK, "パスキーを削除しました")
		if !a.signsIn() {
			t.Fatal("the deleting browser was signed out")
		}
		// Another customer keeps everything.
		if !b.signsIn() {
			t.Fatal("another customer's session ended")
		}
		if rt, at := a.tokensLive(otherRT, otherAT); !rt || !at {
			t.Fatalf("another customer's tokens: refresh live %v, access live %v", rt, at)
		}
		if !hasEvent(a.audit(), "passkey.deleted", ua.ID, map[string]string{
			"credential": credID(da), "sessions_ended": "1", "refresh_tokens_revoked": "2", "access_tokens_revoked": "2",
		}) {
			t.Fatal("no passkey.deleted audit event with what ended")
		}
	})
}

// Two browsers of one customer delete passkeys at the same moment: each
// ends the other's session, and neither delete fails.
func TestS8ConcurrentDeletesEndEachOther(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, _, _ := enrolledPair(t, flavor)
		a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
		second := newDevice(ua)
		a.expect(a.addOnS8(second), http.StatusOK)
		other := a.browser()
		ar := other.authRequest(nil)
		other.expect(other.get("/login?authRequestID="+ar), http.StatusOK)
		other.expect(other.passkeyLogin(second, "platform"), http.StatusOK)

		results := make(chan resp, 2)
		for _, c := range []struct {
			e *env
			d *device
		}{{a, da}, {other, second}} {
			go func() { results <- c.e.postNoFatal(pathAccountDelete, url.Values{"id": {credID(c.d)}}) }()
		}
		for range 2 {
			r := <-results
			// The loser may find its own session already ended by the
			// winner: then it is asked to sign in, and deletes nothing.
			if r.status != http.StatusSeeOther && r.status != http.StatusUnauthorized {
				t.Fatalf("concurrent delete: status %d body %s", r.status, r.body)
			}
		}
		signedIn := 0
		for _, e := range []*env{a, other} {
			if e.signsIn() {
				signedIn++
			}
		}
		if signedIn > 1 {
			t.Fatal("both browsers still signed in after two deletes")
		}
	})
}

// postNoFatal is post for goroutines: a transport error is a 0 status.
func (e *env) postNoFatal(path string, form url.Values) resp {
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return resp{}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := e.client.Do(req)
	if err != nil {
		return resp{}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, string(b)}
}

// TestStaffSignOutOutlivesALoginInProgress: a customer (or whoever holds
// their phone) is at S5 with password and code proven when the support
// centre resets the password and signs them out everywhere. Skipping S5
// must not open a session or send a code to the website on that older
// proof: they sign in again with the new password.
func TestStaffSignOutOutlivesALoginInProgress(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {e.startF1(u, "s3cret-pass")}}), pathCreate)
		e.clock.Advance(time.Second)
		if _, err := e.store.EndUserAccess(t.Context(), u.ID, "", e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(time.Second)
		r := e.post(pathCreateSkip, nil)
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("skip after the sign-out: status %d, want a 4xx; location %q", r.status, r.location())
		}
		if e.cookie(sessionCookie) != "" {
			t.Error("a session cookie was set on a proof older than the sign-out")
		}
	})
}
