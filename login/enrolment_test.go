package login

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// issueLink stores an enrolment link for u the way the CLI does and
// returns the path a customer opens.
func (e *env) issueLink(u *storage.User, life time.Duration) string {
	e.t.Helper()
	secret, err := randomSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	if err := e.store.CreateEnrolmentLink(context.Background(), &storage.EnrolmentLink{
		ID: storage.HashSecret(secret), UserID: u.ID, IssuedBy: "staff:test", CreatedAt: now, ExpiresAt: now.Add(life),
	}); err != nil {
		e.t.Fatal(err)
	}
	return EnrolLinkURL("", secret)
}

func linkSecret(path string) string {
	u, _ := url.Parse(path)
	return u.Query().Get(EnrolLinkParam)
}

// TestEnrolmentLinkConcurrentOpeningsStartOneFlow: 40 browsers pressing
// 「続ける」 on one link at once get one flow and one code; the GET that a
// mail scanner makes spends nothing; the winner's code ends the lost
// device's session and S5 leads to S8 signed in.
func TestEnrolmentLinkConcurrentOpeningsStartOneFlow(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("yui", "s3cret-pass")
		lost := e.browserWithUA(uaIPhone)
		lost.loginWithPassword("yui", "s3cret-pass")
		link := e.issueLink(u, 24*time.Hour)

		e.expect(e.get(link), http.StatusOK, "パスキー登録のご案内", `id="enrol-link-continue"`, linkSecret(link))
		e.get(link) // a scanner's second look
		l, err := e.store.EnrolmentLinkByID(context.Background(), storage.HashSecret(linkSecret(link)))
		if err != nil || l.UsedAt != nil {
			t.Fatalf("GET spent the link: %+v, %v", l, err)
		}

		const n = 40
		browsers := make([]*env, n)
		for i := range browsers {
			browsers[i] = e.browser()
		}
		answers := make([]resp, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				answers[i] = browsers[i].post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(link)}})
			})
		}
		seen := len(e.sink.Messages())
		close(start)
		wg.Wait()
		var winner *env
		for i, a := range answers {
			switch {
			case a.status == http.StatusSeeOther && a.location() == pathOTP+"?sent=1":
				if winner != nil {
					t.Fatal("two openings of one link started a flow")
				}
				winner = browsers[i]
			case a.status == http.StatusGone && strings.Contains(a.body, "このリンクはすでに使用されています"):
			default:
				t.Fatalf("opening %d answered %d %q:\n%s", i, a.status, a.location(), a.body)
			}
		}
		if winner == nil {
			t.Fatal("no opening started a flow")
		}
		_, code := e.otpFromMail(u, seen)
		// Each opening sent its mail before it answered: all are in.
		if got := len(e.sink.Messages()) - seen; got != 1 {
			t.Fatalf("%d code mails for one link", got)
		}
		winner.expect(winner.get(pathOTP), http.StatusOK, "ご本人確認", "y***@e***.com")
		lost.expect(lost.get(pathAccount), http.StatusOK, "ログイン中の端末") // still signed in before the code
		winner.expectRedirect(winner.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		lost.expectRedirect(lost.get(pathAccount), pathLogin)
		winner.expect(winner.get(pathCreate), http.StatusOK) // S5: the link exists to create the passkey

		e.expect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(link)}}), http.StatusGone, "このリンクはすでに使用されています")
		evs := e.audit()
		for _, want := range []struct {
			typ    string
			detail map[string]string
		}{
			{"enrolment.link_used", nil},
			{"session.ended_others", map[string]string{"sessions_ended": "1"}},
			{"enrolment.link_refused", map[string]string{"reason": "used"}},
		} {
			if !hasEvent(evs, want.typ, u.ID, want.detail) {
				t.Errorf("no %s %v audit event", want.typ, want.detail)
			}
		}
	})
}

// TestEnrolmentLinkRefusals: an unknown, superseded, expired link or one
// of a locked customer gets its own page with the centre's contact, and
// starts nothing.
func TestEnrolmentLinkRefusals(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("ren", "s3cret-pass")
		old := e.issueLink(u, 24*time.Hour)
		current := e.issueLink(u, 24*time.Hour)
		for _, tc := range []struct {
			name, path string
			status     int
			want       string
		}{
			{"unknown", EnrolLinkURL("", "not-a-link"), http.StatusNotFound, "このリンクは無効です"},
			{"empty", pathEnrolLink, http.StatusNotFound, "このリンクは無効です"},
			{"superseded", old, http.StatusGone, "新しいリンクの発行により無効になりました"},
		} {
			e.expect(e.get(tc.path), tc.status, tc.want, "03-6264-9738")
			e.expect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(tc.path)}}), tc.status, tc.want)
		}
		if err := e.store.SetUserLocked(context.Background(), u.ID, true); err != nil {
			t.Fatal(err)
		}
		e.expect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(current)}}), http.StatusForbidden, "このアカウントは現在ご利用いただけません")
		if err := e.store.SetUserLocked(context.Background(), u.ID, false); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(24 * time.Hour)
		e.expect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(current)}}), http.StatusGone, "有効期限が切れています")
		if e.cookie(flowCookie) != "" || len(e.sink.Messages()) != 0 {
			t.Fatal("a refused link started a flow or sent a code")
		}
		if !hasEvent(e.audit(), "enrolment.link_refused", u.ID, map[string]string{"reason": "locked"}) {
			t.Error("no enrolment.link_refused audit event for the locked user")
		}
	})
}

// TestEnrolmentLinkEnrolsDespiteTemporaryPasswordAndOldPasskey: the link
// is staff's decision for a lost device, so neither a temporary password
// (rule 2) nor the lost passkey still on file (rule 1) blocks S5, and the
// completion lands on S8, not at an RP.
func TestEnrolmentLinkEnrolsDespiteTemporaryPasswordAndOldPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("aoi", "s3cret-pass", temporary)
		e.addPasskey(u)
		link := e.issueLink(u, time.Hour)
		e.expectRedirect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(link)}}), pathOTP)
		_, code := e.otpFromMail(u, 0)
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		r := e.register(newDevice(u))
		e.expect(r, http.StatusOK)
		if got := e.jsonField(r, "redirect"); got != pathAccount {
			t.Fatalf("after S5 the link flow goes to %q, want S8", got)
		}
		if n := len(e.credentials(u)); n != 2 {
			t.Fatalf("%d passkeys after the link, want 2", n)
		}
		page := e.get(pathAccount)
		e.expect(page, http.StatusOK, "パスキー設定状況確認")
	})
}

// The link's sign-out everywhere is dated at the code's verification, so the
// login the link completes is not refused as older than it, on a clock that
// moves between statements.
func TestEnrolmentLinkSignsInOnAMovingClock(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		e.clock.Tick(time.Millisecond)
		u := e.createUser("aoi", "s3cret-pass")
		link := e.issueLink(u, time.Hour)
		e.expectRedirect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(link)}}), pathOTP)
		_, code := e.otpFromMail(u, 0)
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		r := e.register(newDevice(u))
		e.expect(r, http.StatusOK)
		if got := e.jsonField(r, "redirect"); got != pathAccount {
			t.Fatalf("after S5 the link flow goes to %q, want S8", got)
		}
		e.expect(e.get(pathAccount), http.StatusOK, "パスキー設定状況確認")
	})
}

// A link proves only the mailbox: its S5 offers no way to sign in without
// creating the passkey, and a forged skip opens no session.
func TestEnrolmentLinkCannotSkipThePasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("aoi", "s3cret-pass")
		link := e.issueLink(u, time.Hour)
		e.expectRedirect(e.post(pathEnrolLink, url.Values{EnrolLinkParam: {linkSecret(link)}}), pathOTP)
		_, code := e.otpFromMail(u, 0)
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		page := e.get(pathCreate)
		e.expect(page, http.StatusOK)
		if strings.Contains(page.body, pathCreateSkip) {
			t.Error("S5 of an enrolment link offers 「パスキー作成なしでログイン」")
		}
		if r := e.post(pathCreateSkip, nil); r.status != http.StatusBadRequest {
			t.Fatalf("a forged skip on a link's flow: status %d, want 400", r.status)
		}
		if e.cookie(sessionCookie) != "" {
			t.Error("the mailbox alone opened a session")
		}
	})
}
