package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// phoneWidth is the viewport of the tap-target checks: an iPhone 12–15
// is 390 CSS px wide.
const phoneWidth = 390

type target struct {
	Text string  `json:"text"`
	W    float64 `json:"w"`
	H    float64 `json:"h"`
}

// tapTargets measures every visible element matching sel.
func (b *browser) tapTargets(sel string) []target {
	b.t.Helper()
	raw := b.eval(`JSON.stringify([...document.querySelectorAll(` + jsString(sel) + `)]
		.filter(e => getComputedStyle(e).display !== "none" && e.getClientRects().length > 0)
		.map(e => { const r = e.getBoundingClientRect(); return {text: e.textContent.trim(), w: r.width, h: r.height}; }))`)
	var ts []target
	if err := json.Unmarshal([]byte(raw), &ts); err != nil {
		b.t.Fatalf("tap targets %s: %v", raw, err)
	}
	return ts
}

// expectTapTargets fails for each element of sel smaller than 44 × 44 CSS
// px (WCAG 2.5.5), and when sel matches nothing at all.
func (b *browser) expectTapTargets(page, sel string, atLeast int) {
	b.t.Helper()
	ts := b.tapTargets(sel)
	if len(ts) < atLeast {
		b.t.Errorf("%s: %d visible elements match %s, want at least %d", page, len(ts), sel, atLeast)
	}
	for _, tt := range ts {
		if tt.W < 44 || tt.H < 44 {
			b.t.Errorf("%s: %q is %.1f × %.1f px at %d px wide, want at least 44 × 44", page, tt.Text, tt.W, tt.H, phoneWidth)
		}
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestLoginPagesOnAPhone walks F1 at 390 px: every text link and link
// button is a 44 × 44 tap target, a server-side error puts the focus on
// the field it is about (or on the message), and S3's eye is a button
// inside the field that shows and hides the password, hidden without
// JavaScript.
func TestLoginPagesOnAPhone(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	b.withoutConditionalUI()
	b.do(chromedp.EmulateViewport(phoneWidth, 844))

	// S1: 「パスキー認証について」, the footer's help link and phone number,
	// the language switch.
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.expectTapTargets("S1", `main a:not(.btn), footer a, header a`, 4)
	if got := b.eval(`document.querySelector('footer a[href^="tel:"]') ? "y" : ""`); got != "y" {
		t.Error("S1's footer has no phone link")
	}
	// A wrong password: the cursor is back in the login ID field, which is
	// marked invalid and described by the message.
	b.fill("#loginID", "demo")
	b.fill("#password", "not-the-password")
	b.submit(`form[action="/login"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	if got := b.eval(`document.activeElement.id + " " + document.activeElement.getAttribute("aria-invalid") + " " + document.activeElement.getAttribute("aria-describedby")`); got != "loginID true error" {
		t.Errorf("after a wrong password the focus is on %q, want the invalid login ID field", got)
	}

	// S2: 「ログイン画面に戻る」.
	b.click(`a[href="/login/passkey"]`)
	b.waitPath("/login/passkey")
	b.expectTapTargets("S2", `main a:not(.btn)`, 1)
	b.fill("#loginID", "demo")
	b.submit(`form[action="/login/passkey"] button[type=submit]`)
	b.waitPath("/login/password")

	// S3: 「編集」 and the eye.
	b.expectTapTargets("S3", `.login-id a, button.eye`, 2)
	eye := func() string {
		return b.eval(`(() => { const e = document.querySelector("button.eye"), f = document.getElementById("password");
			return [f.type, e.getAttribute("aria-pressed"), e.getAttribute("aria-label")].join(" "); })()`)
	}
	if got := eye(); got != "password false パスワードを表示" {
		t.Errorf("eye before a click: %q", got)
	}
	inside := b.eval(`(() => { const e = document.querySelector("button.eye").getBoundingClientRect(),
		f = document.getElementById("password").getBoundingClientRect(),
		pad = parseFloat(getComputedStyle(document.getElementById("password")).paddingRight);
		return e.left >= f.left && e.right <= f.right && e.top >= f.top && e.bottom <= f.bottom && pad >= e.width ? "y" : JSON.stringify({e, f, pad}); })()`)
	if inside != "y" {
		t.Errorf("the eye is not inside the password field (or covers its text): %s", inside)
	}
	b.fill("#password", "demo-pass-2026")
	b.click("button.eye")
	if got := eye(); got != "text true パスワードを隠す" {
		t.Errorf("eye after a click: %q", got)
	}
	b.click("button.eye")
	if got := eye(); got != "password false パスワードを表示" {
		t.Errorf("eye after a second click: %q", got)
	}
	// Keyboard: Space on the focused eye toggles it too.
	b.do(chromedp.Focus(chromedp.CSS("button.eye")), chromedp.KeyEvent(" "))
	if got := eye(); got != "text true パスワードを隠す" {
		t.Errorf("eye after Space: %q", got)
	}

	// Without JavaScript the eye cannot work, so it is not there.
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		b.fail(err)
	}
	b.navigate(st.IdPURL + "/login/password")
	b.waitPath("/login/password")
	if got := b.eval(`getComputedStyle(document.querySelector("button.eye")).display`); got != "none" {
		t.Errorf("without JavaScript the eye shows (display %q)", got)
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		b.fail(err)
	}
	b.navigate(st.IdPURL + "/login/password")
	b.waitFor(`getComputedStyle(document.querySelector("button.eye")).display !== "none" ? "y" : ""`)

	// S4: 「再送信」 and the development mailbox link.
	seen := len(st.Sink.Messages())
	b.fill("#password", "demo-pass-2026")
	b.submit(`form[action="/login/password"] button[type=submit]`)
	b.waitPath("/login/otp")
	code := latestOTP(t, st, "demo@example.com", seen)
	b.expectTapTargets("S4", `button.link, main a:not(.btn)`, 1)
	// A resend at once is refused; no field is at fault, so the message
	// takes the focus.
	b.submit(`form[action="/login/otp/resend"] button[type=submit]`)
	b.waitFor(`document.getElementById("error") ? "y" : ""`)
	if got := b.eval(`document.activeElement.id`); got != "error" {
		t.Errorf("after a refused resend the focus is on %q, want the message", got)
	}
	b.navigate(st.IdPURL + "/login/otp")
	b.waitPath("/login/otp")
	b.fill("#code", strings.Map(func(c rune) rune { return c - '0' + '０' }, code[:3])+" "+code[3:])
	b.submit(`form[action="/login/otp"] button[type=submit]`)
	b.waitPath("/login/passkey/create")

	// S9 at 390 px: its links too.
	b.navigate(st.IdPURL + "/help")
	b.waitPath("/help")
	b.expectTapTargets("S9", `main a:not(.btn), footer a`, 3)
	if w := b.eval(`String(document.documentElement.scrollWidth)`); w != "390" {
		t.Errorf("S9 is %s px wide at a 390 px viewport (its tables must scroll inside the page)", w)
	}
}
