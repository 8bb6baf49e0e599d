package e2e

import (
	"strings"
	"testing"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"

	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/storage/storagetest"
)

const signedIn = `document.querySelector("#signed-in") ? "y" : ""`

// enrolUntilS5 walks F1 from the RP to S5: S1 → S2 (login ID, 「パスキー初回登録」)
// → S3 (password) → S4 (one-time password read from the mail sink).
func enrolUntilS5(b *browser, st *devstack.Stack, loginID, password, email string) {
	b.t.Helper()
	startEnrolment(b, st, "/login", loginID)
	seen := len(st.Sink.Messages())
	b.fill("#password", password)
	b.submit(`form[action="/login/password"] button[type=submit]`)
	b.waitPath("/login/otp")
	code := latestOTP(b.t, st, email, seen)
	b.fill("#code", code)
	b.submit(`form[action="/login/otp"] button[type=submit]`)
	b.waitPath("/login/passkey/create")
}

// enrolDemoPasskey runs F1 for the demo user and creates the passkey on S5
// with b's authenticator, ending signed in at the RP.
func enrolDemoPasskey(b *browser, st *devstack.Stack) {
	b.t.Helper()
	enrolUntilS5(b, st, "demo", "demo-pass-2026", "demo@example.com")
	b.click("button[data-passkey-register]")
	b.waitFor(signedIn)
}

// startEnrolment opens S1 from the RP page rpPath, goes to S2 and submits
// 「パスキー初回登録」 for loginID, ending on S3.
func startEnrolment(b *browser, st *devstack.Stack, rpPath, loginID string) {
	b.t.Helper()
	b.navigate(st.RPURL + rpPath)
	b.waitPath("/login")
	b.click(`a[href="/login/passkey"]`)
	b.waitPath("/login/passkey")
	b.fill("#loginID", loginID)
	b.submit(`form[action="/login/passkey"] button[type=submit]`)
	b.waitPath("/login/password")
}

// passkeyButtonLogin signs in from the RP with S2's 「パスキー認証」 button.
func passkeyButtonLogin(b *browser, st *devstack.Stack) {
	b.t.Helper()
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.click(`a[href="/login/passkey"]`)
	b.waitPath("/login/passkey")
	b.click("button[data-passkey-login]")
}

func TestFirstPasskeyEnrolmentThenPasskeyLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		b := newBrowser(t)
		b.withoutConditionalUI()
		auth := b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)

		// F1: enrol with password + OTP, then create the passkey on S5.
		enrolUntilS5(b, st, "demo", "demo-pass-2026", "demo@example.com")
		if got := b.text("h1, h2"); !strings.Contains(got, "パスキーを作成") && !strings.Contains(got, "このデバイス上でコムストックローン用にパスキーを作成") {
			t.Errorf("S5 heading = %q", got)
		}
		b.click("button[data-passkey-register]")
		b.waitFor(signedIn)
		// The enrolment itself was proven by password + OTP.
		if got := claim(b, "amr"); got != "pwd otp mfa" {
			t.Errorf("amr after enrolment = %q, want pwd otp mfa", got)
		}
		if got := claim(b, "acr"); got != st.Config.ACR.PasswordOTP {
			t.Errorf("acr after enrolment = %q, want %q", got, st.Config.ACR.PasswordOTP)
		}
		if n := len(b.credentials(auth)); n != 1 {
			t.Fatalf("authenticator holds %d passkeys, want 1", n)
		}
		u, _ := st.Server.Store.UserByLoginID(t.Context(), "demo")
		creds, err := st.Server.Store.CredentialsByUser(t.Context(), u.ID)
		if err != nil || len(creds) != 1 || !creds[0].UserVerified {
			t.Fatalf("stored passkeys = %+v (%v), want one, user-verified", creds, err)
		}

		// F2: log out, then sign in usernameless with the button.
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passkeyButtonLogin(b, st)
		b.waitFor(signedIn)
		if got := claim(b, "amr"); got != "hwk user mfa" {
			t.Errorf("amr after passkey login = %q, want hwk user mfa (device-bound)", got)
		}
		if got := claim(b, "acr"); got != st.Config.ACR.Passkey {
			t.Errorf("acr after passkey login = %q, want %q", got, st.Config.ACR.Passkey)
		}

		// Rule 1: with a passkey, ID + password (「ログイン >」) is refused...
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
		if b.path() != "/login" || !strings.Contains(b.text("#error"), "パスキー") {
			t.Errorf("password login of a passkey owner: at %s saying %q", b.path(), b.eval("document.body.innerText"))
		}
		// ...and so is enrolling another passkey through ID + password + OTP.
		startEnrolment(b, st, "/login", "demo")
		seen := len(st.Sink.Messages())
		b.fill("#password", "demo-pass-2026")
		b.submit(`form[action="/login/password"] button[type=submit]`)
		b.text("#error")
		if b.path() == "/login/otp" || mailsTo(st, "demo@example.com") > seen {
			t.Errorf("a passkey owner reached the OTP step (at %s)", b.path())
		}
	})
}

func TestSkipPasskeyCreation(t *testing.T) {
	st := startStack(t, "postgres")
	b := newBrowser(t)
	enrolUntilS5(b, st, "demo", "demo-pass-2026", "demo@example.com")
	b.submit(`form[action="/login/passkey/create/skip"] button[type=submit]`)
	b.waitFor(signedIn)
	if got := claim(b, "amr"); got != "pwd otp mfa" {
		t.Errorf("amr = %q, want pwd otp mfa", got)
	}
	u, _ := st.Server.Store.UserByLoginID(t.Context(), "demo")
	if n, _ := st.Server.Store.CountCredentials(t.Context(), u.ID); n != 0 {
		t.Errorf("skipping created %d passkeys", n)
	}
}

func TestConditionalUIAutofillLogin(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, true)
	enrolDemoPasskey(b, st)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)

	// On S2 the login ID field offers the passkey (autocomplete="username
	// webauthn"); the virtual authenticator picks it without a click.
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.click(`a[href="/login/passkey"]`)
	b.waitFor(signedIn)
	if got := claim(b, "amr"); got != "swk user mfa" {
		t.Errorf("amr = %q, want swk user mfa (a synced passkey)", got)
	}
}

// pcWithPhonePasskey sets up F3: the demo user's phone enrolled a synced
// passkey earlier, and a PC without one reaches it by QR code (a hybrid
// authenticator holding the phone's passkey, returned as viaQR).
func pcWithPhonePasskey(t *testing.T, st *devstack.Stack) (pc *browser, viaQR authenticator) {
	t.Helper()
	phone := newBrowser(t)
	phone.withoutConditionalUI()
	phoneAuth := phone.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, true)
	enrolDemoPasskey(phone, st)

	pc = newBrowser(t)
	pc.withoutConditionalUI()
	viaQR = pc.addAuthenticator(cdpwebauthn.AuthenticatorTransportHybrid, true)
	for _, c := range phone.credentials(phoneAuth) {
		pc.addCredential(viaQR, c)
	}
	return pc, viaQR
}

func TestCrossDeviceLoginOffersLocalPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)

		pc, viaQR := pcWithPhonePasskey(t, st)
		passkeyButtonLogin(pc, st)
		pc.waitPath("/login/passkey/create")
		if body := pc.eval("document.body.innerText"); !strings.Contains(body, "このデバイスでクイックにサインイン") {
			t.Errorf("S5 after a cross-device login lacks 「このデバイスでクイックにサインイン」:\n%s", body)
		}

		// The phone goes away; the PC creates its own passkey.
		pc.removeAuthenticator(viaQR)
		local := pc.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
		pc.click("button[data-passkey-register]")
		pc.waitFor(signedIn)
		if got := claim(pc, "acr"); got != st.Config.ACR.Passkey {
			t.Errorf("acr after cross-device login = %q, want %q", got, st.Config.ACR.Passkey)
		}
		if n := len(pc.credentials(local)); n != 1 {
			t.Errorf("PC authenticator holds %d passkeys, want 1", n)
		}
		u, _ := st.Server.Store.UserByLoginID(t.Context(), "demo")
		if n, _ := st.Server.Store.CountCredentials(t.Context(), u.ID); n != 2 {
			t.Errorf("user has %d passkeys, want 2 (phone + PC)", n)
		}

		// Next time the PC signs in with its own passkey, device-bound.
		pc.click("#logout")
		pc.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passkeyButtonLogin(pc, st)
		pc.waitFor(signedIn)
		if got := claim(pc, "amr"); got != "hwk user mfa" {
			t.Errorf("amr with the PC's passkey = %q, want hwk user mfa", got)
		}
	})
}

func TestCrossDeviceLoginWithoutCreatingPasskey(t *testing.T) {
	st := startStack(t, "sqlite")
	pc, _ := pcWithPhonePasskey(t, st)
	passkeyButtonLogin(pc, st)
	pc.waitPath("/login/passkey/create")
	pc.submit(`form[action="/login/passkey/create/skip"] button[type=submit]`)
	pc.waitFor(signedIn)
	if got := claim(pc, "amr"); got != "swk user mfa" {
		t.Errorf("amr = %q, want swk user mfa", got)
	}
}

func TestTemporaryPasswordCannotEnrolPasskey(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	startEnrolment(b, st, "/login", "temp")
	seen := len(st.Sink.Messages())
	b.fill("#password", "temp-pass-2026")
	b.submit(`form[action="/login/password"] button[type=submit]`)
	msg := b.text("#error")
	if !strings.Contains(msg, "仮パスワード") {
		t.Errorf("temporary-password enrolment message = %q, want the manual's 仮パスワード guidance", msg)
	}
	if b.path() == "/login/otp" || mailsTo(st, "temp@example.com") > seen {
		t.Errorf("temporary-password user reached the OTP step")
	}
}

func TestDeletedPasskeyIsRefusedWithGuidance(t *testing.T) {
	st := startStack(t, "postgres")
	b := newBrowser(t)
	b.withoutConditionalUI()
	auth := b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
	enrolDemoPasskey(b, st)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)

	// Support deletes the passkey on the server (lost phone); the copy on
	// the device stays.
	u, _ := st.Server.Store.UserByLoginID(t.Context(), "demo")
	if n, err := st.Server.Store.DeleteUserCredentials(t.Context(), u.ID); err != nil || n != 1 {
		t.Fatalf("delete passkeys: %d, %v", n, err)
	}
	passkeyButtonLogin(b, st)
	msg := b.waitFor(`(() => { const e = document.querySelector("[data-passkey-error]"); return e && !e.hidden ? e.textContent : ""; })()`)
	if !strings.Contains(msg, "パスキー初回登録") {
		t.Errorf("deleted passkey message = %q, want guidance to register again with 「パスキー初回登録」", msg)
	}
	// signalUnknownCredential lets the browser drop the stale passkey.
	b.waitFor(`"y"`)
	for i := 0; i < 50 && len(b.credentials(auth)) > 0; i++ {
		b.waitFor(`new Promise(r => setTimeout(() => r("y"), 100))`)
	}
	if n := len(b.credentials(auth)); n != 0 {
		t.Errorf("device still holds %d passkeys after signalUnknownCredential", n)
	}

	// With no passkey left, the password path and F1 work again (rule 6).
	passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
	b.waitFor(signedIn)
}

func TestOTPWrongFiveTimesKillsTheCode(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	startEnrolment(b, st, "/login", "demo")
	seen := len(st.Sink.Messages())
	b.fill("#password", "demo-pass-2026")
	b.submit(`form[action="/login/password"] button[type=submit]`)
	b.waitPath("/login/otp")
	code := latestOTP(t, st, "demo@example.com", seen)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 0; i < 5; i++ {
		b.fill("#code", wrong)
		b.submit(`form[action="/login/otp"] button[type=submit]`)
		if b.path() != "/login/otp" || b.text("#error") == "" {
			t.Fatalf("wrong code %d: at %s without an error message", i+1, b.path())
		}
	}
	// The code is dead: the page no longer offers the code field...
	if got := b.eval(`document.querySelector("#code") ? "present" : ""`); got != "" {
		t.Errorf("code field still offered after 5 wrong tries")
	}
	// ...and the correct code posted anyway is refused.
	b.eval(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/login/otp";
		const i = document.createElement("input"); i.name = "code"; i.value = "` + code + `"; f.append(i);
		document.body.append(f); window.__e2eOldPage = true; f.submit(); return ""; })()`)
	b.waitFor(`!window.__e2eOldPage && document.readyState === "complete" ? "y" : ""`)
	if b.path() != "/login/otp" {
		t.Fatalf("the correct code worked after 5 wrong tries (at %s)", b.path())
	}
	// Resending right away is throttled.
	b.submit(`form[action="/login/otp/resend"] button[type=submit]`)
	if b.text("#error") == "" {
		t.Errorf("immediate resend shows no message")
	}
	if n := mailsTo(st, "demo@example.com"); n != seen+1 {
		t.Errorf("%d mails after an immediate resend, want %d (throttled)", n, seen+1)
	}
}

// An RP that sends acr_values=phr gets a passkey login or an error, never a
// password login, even when the user already has a password SSO session.
func TestPhishingResistantACRDemandsPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		b := newBrowser(t)
		b.withoutConditionalUI()
		b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
		phr := st.Config.ACR.Passkey

		// A password session does not satisfy acr_values=phr.
		passwordLogin(b, st, "/login", "temp", "temp-pass-2026")
		b.fill("#current", "temp-pass-2026")
		b.fill("#new", "a-brand-new-secret")
		b.fill("#confirm", "a-brand-new-secret")
		b.submit(`form[action="/login/password/change"] button[type=submit]`)
		b.waitFor(signedIn)
		b.navigate(st.RPURL + "/login?acr_values=" + phr)
		b.waitPath("/login")
		if got := b.eval(`document.querySelector("#password") ? "shown" : ""`); got != "" {
			t.Errorf("password form offered to a client demanding %s", phr)
		}
		// Posting the password form anyway is refused.
		b.eval(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/login";
			for (const [k, v] of [["loginID", "temp"], ["password", "a-brand-new-secret"]]) {
				const i = document.createElement("input"); i.name = k; i.value = v; f.append(i); }
			document.body.append(f); window.__e2eOldPage = true; f.submit(); return ""; })()`)
		b.waitFor(`!window.__e2eOldPage && document.readyState === "complete" ? "y" : ""`)
		if strings.HasPrefix(b.eval("location.href"), st.RPURL) {
			t.Fatalf("password login accepted for acr_values=%s", phr)
		}

		// Enrolling through password + OTP creates the passkey, but that
		// login itself is not phishing-resistant: the client must not get it.
		startEnrolment(b, st, "/login?acr_values="+phr, "temp")
		seen := len(st.Sink.Messages())
		b.fill("#password", "a-brand-new-secret")
		b.submit(`form[action="/login/password"] button[type=submit]`)
		b.fill("#code", latestOTP(t, st, "temp@example.com", seen))
		b.submit(`form[action="/login/otp"] button[type=submit]`)
		b.waitPath("/login/passkey/create")
		b.click("button[data-passkey-register]")
		b.waitPath("/login")
		if msg := b.text("#error"); !strings.Contains(msg, "パスキー認証") {
			t.Errorf("after enrolling under acr_values=%s, S1 says %q; want the guidance to sign in with 「パスキー認証」", phr, msg)
		}
		if b.eval(`document.querySelector("#password") ? "shown" : ""`) != "" {
			t.Errorf("password form offered after the enrolment")
		}

		// A passkey login satisfies it.
		b.navigate(st.RPURL + "/login?acr_values=" + phr)
		b.waitPath("/login")
		b.click(`a[href="/login/passkey"]`)
		b.waitPath("/login/passkey")
		b.click("button[data-passkey-login]")
		b.waitFor(signedIn)
		if got := claim(b, "acr"); got != phr {
			t.Errorf("acr = %q, want %q", got, phr)
		}
	})
}
