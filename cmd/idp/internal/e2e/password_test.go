package e2e

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/demorp"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/storage/storagetest"
)

// passwordLogin goes from the demo RP's ログイン link through S1's ID and
// password form, and waits until the browser leaves the login form. The
// passkey offer of a customer without a passkey is declined (「今はしない」).
func passwordLogin(b *browser, st *devstack.Stack, rpPath, loginID, password string) {
	b.t.Helper()
	b.navigate(st.RPURL + rpPath)
	b.waitPath("/login")
	b.fill("#loginID", loginID)
	b.fill("#password", password)
	b.submit(`form[action="/login"] button[type=submit]`)
	if b.path() == "/login/passkey/offer" {
		b.submit("#offer-skip")
	}
}

func claim(b *browser, name string) string {
	b.t.Helper()
	return b.text(`#claims td[data-claim="` + name + `"]`)
}

func TestPasswordLoginSSOAndLogout(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		b := newBrowser(t)

		// F4: ID + password, back at the RP with amr pwd.
		passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
		b.waitPath("/")
		if got := claim(b, "amr"); got != "pwd" {
			t.Errorf("amr = %q, want pwd", got)
		}
		if got := claim(b, "acr"); got != st.Config.ACR.Password {
			t.Errorf("acr = %q, want %q", got, st.Config.ACR.Password)
		}
		if got := claim(b, "preferred_username"); got != "demo" {
			t.Errorf("preferred_username = %q", got)
		}
		firstAuth := claim(b, "auth_time")

		// SSO: a second login skips the form and keeps the original auth_time.
		b.navigate(st.RPURL + "/login")
		b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)
		if got := claim(b, "auth_time"); got != firstAuth {
			t.Errorf("SSO login auth_time = %q, want the first login's %q", got, firstAuth)
		}

		// prompt=none with a session succeeds silently.
		b.navigate(st.RPURL + "/login?prompt=none")
		b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)

		// prompt=login and max_age=0 both demand the form again.
		b.navigate(st.RPURL + "/login?prompt=login")
		b.waitPath("/login")
		b.navigate(st.RPURL + "/login?max_age=0")
		b.waitPath("/login")
		// A generous max_age is satisfied by the session.
		b.navigate(st.RPURL + "/login?max_age=3600")
		b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)

		// RP-initiated logout ends the IdP session too, and lands on the RP.
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		if !strings.HasPrefix(b.eval("location.href"), st.RPURL) {
			t.Errorf("after logout at %s, want the RP", b.eval("location.href"))
		}
		b.navigate(st.RPURL + "/login?prompt=none")
		if got := b.text("#rp-error"); !strings.HasPrefix(got, "login_required") {
			t.Errorf("prompt=none after logout: RP shows %q, want login_required", got)
		}
		b.navigate(st.RPURL + "/login")
		b.waitPath("/login")
	})
}

func TestWrongPasswordAndUnknownIDLookTheSame(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	passwordLogin(b, st, "/login", "demo", "wrong-password")
	wrong := b.text("#error")
	passwordLogin(b, st, "/login", "nobody-here", "wrong-password")
	unknown := b.text("#error")
	if wrong == "" || wrong != unknown {
		t.Errorf("wrong password says %q, unknown ID says %q: they must be the same", wrong, unknown)
	}
	if b.path() != "/login" {
		t.Errorf("failed login left the form for %s", b.path())
	}
}

func TestTemporaryPasswordMustBeChangedFirst(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		b := newBrowser(t)
		passwordLogin(b, st, "/login", "temp", "temp-pass-2026")
		b.waitPath("/login/password/change")

		b.fill("#current", "temp-pass-2026")
		b.fill("#new", "a-brand-new-secret")
		b.fill("#confirm", "a-brand-new-secret")
		b.submit(`form[action="/login/password/change"] button[type=submit]`)
		b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)
		if got := claim(b, "amr"); got != "pwd" {
			t.Errorf("amr = %q, want pwd", got)
		}
		u, err := st.Server.Store.UserByLoginID(t.Context(), "temp")
		if err != nil || u.PasswordTemporary {
			t.Fatalf("after the change: user %+v, err %v; want a permanent password", u, err)
		}

		// The old temporary password no longer works; the new one does.
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passwordLogin(b, st, "/login", "temp", "temp-pass-2026")
		if b.path() != "/login" {
			t.Fatalf("old temporary password accepted, at %s", b.path())
		}
		passwordLogin(b, st, "/login", "temp", "a-brand-new-secret")
		b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)
	})
}

func TestMaxAgeForcesReauthentication(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
	b.waitPath("/")
	first := claim(b, "auth_time")
	time.Sleep(1100 * time.Millisecond) // auth_time has one-second resolution
	b.navigate(st.RPURL + "/login?max_age=1")
	b.waitPath("/login")
	b.fill("#password", "demo-pass-2026")
	b.fill("#loginID", "demo")
	b.submit(`form[action="/login"] button[type=submit]`)
	b.waitFor(`document.querySelector("#signed-in") ? "y" : ""`)
	if second := claim(b, "auth_time"); second == first {
		t.Errorf("auth_time unchanged (%s) after a max_age re-authentication", second)
	}
}

func TestUnregisteredRedirectURIIsNotFollowed(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	q := url.Values{
		"client_id": {"demo-rp"}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri":   {"https://attacker.example/cb"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"},
	}
	b.navigate(st.IdPURL + "/authorize?" + q.Encode())
	if loc := b.eval("location.href"); !strings.HasPrefix(loc, st.IdPURL) {
		t.Fatalf("browser was sent to %s", loc)
	}
}

// Single sign-on across relying parties: after signing in at the loan
// website, a second RP's login completes without the form, for the same
// user with the same auth_time.
func TestSSOAcrossRelyingParties(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	secondURL := "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	st := startStack(t, "sqlite", config.Client{
		ID: "second-rp", Name: "セカンドサイト", Public: true,
		RedirectURIs: []string{secondURL + "/callback"}, PostLogoutRedirectURIs: []string{secondURL + "/"},
		Scopes: []string{"openid", "profile"},
	})
	second, err := demorp.New(t.Context(), demorp.Config{Issuer: st.IdPURL, ClientID: "second-rp", BaseURL: secondURL}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: second.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	b := newBrowser(t)
	passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
	b.waitFor(signedIn)
	sub, authTime := claim(b, "sub"), claim(b, "auth_time")

	b.navigate(secondURL + "/login")
	b.waitFor(signedIn)
	if !strings.HasPrefix(b.eval("location.href"), secondURL) {
		t.Fatalf("not at the second RP: %s", b.eval("location.href"))
	}
	if got := claim(b, "sub"); got != sub {
		t.Errorf("second RP sub = %q, want %q", got, sub)
	}
	if got := claim(b, "auth_time"); got != authTime {
		t.Errorf("second RP auth_time = %q, want the first login's %q", got, authTime)
	}
}
