package login

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func (e *env) user(id string) *storage.User {
	e.t.Helper()
	u, err := e.store.UserByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// The upgrade path: 「ログイン >」 → the offer → the mailed code → S5 →
// a passkey, and the login carries password + code.
func TestPasskeyOfferAfterPasswordLoginCreatesAPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("hana", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), pathOffer)
		if e.storedAuthRequest(ar).Done {
			t.Fatal("completed before the offer was answered")
		}
		e.expect(e.get(pathOffer), http.StatusOK, "パスキーとは、パスワードを入力することなく", "パスキーを設定する", "今はしない")
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post(pathOffer, nil), "/login/otp?sent=1")
		_, code := e.otpFromMail(u, seen)
		e.expect(e.get("/login/otp"), http.StatusOK, "ご本人確認", `action="/login/passkey/offer/skip"`)
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), pathCreate)
		r := e.register(newDevice(u))
		e.expect(r, http.StatusOK)
		if e.jsonField(r, "redirect") != "/cb?id="+ar {
			t.Fatalf("register finish = %s", r.body)
		}
		if n := len(e.credentials(u)); n != 1 {
			t.Fatalf("%d passkeys after the offer", n)
		}
		a := e.storedAuthRequest(ar)
		if !slices.Equal(a.AMR, []string{"pwd", "otp", "mfa"}) || a.ACR != e.cfg.ACR.PasswordOTP {
			t.Fatalf("login after the offer: amr %v acr %q", a.AMR, a.ACR)
		}
	})
}

// Rule 4: at the offer the password is all that is proven, so no passkey
// can be created there or at S4 before the code.
func TestRule4PasskeyOfferNeverCreatesOnThePasswordAlone(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("hana", "s3cret-pass")
		e.get("/login?authRequestID=" + e.authRequest(nil))
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), pathOffer)
		e.expect(e.post(pathPasskeyRegOpt, nil), http.StatusBadRequest, `"code":"wrong_step"`)
		e.expect(e.get(pathCreate), http.StatusSeeOther)
		e.expectRedirect(e.post(pathOffer, nil), "/login/otp?sent=1")
		e.expect(e.post(pathPasskeyRegOpt, nil), http.StatusBadRequest, `"code":"wrong_step"`)
		if n := len(e.credentials(u)); n != 0 {
			t.Fatalf("%d passkeys created on a password alone", n)
		}
	})
}

// 「今はしない」 completes the login at once with the password, and the
// offer stays away for the configured interval, then comes back.
func TestPasskeyOfferSkipCompletesAndIsRememberedForTheInterval(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("hana", "s3cret-pass")
		login := func() (string, resp) {
			ar := e.authRequest(func(a *storage.AuthRequest) { a.Prompt = []string{"login"} })
			e.get("/login?authRequestID=" + ar)
			return ar, e.post("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}})
		}
		ar, r := login()
		e.expectRedirect(r, pathOffer)
		e.expectRedirect(e.post(pathOfferSkip, nil), "/cb?id="+ar)
		if a := e.storedAuthRequest(ar); !a.Done || !slices.Equal(a.AMR, []string{"pwd"}) || a.ACR != e.cfg.ACR.Password {
			t.Fatalf("skipped offer: done %v amr %v acr %q", a.Done, a.AMR, a.ACR)
		}
		skipped := e.user(u.ID).PasskeyOfferSkippedAt
		if skipped == nil || !skipped.Equal(e.clock.Now().Truncate(time.Microsecond)) {
			t.Fatalf("declined offer remembered at %v, want %v", skipped, e.clock.Now())
		}
		ar, r = login()
		e.expectRedirect(r, "/cb?id="+ar)

		// Declined longer ago than the interval (the auth requests live in
		// real time, so the decline moves back rather than the clock on).
		if err := e.store.SetPasskeyOfferSkipped(context.Background(), u.ID, e.clock.Now().Add(-e.cfg.PasskeyOfferInterval-time.Minute)); err != nil {
			t.Fatal(err)
		}
		_, r = login()
		e.expectRedirect(r, pathOffer)
	})
}

// Rule 2: a temporary password goes to S7 and then straight to the
// website, never to the offer.
func TestRule2NoPasskeyOfferForATemporaryPassword(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		e.createUser("yuki", "temp-pass-1", temporary)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"yuki"}, "password": {"temp-pass-1"}}), pathChangePassword)
		e.expect(e.post(pathOfferSkip, nil), http.StatusConflict) // S7's flow is at no step of the offer
		e.expectRedirect(e.post(pathChangePassword, url.Values{"current": {"temp-pass-1"}, "new": {"new-password-1"}, "confirm": {"new-password-1"}}), "/cb?id="+ar)
	})
}

// The skip completes only an offer's flow: an F1 enrolment at S4 (whose
// password may belong to a customer the offer never concerned) cannot be
// turned into a password login through it.
func TestPasskeyOfferSkipRefusedOnAnEnrolmentFlow(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("mika", "s3cret-pass")
		e.startF1(u, "s3cret-pass")
		ar := e.currentFlowAuthRequest()
		e.expect(e.post(pathOfferSkip, nil), http.StatusBadRequest, "操作の有効期限が切れました")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("an F1 flow was completed by the offer's skip")
		}
		if e.user(u.ID).PasskeyOfferSkippedAt != nil {
			t.Fatal("a refused skip was remembered")
		}
	})
}

// A client demanding urn:comstockloan:acr:mfa never gets a password-only
// login: F4 goes on to the code, S4 has no way around it, and the code
// completes with password + code.
func TestStepUpMFAClientNeverGetsAPasswordOnlyLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		ar := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.PasswordOTP} })
		e.get("/login?authRequestID=" + ar)
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"taro"}, "password": {"s3cret-pass"}}), "/login/otp?sent=1")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("the password alone completed an mfa request")
		}
		_, code := e.otpFromMail(u, seen)
		if r := e.get("/login/otp"); strings.Contains(r.body, pathOfferSkip) {
			t.Fatal("S4 offers a skip although the client demands the code")
		}
		e.expect(e.post(pathOfferSkip, nil), http.StatusBadRequest)
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/cb?id="+ar)
		a := e.storedAuthRequest(ar)
		if !a.Done || !slices.Equal(a.AMR, []string{"pwd", "otp", "mfa"}) || a.ACR != e.cfg.ACR.PasswordOTP {
			t.Fatalf("mfa login: done %v amr %v acr %q", a.Done, a.AMR, a.ACR)
		}

		// The password + code session satisfies a password request and
		// another mfa request by SSO, but not a passkey request.
		pwdReq := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.Password} })
		e.expectRedirect(e.get("/login?authRequestID="+pwdReq), "/cb?id="+pwdReq)
		mfaReq := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.PasswordOTP} })
		e.expectRedirect(e.get("/login?authRequestID="+mfaReq), "/cb?id="+mfaReq)
		pkReq := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.Passkey} })
		e.expect(e.get("/login?authRequestID="+pkReq), http.StatusOK, "パスキーが必要です")
	})
}

// A password-only SSO session does not satisfy an mfa request.
func TestStepUpPasswordSessionIsNotEnoughForMFA(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		mfaReq := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.PasswordOTP} })
		e.expect(e.get("/login?authRequestID="+mfaReq), http.StatusOK, "ログインパスワード")
		if e.storedAuthRequest(mfaReq).Done {
			t.Fatal("a password session completed an mfa request")
		}
	})
}

// After S7 an mfa client still gets its code, then the website (no S5:
// rule 2's customer enrols by F1).
func TestStepUpMFAAfterTemporaryPassword(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("yuki", "temp-pass-1", temporary)
		ar := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.PasswordOTP} })
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"yuki"}, "password": {"temp-pass-1"}}), pathChangePassword)
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post(pathChangePassword, url.Values{"current": {"temp-pass-1"}, "new": {"new-password-1"}, "confirm": {"new-password-1"}}), "/login/otp?sent=1")
		_, code := e.otpFromMail(u, seen)
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/cb?id="+ar)
		if a := e.storedAuthRequest(ar); a.ACR != e.cfg.ACR.PasswordOTP {
			t.Fatalf("acr %q after S7 and the code", a.ACR)
		}
	})
}

// An mfa client and a customer the offer is due for: the code (which the
// client demands anyway), then S5 with its create and skip.
func TestStepUpMFAWithTheOfferLeadsToS5(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("hana", "s3cret-pass")
		ar := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.PasswordOTP} })
		e.get("/login?authRequestID=" + ar)
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), "/login/otp?sent=1")
		_, code := e.otpFromMail(u, seen)
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), pathCreate)
		e.expectRedirect(e.post(pathCreateSkip, nil), "/cb?id="+ar)
		if a := e.storedAuthRequest(ar); a.ACR != e.cfg.ACR.PasswordOTP {
			t.Fatalf("acr %q", a.ACR)
		}
		if e.user(u.ID).PasskeyOfferSkippedAt == nil {
			t.Fatal("S5's skip of an offer was not remembered")
		}
	})
}
