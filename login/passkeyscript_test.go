package login

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/templates"
)

// scriptBrowser is headless Chromium with a virtual authenticator on the
// hosted pages of one env.
type scriptBrowser struct {
	t      *testing.T
	ctx    context.Context
	origin string
	auth   cdpwebauthn.AuthenticatorID
}

func (b *scriptBrowser) run(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.pathname + " | " + (document.body ? document.body.innerText : "")`))
		b.t.Fatalf("%s: %v\npage: %s", name, err, state)
	}
}

// waitFor polls expr until it yields a non-empty string; errors while a
// page navigates are retried until the deadline.
func (b *scriptBrowser) waitFor(name, expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	var lastErr error
	for {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err == nil && got != "" {
			return got
		}
		lastErr = err
		select {
		case <-ctx.Done():
			state, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.pathname + " | " + (document.body ? document.body.innerText : "")`))
			b.t.Fatalf("%s: waiting for %s: %v\npage: %s", name, expr, lastErr, state)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *scriptBrowser) waitPath(name, path string) {
	b.t.Helper()
	b.waitFor(name, `location.pathname === `+strconv.Quote(path)+` && document.readyState === "complete" ? "y" : ""`)
}

// shownError waits for the page's [data-passkey-error] to show a text.
func (b *scriptBrowser) shownError(name string) string {
	b.t.Helper()
	return b.waitFor(name, `(e => e && !e.hidden ? e.textContent : "")(document.querySelector("[data-passkey-error]"))`)
}

// startFlow drops every cookie (the SSO session too) and opens S2 for a
// new auth request, as a customer coming from the website does.
func (b *scriptBrowser) startFlow(name, authRequestID string) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		b.t.Fatalf("%s: clearing cookies: %v", name, err)
	}
	b.run(name, chromedp.Navigate(b.origin+"/login?authRequestID="+url.QueryEscape(authRequestID)),
		chromedp.Navigate(b.origin+pathPasskey))
}

func (b *scriptBrowser) setUserVerified(ok bool) {
	b.t.Helper()
	if _, err := chromedp.Call(b.ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: b.auth, IsUserVerified: ok}); err != nil {
		b.t.Fatalf("SetUserVerified: %v", err)
	}
}

func (b *scriptBrowser) deviceCredentials() int {
	b.t.Helper()
	got, err := chromedp.Call(b.ctx, cdpwebauthn.GetCredentials, cdpwebauthn.GetCredentialsParams{AuthenticatorID: b.auth})
	if err != nil {
		b.t.Fatalf("GetCredentials: %v", err)
	}
	return len(got.Credentials)
}

// TestPageScriptAgainstTheHandler drives templates/static/passkey.js in
// headless Chromium, with a CDP virtual authenticator, through the hosted
// pages and the JSON answers of this package's Handler: what the customer
// reads is the page's text for browser-side failures and the catalogue's
// text of passkeyRefusal for the server's.
func TestPageScriptAgainstTheHandler(t *testing.T) {
	chromium := passkeytest.ChromiumPath(t)
	e := newEnv(t, "sqlite", nil)
	// The RP ID is a domain, never an address: the browser reaches the
	// server as localhost.
	origin := fmt.Sprintf("http://localhost:%d", e.srv.Listener.Addr().(*net.TCPAddr).Port)
	svc, err := passkey.New(passkey.Config{RPID: "localhost", RPDisplayName: testRP.Name, Origins: []string{origin}}, e.store, e.h.log)
	if err != nil {
		t.Fatal(err)
	}
	e.h.passkeys = svc
	u := e.createUser("loan0100", "s3cret-pass")

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), passkeytest.ChromiumOptions(chromium)...)
	t.Cleanup(cancelAlloc)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	b := &scriptBrowser{t: t, ctx: ctx, origin: origin}
	// The first call starts Chromium, which lives as long as its context.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start browser: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	added, err := chromedp.Call(ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol: cdpwebauthn.AuthenticatorProtocolCtap2, Ctap2version: cdpwebauthn.Ctap2versionCtap21,
			Transport: cdpwebauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
			IsUserVerified: true, AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		t.Fatalf("add virtual authenticator: %v", err)
	}
	b.auth = added.AuthenticatorID
	ja := func(key string) string { return templates.Text("ja", key) }

	// F1: S2 → S3 → S4 → S5; on S2 the autofill request is pending (no
	// passkey yet) and the form leaves it behind.
	enrol := e.authRequest(nil)
	b.startFlow("F1", enrol)
	b.run("S2", chromedp.SetValue(chromedp.CSS("#loginID"), u.LoginID), chromedp.Submit(chromedp.CSS("#loginID")))
	b.waitPath("S3", pathPassword)
	seen := len(e.sink.Messages())
	b.run("S3", chromedp.SetValue(chromedp.CSS("#password"), "s3cret-pass"), chromedp.Submit(chromedp.CSS("#password")))
	b.waitPath("S4", pathOTP)
	_, code := e.otpFromMail(u, seen)
	b.run("S4", chromedp.SetValue(chromedp.CSS("#code"), code), chromedp.Submit(chromedp.CSS("#code")))
	b.waitPath("S5", pathCreate)
	b.run("S5", chromedp.Click(chromedp.CSS("[data-passkey-register]")))
	b.waitPath("S5 done", "/cb")
	if !e.storedAuthRequest(enrol).Done {
		t.Fatal("F1 did not complete the auth request")
	}
	creds, err := e.store.CredentialsByUser(t.Context(), u.ID)
	if err != nil || len(creds) != 1 || !creds[0].UserVerified || creds[0].Attachment != "platform" {
		t.Fatalf("after S5: %+v (%v), want one user-verified platform passkey", creds, err)
	}

	// F3: the virtual authenticator answers S2's autofill request at once.
	autofill := e.authRequest(nil)
	b.startFlow("autofill", autofill)
	b.waitPath("autofill done", "/cb")
	if !e.storedAuthRequest(autofill).Done {
		t.Fatal("autofill login did not complete the auth request")
	}

	// From here on, browsers without conditional mediation: the buttons
	// run alone.
	_, err = chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) { PublicKeyCredential.isConditionalMediationAvailable = async () => false; }`,
	})
	if err != nil {
		t.Fatal(err)
	}
	button := e.authRequest(nil)
	b.startFlow("button", button)
	b.run("button", chromedp.Click(chromedp.CSS("[data-passkey-login]")))
	b.waitPath("button done", "/cb")

	// S8 with a fresh passkey session offers to add one; this device has
	// it already, so the authenticator refuses (InvalidStateError).
	b.run("S8", chromedp.Navigate(origin+pathAccount), chromedp.Click(chromedp.CSS("#s8-add-button")))
	if got := b.shownError("S8 add on the same device"); got != ja("passkey.msg_already") {
		t.Errorf("S8 add on the same device shows %q, want [passkey.msg_already]", got)
	}

	b.startFlow("no JSON helpers", e.authRequest(nil))
	b.run("no JSON helpers", chromedp.Evaluate[chromedp.Void]("PublicKeyCredential.parseRequestOptionsFromJSON = undefined"),
		chromedp.Click(chromedp.CSS("[data-passkey-login]")))
	if got := b.shownError("no JSON helpers"); got != ja("passkey.msg_unsupported") {
		t.Errorf("browser without JSON helpers shows %q, want [passkey.msg_unsupported]", got)
	}

	b.setUserVerified(false)
	b.startFlow("user verification fails", e.authRequest(nil))
	b.run("user verification fails", chromedp.Click(chromedp.CSS("[data-passkey-login]")))
	if got := b.shownError("user verification fails"); got != ja("passkey.msg_cancelled") {
		t.Errorf("failed user verification shows %q, want [passkey.msg_cancelled]", got)
	}
	b.setUserVerified(true)

	// Deleted on the server, still on the device: the Handler's 401 text is
	// shown and the page has the browser forget the passkey.
	if _, err := e.store.DeleteUserCredentials(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	deleted := e.authRequest(nil)
	b.startFlow("deleted passkey", deleted)
	b.run("deleted passkey", chromedp.Click(chromedp.CSS("[data-passkey-login]")))
	if got := b.shownError("deleted passkey"); got != ja("err.passkey_unknown") {
		t.Errorf("deleted passkey shows %q, want [err.passkey_unknown]", got)
	}
	if e.storedAuthRequest(deleted).Done {
		t.Fatal("a deleted passkey signed in")
	}
	for deadline := time.Now().Add(10 * time.Second); b.deviceCredentials() != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the device still holds %d passkeys after signalUnknownCredential", b.deviceCredentials())
		}
	}
}
