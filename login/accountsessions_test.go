package login

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

const (
	uaIPhone        = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	uaWindowsChrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
)

// userAgentTransport sends every request of a test browser with its own
// User-Agent, as a real one would.
type userAgentTransport struct {
	ua   string
	base http.RoundTripper
}

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.base.RoundTrip(r)
}

// browserWithUA is a second browser that says it is ua.
func (e *env) browserWithUA(ua string) *env {
	b := e.browser()
	c := *b.client
	c.Transport = userAgentTransport{ua: ua, base: http.DefaultTransport}
	b.client = &c
	return b
}

// TestS8ListsSessionsAndSignsOutTheOthers: S8 names each session's
// browser, OS and website, marks this one, and 「他の端末からログアウト」
// ends the others only after a fresh password + code (not a password
// alone), audited, while this browser stays signed in.
func TestS8ListsSessionsAndSignsOutTheOthers(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("sora", "s3cret-pass")
		phone := e.browserWithUA(uaIPhone)
		phone.loginWithPassword("sora", "s3cret-pass")
		pc := e.browserWithUA(uaWindowsChrome)
		code := pc.startF1(u, "s3cret-pass")
		pc.expectRedirect(pc.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		pc.expectRedirect(pc.post(pathCreateSkip, nil), "/cb?id=")

		page := pc.get(pathAccount)
		pc.expect(page, http.StatusOK, "ログイン中の端末", "Chrome (Windows) <strong>(この端末)</strong>", "Safari (iOS)",
			"ご利用のサイト", "デモサイト", `id="s8-end-others-button"`, "他の端末からログアウト")
		if strings.Index(page.body, "Chrome (Windows)") > strings.Index(page.body, "Safari (iOS)") {
			t.Error("this browser's session is not listed first")
		}
		en := pc.get(pathAccount + "?lang=en")
		pc.expect(en, http.StatusOK, "Signed-in devices", "Chrome (Windows) <strong>(this device)</strong>", "Sign out of other devices")
		pc.get(pathAccount + "?lang=ja")

		// A password alone does not sign the owner's other devices out.
		phone.expect(phone.get(pathAccount), http.StatusOK, `id="s8-end-others-blocked"`)
		phone.expect(phone.post(pathAccountEndOthers, nil), http.StatusForbidden, "もう一度ご本人確認を行ってください")
		pc.expect(pc.get(pathAccount), http.StatusOK, "Safari (iOS)")

		pc.expectRedirect(pc.post(pathAccountEndOthers, nil), pathAccount+"?signed_out=1")
		after := pc.get(pathAccount + "?signed_out=1")
		pc.expect(after, http.StatusOK, "他の端末からログアウトしました。", "Chrome (Windows)")
		if strings.Contains(after.body, "Safari (iOS)") || strings.Contains(after.body, `id="s8-end-others-button"`) {
			t.Fatalf("the other session is still listed:\n%s", after.body)
		}
		phone.expectRedirect(phone.get(pathAccount), pathLogin)
		sessions, err := e.store.SessionsByUser(context.Background(), u.ID, e.clock.Now())
		if err != nil || len(sessions) != 1 || sessions[0].UserAgent != uaWindowsChrome {
			t.Fatalf("sessions after sign-out = %+v, %v", sessions, err)
		}
		if !hasEvent(e.audit(), "session.ended_others", u.ID, map[string]string{"sessions_ended": "1"}) {
			t.Error("no session.ended_others audit event")
		}
	})
}

// TestS8SignOutOthersWithoutSession: the POST needs a session like every
// S8 action, and a stale one is refused like a delete.
func TestS8SignOutOthersNeedsARecentSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("kai", "s3cret-pass")
		e.expect(e.post(pathAccountEndOthers, nil), http.StatusUnauthorized, "ログインが必要です")
		other := e.browserWithUA(uaIPhone)
		other.loginWithPassword("kai", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		e.expectRedirect(e.post(pathCreateSkip, nil), "/cb?id=")
		e.clock.Advance(e.cfg.RecentAuth + 1)
		e.expect(e.post(pathAccountEndOthers, nil), http.StatusForbidden, "もう一度ご本人確認を行ってください")
		sessions, err := e.store.SessionsByUser(context.Background(), u.ID, e.clock.Now())
		if err != nil || len(sessions) != 2 {
			t.Fatalf("a stale session ended others: %d sessions, %v", len(sessions), err)
		}
	})
}

// The browser that signed the others out stays signed in to every website:
// its session survived the sign-out, so an SSO answer from it is not a
// proof older than the sign-out (the clock moves between statements, as a
// real one does).
func TestS8SignOutOthersKeepsThisBrowsersSSO(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.clock.Tick(time.Millisecond)
		u := e.createUser("sora", "s3cret-pass")
		pc := e.browserWithUA(uaWindowsChrome)
		code := pc.startF1(u, "s3cret-pass")
		pc.expectRedirect(pc.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		pc.expectRedirect(pc.post(pathCreateSkip, nil), "/cb?id=")
		pc.expectRedirect(pc.post(pathAccountEndOthers, nil), pathAccount+"?signed_out=1")
		ar := pc.authRequest(nil)
		pc.expectRedirect(pc.get("/login?authRequestID="+ar), "/cb?id=")
		if !e.storedAuthRequest(ar).Done {
			t.Fatal("the SSO answer after signing the others out did not complete the request")
		}
	})
}
