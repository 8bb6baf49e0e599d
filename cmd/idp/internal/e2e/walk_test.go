package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/login"
	"github.com/comstockloan/idp/storage"
)

// updateScreenshots rewrites the README's pictures in docs/screenshots/:
//
//	go test ./cmd/idp/internal/e2e -run TestEveryScreen -update-screenshots
var updateScreenshots = flag.Bool("update-screenshots", false, "write the README's screenshots to docs/screenshots/")

// walkWidths are a phone (iPhone 12–15) and a laptop.
var walkWidths = []struct{ w, h int64 }{{phoneWidth, 844}, {1280, 800}}

// readmeShots are the captures the README shows (Japanese, phone width),
// by capture name → file in docs/screenshots/.
var readmeShots = map[string]string{
	"s1-login":   "s1-login.png",
	"s2-passkey": "s2-passkey.png",
	"s4-otp":     "s4-otp.png",
	"s5-create":  "s5-create.png",
	"s8-account": "s8-account.png",
}

// axeTags: WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best practices.
const axeTags = `["wcag2a","wcag2aa","wcag21a","wcag21aa","wcag22aa","best-practice"]`

// axeSource is axe-core's axe.min.js, from IDP_TEST_AXE (.ci/run installs
// it from the npm registry with npm ci in .ci/axe and .ci/test points the
// variable at it). Without it the walk fails.
func axeSource(t *testing.T) string {
	t.Helper()
	p := os.Getenv("IDP_TEST_AXE")
	if p == "" {
		// Never a skip: a walk that did not run proves nothing.
		t.Fatal("IDP_TEST_AXE is not set: npm ci --prefix .ci/axe, then run .ci/test (or set IDP_TEST_AXE=$PWD/.ci/axe/node_modules/axe-core/axe.min.js)")
	}
	src, err := os.ReadFile(p)
	if err != nil || !bytes.Contains(src, []byte("axe")) {
		t.Fatalf("IDP_TEST_AXE=%s: not axe-core's axe.min.js (%v)", p, err)
	}
	return string(src)
}

// walker takes the captures of one walk: at each width, axe-core's
// violations and a full-page PNG.
type walker struct {
	b     *browser
	lang  string
	axe   string
	dir   string // every capture: <lang>-<width>-<name>.png
	names []string
	// focusRings: tab through each page and check the focus indicator
	// (the styles are the same in both languages: one walk does it).
	focusRings bool
}

type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// capture audits the page the browser is on under name at every width.
func (w *walker) capture(name string) {
	w.b.t.Helper()
	w.names = append(w.names, name)
	w.b.waitFor(`document.readyState === "complete" ? "y" : ""`)
	if w.b.eval(`typeof axe === "undefined" ? "" : "y"`) == "" {
		if _, err := chromedp.Run(w.b.ctx, chromedp.Evaluate[any](w.axe+"\n;null")); err != nil {
			w.b.fail(fmt.Errorf("inject axe-core: %w", err))
		}
	}
	for _, size := range walkWidths {
		w.b.do(chromedp.EmulateViewport(size.w, size.h))
		raw, err := chromedp.Run(w.b.ctx, chromedp.Evaluate[string](
			`axe.run(document, {runOnly: {type: "tag", values: `+axeTags+`}, resultTypes: ["violations"]})
				.then(r => JSON.stringify(r.violations))`, chromedp.EvalAwaitPromise))
		if err != nil {
			w.b.fail(fmt.Errorf("axe on %s: %w", name, err))
		}
		var vs []axeViolation
		if err := json.Unmarshal([]byte(raw), &vs); err != nil {
			w.b.t.Fatalf("axe result %s: %v", raw, err)
		}
		for _, v := range vs {
			for _, n := range v.Nodes {
				w.b.t.Errorf("axe: %s %s at %d px: %s (%s, %s) on %v: %s", w.lang, name, size.w, v.ID, v.Impact, v.Help, n.Target, n.Summary)
			}
		}
		shot, err := chromedp.Run(w.b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			w.b.fail(fmt.Errorf("screenshot of %s: %w", name, err))
		}
		if _, err := png.DecodeConfig(bytes.NewReader(shot)); err != nil {
			w.b.t.Fatalf("screenshot of %s is no PNG: %v", name, err)
		}
		file := fmt.Sprintf("%s-%d-%s.png", w.lang, size.w, name)
		if err := os.WriteFile(filepath.Join(w.dir, file), shot, 0o644); err != nil {
			w.b.t.Fatal(err)
		}
		if readme, ok := readmeShots[name]; ok && *updateScreenshots && w.lang == "ja" && size.w == phoneWidth {
			if err := os.WriteFile(filepath.Join("..", "..", "..", "..", "docs", "screenshots", readme), shot, 0o644); err != nil {
				w.b.t.Fatal(err)
			}
		}
	}
	w.b.do(chromedp.EmulateViewport(walkWidths[0].w, walkWidths[0].h))
	if w.focusRings {
		w.checkFocusRings(name)
	}
}

// focusRing measures the keyboard focus indicator of the focused element:
// its outline against the background around it (WCAG 1.4.11 asks 3:1 of a
// focus indicator, 2.4.7 that there is one). axe-core has no rule for it.
const focusRing = `(() => {
	const e = document.activeElement;
	if (!e || e === document.body) return "";
	const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
	const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
		.reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
	let bg = null;
	for (let p = e.parentElement; p && !bg; p = p.parentElement) {
		const c = rgb(getComputedStyle(p).backgroundColor);
		if (c.length === 3 || c[3] > 0) bg = c;
	}
	bg = bg || [255, 255, 255];
	const s = getComputedStyle(e), ring = rgb(s.outlineColor);
	const [a, b] = [lum(ring), lum(bg)].sort((x, y) => y - x);
	return JSON.stringify({what: e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + (e.textContent || e.name || "").trim().slice(0, 30),
		style: s.outlineStyle, width: parseFloat(s.outlineWidth), ratio: (a + 0.05) / (b + 0.05)});
})()`

// checkFocusRings tabs through the page as a keyboard user does and checks
// each stop's ring.
func (w *walker) checkFocusRings(name string) {
	w.b.t.Helper()
	w.b.eval(`(document.activeElement && document.activeElement.blur(), "")`)
	seen := map[string]bool{}
	for range 40 {
		w.b.do(chromedp.KeyEvent(kb.Tab))
		raw := w.b.eval(focusRing)
		if raw == "" || seen[raw] {
			return
		}
		seen[raw] = true
		var r struct {
			What, Style  string
			Width, Ratio float64
		}
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			w.b.t.Fatalf("focus ring %s: %v", raw, err)
		}
		if r.Style == "none" || r.Width < 2 || r.Ratio < 3 {
			w.b.t.Errorf("focus: %s %s: %q has a %s %.0f px ring at %.2f:1 against its background, want a visible ring of 2 px at 3:1",
				w.lang, name, r.What, r.Style, r.Width, r.Ratio)
		}
	}
}

// TestEveryScreenPassesAxeAndIsPictured walks every hosted screen, its
// failure states and the error pages, in Japanese and English, and at
// 390 px and 1280 px: axe-core (WCAG 2.2 AA and best practice) must find
// nothing, and each capture is written as a PNG (IDP_SCREENSHOTS names the
// folder to keep them; -update-screenshots refreshes the README's five).
func TestEveryScreenPassesAxeAndIsPictured(t *testing.T) {
	axe := axeSource(t)
	dir := os.Getenv("IDP_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	total := 0
	for _, lang := range []string{"ja", "en"} {
		t.Run(lang, func(t *testing.T) {
			st := startStack(t, "sqlite")
			b := newBrowser(t)
			b.withoutConditionalUI()
			if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": lang},
			}); err != nil {
				b.fail(err)
			}
			w := &walker{b: b, lang: lang, axe: axe, dir: dir, focusRings: lang == "ja"}
			walkScreens(w, st)
			if got := b.eval(`document.documentElement.lang`); got != lang {
				t.Errorf("the walk in %s ended on a page in %q", lang, got)
			}
			total += len(w.names) * len(walkWidths)
		})
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(files) < total {
		t.Errorf("%d PNGs in %s, want %d", len(files), dir, total)
	}
	t.Logf("walk: %d captures (axe + PNG) in %s, written to %s", total, time.Since(start).Round(time.Second), dir)
}

// walkScreens is the walk itself: F1 with its failures on the way, S8 and
// its edits, S7, S9, the logout pages and an expired login step.
func walkScreens(w *walker, st *devstack.Stack) {
	b := w.b
	t := b.t
	b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)

	// S1, and a wrong password on it.
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	w.capture("s1-login")
	b.fill("#loginID", "demo")
	b.fill("#password", "not-the-password")
	b.submit(`form[action="/login"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	w.capture("s1-wrong-password")

	// S9.
	b.navigate(st.IdPURL + "/help")
	b.waitPath("/help")
	w.capture("s9-help")

	// S2 → S3, a wrong password there.
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.click(`a[href="/login/passkey"]`)
	b.waitPath("/login/passkey")
	w.capture("s2-passkey")
	b.fill("#loginID", "demo")
	b.submit(`form[action="/login/passkey"] button[type=submit]`)
	b.waitPath("/login/password")
	w.capture("s3-password")
	b.fill("#password", "not-the-password")
	b.submit(`form[action="/login/password"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	w.capture("s3-wrong-password")

	// S4: a wrong code, a refused resend, then the code.
	seen := len(st.Sink.Messages())
	b.fill("#password", "demo-pass-2026")
	b.submit(`form[action="/login/password"] button[type=submit]`)
	b.waitPath("/login/otp")
	code := latestOTP(t, st, "demo@example.com", seen)
	w.capture("s4-otp")
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	b.fill("#code", wrong)
	b.submit(`form[action="/login/otp"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	w.capture("s4-wrong-code")
	b.submit(`form[action="/login/otp/resend"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	w.capture("s4-resend-refused")
	b.navigate(st.IdPURL + "/login/otp")
	b.waitPath("/login/otp")
	b.fill("#code", code)
	b.submit(`form[action="/login/otp"] button[type=submit]`)
	b.waitPath("/login/passkey/create")
	w.capture("s5-create")

	// S5 creates the passkey; S8 from the RP, then rename and delete it.
	b.click("button[data-passkey-register]")
	b.waitFor(signedIn)
	b.click("#account")
	b.waitPath("/account/passkeys")
	w.capture("s8-account")
	// After a passkey sign-in S8 offers to add one on this device.
	b.click("#s8-return")
	b.waitFor(signedIn)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	passkeyButtonLogin(b, st)
	b.waitFor(signedIn)
	b.click("#account")
	b.waitFor(`document.querySelector("#s8-add-button") ? "y" : ""`)
	w.capture("s8-may-add")
	b.fill("[data-passkey-rename-input]", "PC")
	b.submit("[data-passkey-rename-submit]")
	b.waitFor(`location.search.includes("renamed=1") ? "y" : ""`)
	w.capture("s8-renamed")
	b.click("a[data-passkey-delete]")
	b.waitPath("/account/passkeys/delete")
	w.capture("s8-delete-confirm")
	b.submit("#s8-delete-confirm")
	b.waitFor(`document.querySelector("#s8-back-to-password") ? "y" : ""`)
	w.capture("s8-deleted")

	// Without a passkey again, 「ログイン >」 is followed by the passkey
	// offer; declining it signs in, and a login step opened again after
	// that says the customer is signed in.
	b.click("#s8-return")
	b.waitFor(signedIn)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.fill("#loginID", "demo")
	b.fill("#password", "demo-pass-2026")
	b.submit(`form[action="/login"] button[type=submit]`)
	b.waitPath("/login/passkey/offer")
	w.capture("offer")
	b.submit("#offer-skip")
	b.waitFor(signedIn)
	b.navigate(st.IdPURL + "/login/password")
	b.waitFor(`document.querySelector("#signed-in-account") ? "y" : ""`)
	w.capture("signed-in")
	b.navigate(st.RPURL + "/")
	b.waitFor(signedIn)
	b.click("#account")
	b.waitPath("/account/passkeys")

	// S7: a temporary password, a mismatched confirmation, then the change.
	b.click("#s8-return")
	b.waitFor(signedIn)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	passwordLogin(b, st, "/login", "temp", "temp-pass-2026")
	b.waitPath("/login/password/change")
	w.capture("s7-change")
	b.fill("#current", "temp-pass-2026")
	b.fill("#new", "a-brand-new-secret")
	b.fill("#confirm", "another-new-secret")
	b.submit(`form[action="/login/password/change"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	w.capture("s7-mismatch")
	b.fill("#current", "temp-pass-2026")
	b.fill("#new", "a-brand-new-secret")
	b.fill("#confirm", "a-brand-new-secret")
	b.submit(`form[action="/login/password/change"] button[type=submit]`)
	b.waitFor(signedIn)

	// The logout confirmation (end_session without id_token_hint) and the
	// page it ends on.
	b.navigate(st.IdPURL + "/end_session")
	b.waitFor(`document.querySelector("#logout-confirm") ? "y" : ""`)
	w.capture("logout-confirm")
	b.submit("#logout-confirm-button")
	b.waitPath("/logged-out")
	w.capture("logged-out")

	// Error pages: S8's rename without a session, and a login step whose
	// flow is gone.
	b.eval(`(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/account/passkeys/rename";
		document.body.append(f); window.__e2eOldPage = true; f.submit(); return ""; })()`)
	b.waitFor(`!window.__e2eOldPage && document.readyState === "complete" ? "y" : ""`)
	w.capture("error-session-required")
	b.navigate(st.IdPURL + "/login/otp")
	b.waitFor(`document.querySelector("h1") ? "y" : ""`)
	if !strings.Contains(b.eval(`document.title`), "|") {
		t.Errorf("the expired-step page has no title: %q", b.eval(`document.title`))
	}
	w.capture("error-step-expired")

	// A staff enrolment link as the customer opens it, and one that is
	// not (or no longer) valid.
	demo, err := st.Server.Store.UserByLoginID(t.Context(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.Server.Store.CreateEnrolmentLink(t.Context(), &storage.EnrolmentLink{
		ID: storage.HashSecret("walk-enrolment-link"), UserID: demo.ID, IssuedBy: "staff:walk",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	b.navigate(login.EnrolLinkURL(st.IdPURL, "walk-enrolment-link"))
	b.waitFor(`document.querySelector("form[method=post]") ? "y" : ""`)
	w.capture("enrol-link")
	b.navigate(login.EnrolLinkURL(st.IdPURL, "not-a-link"))
	b.waitFor(`document.querySelector("h1") ? "y" : ""`)
	w.capture("enrol-link-unknown")

	// The provider's refusals a browser sees: an /authorize request
	// naming no registered client, and a path that does not exist.
	b.navigate(st.IdPURL + "/authorize?client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code&scope=openid")
	b.waitFor(`document.querySelector("h1") ? "y" : ""`)
	if got := b.eval(`location.host`); !strings.Contains(st.IdPURL, got) {
		t.Errorf("an /authorize request for an unknown client left the IdP for %q", got)
	}
	w.capture("error-authorize")
	b.navigate(st.IdPURL + "/no-such-page")
	b.waitFor(`document.querySelector("h1") ? "y" : ""`)
	w.capture("error-not-found")
}
