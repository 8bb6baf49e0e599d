package e2e

import (
	"net/url"
	"strings"
	"testing"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
)

// An attacker starts a login at the RP and sends the IdP login URL (with
// their auth request ID) to a victim who is signed in at the IdP. The
// victim's SSO session must not complete the attacker's request.
func TestAuthRequestOfAnotherBrowserIsRefused(t *testing.T) {
	st := startStack(t, "sqlite")
	attacker := newBrowser(t)
	attacker.navigate(st.RPURL + "/login")
	attacker.waitPath("/login")
	lure := attacker.eval("location.href")
	id := mustQuery(t, lure, "authRequestID")

	victim := newBrowser(t)
	passwordLogin(victim, st, "/login", "demo", "demo-pass-2026")
	victim.waitFor(signedIn)
	victim.navigate(lure)
	if strings.HasPrefix(victim.eval("location.href"), st.RPURL) {
		t.Fatalf("the victim's browser was sent on to the RP")
	}
	if msg := victim.text("#error"); msg == "" {
		t.Errorf("no error shown for a foreign auth request")
	}
	ar, err := st.Server.Store.AuthRequestByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Done || ar.UserID != "" {
		t.Fatalf("the attacker's auth request was completed for %q", ar.UserID)
	}
}

// Rule 1 for sessions: a password-only SSO session opened before the user
// enrolled a passkey (elsewhere) no longer signs them in.
func TestPasswordSessionEndsWhenPasskeyAddedElsewhere(t *testing.T) {
	st := startStack(t, "postgres")
	pc := newBrowser(t)
	passwordLogin(pc, st, "/login", "demo", "demo-pass-2026")
	pc.waitFor(signedIn)

	phone := newBrowser(t)
	phone.withoutConditionalUI()
	phone.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, true)
	enrolDemoPasskey(phone, st)

	pc.navigate(st.RPURL + "/login")
	pc.waitPath("/login")
}

func mustQuery(t *testing.T, raw, name string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Query().Get(name) == "" {
		t.Fatalf("no %s in %s", name, raw)
	}
	return u.Query().Get(name)
}
