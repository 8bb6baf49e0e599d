package login

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

func TestNormalizeOTP(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"123456", "123456", true},
		{"１２３４５６", "123456", true},    // full-width, as a Japanese IME types them
		{"123 456", "123456", true},   // pasted in two groups
		{"123-456", "123456", true},   // hyphenated
		{"１２３－４５６", "123456", true},   // full-width hyphen-minus
		{"１２３ー４５６", "123456", true},   // the IME's 「ー」 for "-"
		{"123　456", "123456", true},   // ideographic space
		{" 123456\n", "123456", true}, // copied with the line end
		{"12\u00a034\u201356", "123456", true},
		{"1２3４5６", "123456", true},
		{"12345", "", false},
		{"1234567", "", false},
		{"", "", false},
		{"   ", "", false},
		{"12a456", "", false},
		{"①②③④⑤⑥", "", false}, // NFKC would make these digits; they are not what was mailed
		{"¹²³⁴⁵⁶", "", false},
		{"١٢٣٤٥٦", "", false}, // Arabic-Indic digits
		{"123.456", "", false},
		{"123456" + strings.Repeat(" ", maxOTPInput), "", false},
		{"12\x003456", "", false},
		{"\xff23456", "", false},
	} {
		got, ok := normalizeOTP(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("normalizeOTP(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// toFullWidth writes code as １２３４５６.
func toFullWidth(code string) string {
	return strings.Map(func(c rune) rune { return c - '0' + '０' }, code)
}

// TestOTPAcceptsFullWidthAndGroupedCodes posts the mailed code as a
// customer may type or paste it and expects S5; the form lets such input
// through (no pattern, no maxlength) and keeps its one-time-code hints.
func TestOTPAcceptsFullWidthAndGroupedCodes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		for i, typed := range []func(string) string{
			toFullWidth,
			func(c string) string { return c[:3] + " " + c[3:] },
			func(c string) string { return toFullWidth(c[:3]) + "－" + toFullWidth(c[3:]) },
			func(c string) string { return c[:3] + "　" + c[3:] },
		} {
			u := e.createUser("otp"+string(rune('a'+i)), "s3cret-pass")
			code := e.startF1(u, "s3cret-pass")
			page := e.get("/login/otp")
			e.expect(page, http.StatusOK, `autocomplete="one-time-code"`, `inputmode="numeric"`)
			if strings.Contains(page.body, "pattern=") || strings.Contains(page.body, "maxlength=") {
				t.Fatalf("S4's code field still refuses full-width or grouped input in the browser:\n%s", page.body)
			}
			e.expectRedirect(e.post("/login/otp", url.Values{"code": {typed(code)}}), "/login/passkey/create")
			e.logout()
		}
	})
}

// A malformed code, full-width or not, is answered with 「半角数字6桁」 and
// not counted as a try: more of them than max_attempts still leave the
// right code working.
func TestOTPMalformedFullWidthIsNotCounted(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("sora", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		for _, bad := range []string{"１２３４５", "12345６７", "①②③④⑤⑥", "123 45a", "", strings.Repeat("1", 100)} {
			for range e.cfg.OTP.MaxAttempts {
				r := e.submit("/login/otp", url.Values{"code": {bad}})
				e.expect(r, http.StatusBadRequest, "ワンタイムパスワードは半角数字6桁で入力してください。", `aria-invalid="true"`)
			}
		}
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {toFullWidth(code)}}), "/login/passkey/create")
	})
}

// Only a malformed code gets the 「半角数字6桁」 hint: S4 itself and a wrong
// six-digit code do not mention it.
func TestOTPFormatHintOnlyForMalformedInput(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("riku", "s3cret-pass")
	code := e.startF1(u, "s3cret-pass")
	if r := e.get("/login/otp"); strings.Contains(r.body, "半角数字6桁") {
		t.Errorf("S4 says 半角数字6桁 before anything was typed:\n%s", r.body)
	}
	r := e.submit("/login/otp", url.Values{"code": {toFullWidth(wrongCode(code))}})
	e.expect(r, http.StatusUnauthorized, "ワンタイムパスワードが正しくありません。")
	if strings.Contains(r.body, "半角数字6桁") {
		t.Errorf("a wrong full-width code was told 半角数字6桁:\n%s", r.body)
	}
}
