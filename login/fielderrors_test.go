package login

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// inputTag is the <input> with this id in body ("" when absent).
func inputTag(body, id string) string {
	return regexp.MustCompile(`<input id="` + regexp.QuoteMeta(id) + `"[^>]*>`).FindString(body)
}

func expectInvalid(t *testing.T, body, id string, focus bool) {
	t.Helper()
	tag := inputTag(body, id)
	if !strings.Contains(tag, `aria-invalid="true"`) || !strings.Contains(tag, `aria-describedby="error"`) {
		t.Errorf("field %s is not marked invalid and described by the message: %s", id, tag)
	}
	if strings.Contains(tag, "autofocus") != focus {
		t.Errorf("field %s autofocus = %v, want %v: %s", id, !focus, focus, tag)
	}
	if !strings.Contains(body, `<div class="message error" role="alert" id="error" tabindex="-1">`) {
		t.Error("no focusable message with id error")
	}
}

// TestServerErrorsMarkTheirFields: an error about what was typed marks the
// field aria-invalid, described by the message, and puts the cursor there
// (autofocus, no JavaScript needed); other errors mark no field.
func TestServerErrorsMarkTheirFields(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		r := e.submit("/login", url.Values{"loginID": {"taro"}, "password": {"wrong-pass"}})
		e.expect(r, http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。")
		expectInvalid(t, r.body, "loginID", true)
		expectInvalid(t, r.body, "password", false)

		r = e.post("/login/passkey", url.Values{"loginID": {""}})
		e.expect(r, http.StatusBadRequest)
		expectInvalid(t, r.body, "loginID", true)

		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"taro"}}), "/login/password")
		r = e.submit("/login/password", url.Values{"password": {""}})
		e.expect(r, http.StatusBadRequest, "パスワードを入力してください。")
		expectInvalid(t, r.body, "password", true)

		e.expectRedirect(e.post("/login/password", url.Values{"password": {"s3cret-pass"}}), "/login/otp")
		r = e.submit("/login/otp", url.Values{"code": {"12"}})
		expectInvalid(t, r.body, "code", true)
		// Resending at once is refused, which is not about the code field.
		r = e.submit("/login/otp/resend", nil)
		e.expect(r, http.StatusTooManyRequests, `id="error"`)
		if strings.Contains(r.body, "aria-invalid") {
			t.Errorf("an error that is not about a field marks one:\n%s", inputTag(r.body, "code"))
		}
	})
}

func TestPasswordChangeErrorsMarkTheRightField(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.createUser("hana", "temp-pass-1", temporary)
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.expectRedirect(e.post("/login", url.Values{"loginID": {"hana"}, "password": {"temp-pass-1"}}), "/login/password/change")
	r := e.submit("/login/password/change", url.Values{"current": {"temp-pass-1"}, "new": {"new-pass-123"}, "confirm": {"new-pass-124"}})
	e.expect(r, http.StatusBadRequest, "新しいパスワードが一致しません。")
	expectInvalid(t, r.body, "confirm", true)
	if strings.Contains(inputTag(r.body, "new"), "aria-invalid") || strings.Contains(inputTag(r.body, "current"), "aria-invalid") {
		t.Error("a mismatch marks fields other than the confirmation")
	}
	r = e.submit("/login/password/change", url.Values{"current": {"nope-nope"}, "new": {"new-pass-123"}, "confirm": {"new-pass-123"}})
	expectInvalid(t, r.body, "current", true)
}
