package login

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func uiLocales(tags ...string) func(*storage.AuthRequest) {
	return func(a *storage.AuthRequest) { a.UILocales = tags }
}

// TestUILocalesDecidesOverTheBrowser: an RP's ui_locales=en shows a
// Japanese browser English pages through F1, and the one-time password
// mail is in English too.
func TestUILocalesDecidesOverTheBrowser(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("emma", "s3cret-pass")
		ja := []string{"Accept-Language", "ja-JP,ja;q=0.9"}
		ar := e.authRequest(uiLocales("en"))
		e.expect(e.get("/login?authRequestID="+ar, ja...), http.StatusOK, `lang="en"`, "Sign in with a passkey",
			"<title>Sign in to the COM-STOCK LOAN website | COM-STOCK LOAN</title>", "Hours Weekdays 9:00 – 17:00")
		e.expect(e.get("/login/passkey", ja...), http.StatusOK, `lang="en"`, "Register your first passkey")
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"emma"}}, ja...), "/login/password")
		e.expect(e.get("/login/password", ja...), http.StatusOK, `lang="en"`, "Show password")
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login/password", url.Values{"password": {"s3cret-pass"}}, ja...), "/login/otp")
		m, err := e.sink.WaitForNew(t.Context(), u.Email, seen)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(m.Body, "One-time password: ") || strings.Contains(m.Body, "ワンタイムパスワード:") ||
			!strings.Contains(m.Body, "Weekdays 9:00 – 17:00") {
			t.Errorf("OTP mail of an English login is not English:\n%s", m.Body)
		}
		if m.Subject != e.cfg.OTP.Subject {
			t.Errorf("subject = %q, want the configured %q the FAQ names", m.Subject, e.cfg.OTP.Subject)
		}
		e.expect(e.get("/login/otp", ja...), http.StatusOK, `lang="en"`, "Verify it&#39;s you")
		e.expect(e.get("/help", ja...), http.StatusOK, `lang="en"`, "Frequently asked questions")
	})
}

func TestUILocalesPicksTheFirstTagWeHave(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	for _, tc := range []struct {
		tags   []string
		accept string
		want   string
	}{
		{[]string{"fr", "en-US", "ja"}, "ja", `lang="en"`},
		{[]string{"ja-JP"}, "en", `lang="ja"`},
		{[]string{"fr"}, "en", `lang="en"`}, // nothing usable: Accept-Language
		{[]string{"fr"}, "", `lang="ja"`},
		{nil, "en", `lang="en"`},
	} {
		ar := e.authRequest(uiLocales(tc.tags...))
		r := e.get("/login?authRequestID="+ar, "Accept-Language", tc.accept)
		if r.status != http.StatusOK || !strings.Contains(r.body, tc.want) {
			t.Errorf("ui_locales %v, Accept-Language %q: status %d, want %s", tc.tags, tc.accept, r.status, tc.want)
		}
	}
}

// The customer's own click on the language switch beats the RP's
// ui_locales for the rest of that login (a switch that did nothing would
// strand them); the next login follows its RP again.
func TestLanguageSwitchBeatsUILocalesForThatLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("emma", "s3cret-pass")
		ar := e.authRequest(uiLocales("en"))
		r := e.get("/login?authRequestID=" + ar)
		e.expect(r, http.StatusOK, `lang="en"`, `href="/login?authRequestID=`+ar+`&amp;lang=ja"`)
		e.expect(e.get("/login?authRequestID="+ar+"&lang=ja"), http.StatusOK, `lang="ja"`)
		e.expect(e.get("/login/passkey"), http.StatusOK, `lang="ja"`, "パスキー初回登録")
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"emma"}}), "/login/password")
		e.expect(e.submit("/login/password", url.Values{"password": {"wrong-pass"}}), http.StatusUnauthorized, `lang="ja"`)

		next := e.authRequest(uiLocales("en"))
		e.expect(e.get("/login?authRequestID="+next), http.StatusOK, `lang="en"`)
		// Without ui_locales the remembered click decides.
		plain := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+plain, "Accept-Language", "en"), http.StatusOK, `lang="ja"`)
	})
}

// The passkey-added notice is mailed in the language of the page the
// passkey was created on.
func TestPasskeyNoticeFollowsPageLanguage(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("emma", "s3cret-pass")
		ar := e.authRequest(uiLocales("en"))
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK, `lang="en"`)
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"emma"}}), "/login/password")
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login/password", url.Values{"password": {"s3cret-pass"}}), "/login/otp")
		m, err := e.sink.WaitForNew(t.Context(), u.Email, seen)
		if err != nil {
			t.Fatal(err)
		}
		code := strings.Fields(strings.SplitN(m.Body, "One-time password: ", 2)[1])[0]
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
		e.expect(e.get("/login/passkey/create"), http.StatusOK, `lang="en"`, "Create a passkey")
		seen = len(e.sink.Messages())
		e.expect(e.register(newDevice(u)), http.StatusOK)
		notice, err := e.sink.WaitForNew(t.Context(), u.Email, seen)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(notice.Body, "A passkey was added to your account.") || !strings.Contains(notice.Body, "JST") ||
			!strings.Contains(notice.Body, "Hours Weekdays 9:00 – 17:00") {
			t.Errorf("notice of an English login is not English:\n%s", notice.Body)
		}
	})
}

// flowReads counts the login flows a handler reads from its store.
type flowReads struct {
	Store
	n atomic.Int32
}

func (s *flowReads) LoginFlowByID(ctx context.Context, id string) (*storage.LoginFlow, error) {
	s.n.Add(1)
	return s.Store.LoginFlowByID(ctx, id)
}

// S2 follows the RP's ui_locales with one read of its flow: the language
// is picked from the flow the page loaded, not from a second read.
func TestS2FollowsUILocalesWithOneFlowRead(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		reads := &flowReads{Store: e.h.store}
		e.h.store = reads
		ja := []string{"Accept-Language", "ja-JP,ja;q=0.9"}
		e.expect(e.get("/login?authRequestID="+e.authRequest(uiLocales("en")), ja...), http.StatusOK, `lang="en"`)
		reads.n.Store(0)
		e.expect(e.get("/login/passkey", ja...), http.StatusOK, `lang="en"`, "Register your first passkey")
		if n := reads.n.Load(); n != 1 {
			t.Fatalf("S2 read its flow %d times, want once", n)
		}
	})
}

type authRequestReads struct {
	Store
	n atomic.Int32
}

func (s *authRequestReads) AuthRequestByID(ctx context.Context, id string) (*storage.AuthRequest, error) {
	s.n.Add(1)
	return s.Store.AuthRequestByID(ctx, id)
}

// S1 and S2 follow the RP's ui_locales with one read of the auth request
// each: the language is picked from the request the page loaded.
func TestLoginPagesFollowUILocalesWithOneAuthRequestRead(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		reads := &authRequestReads{Store: e.h.store}
		e.h.store = reads
		ja := []string{"Accept-Language", "ja-JP,ja;q=0.9"}
		id := e.authRequest(uiLocales("en"))
		reads.n.Store(0)
		e.expect(e.get("/login?authRequestID="+id, ja...), http.StatusOK, `lang="en"`)
		if n := reads.n.Load(); n != 1 {
			t.Fatalf("S1 read its auth request %d times, want once", n)
		}
		reads.n.Store(0)
		e.expect(e.get("/login/passkey", ja...), http.StatusOK, `lang="en"`, "Register your first passkey")
		if n := reads.n.Load(); n != 1 {
			t.Fatalf("S2 read its auth request %d times, want once", n)
		}
	})
}
