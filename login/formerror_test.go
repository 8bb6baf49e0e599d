package login

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// Post/redirect/get: every refused form post of S1, S3, S4 and S7 is a
// 303 to its page, whose GET shows the refusal once, with its status and
// the field marked (aria-invalid, aria-describedby, the alert). Back or a
// reload is a GET: it never re-posts (no "Confirm Form Resubmission") and
// no password is checked again.
func TestFormRefusalsArePostRedirectGet(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		tmp := e.browser()
		tmp.createUser("temp", "temp-pass-1", temporary)

		type step struct {
			name   string
			e      *env
			path   string
			form   url.Values
			status int
			text   string
			field  string
		}
		check := func(s step) {
			t.Helper()
			r := s.e.post(s.path, s.form)
			if r.status != http.StatusSeeOther || r.location() != s.path {
				t.Fatalf("%s: POST answered %d Location %q, want 303 to %s", s.name, r.status, r.location(), s.path)
			}
			s.e.expect(s.e.get(s.path), s.status, s.text, `role="alert" id="error"`,
				`id="`+s.field+`"`, `aria-invalid="true" aria-describedby="error"`)
			again := s.e.get(s.path) // reload, or Back to the page
			s.e.expect(again, http.StatusOK)
			if strings.Contains(again.body, s.text) {
				t.Fatalf("%s: the refusal is shown again on reload", s.name)
			}
		}

		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		check(step{"S1 wrong password", e, pathLogin, url.Values{"loginID": {"taro"}, "password": {"wrong-pass"}},
			http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。", "password"})
		if n := e.failuresCounted("login:taro"); n != 1 {
			t.Fatalf("the S1 password was checked %d times for one post and two GETs", n)
		}
		// The ID typed is typed again, once.
		e.post(pathLogin, url.Values{"loginID": {"typed-id"}, "password": {"wrong-pass"}})
		e.expect(e.get(pathLogin), http.StatusUnauthorized, `value="typed-id"`)

		e.expectRedirect(e.post(pathPasskey, url.Values{"loginID": {"taro"}}), pathPassword)
		check(step{"S3 empty password", e, pathPassword, url.Values{"password": {""}},
			http.StatusBadRequest, "パスワードを入力してください。", "password"})
		e.expectRedirect(e.post(pathPassword, url.Values{"password": {"s3cret-pass"}}), pathOTP)
		_, code := e.otpFromMail(u, 0)
		check(step{"S4 wrong code", e, pathOTP, url.Values{"code": {wrongCode(code)}},
			http.StatusUnauthorized, "ワンタイムパスワードが正しくありません。", "code"})
		check(step{"S4 malformed code", e, pathOTP, url.Values{"code": {"12"}},
			http.StatusBadRequest, "半角数字6桁", "code"})

		tar := tmp.authRequest(nil)
		tmp.expect(tmp.get("/login?authRequestID="+tar), http.StatusOK)
		tmp.expectRedirect(tmp.post(pathLogin, url.Values{"loginID": {"temp"}, "password": {"temp-pass-1"}}), pathChangePassword)
		check(step{"S7 mismatch", tmp, pathChangePassword, url.Values{"current": {"temp-pass-1"}, "new": {"new-pass-123"}, "confirm": {"new-pass-124"}},
			http.StatusBadRequest, "新しいパスワードが一致しません。", "confirm"})
	})
}

// Every failure says what to do next, in the FAQ's words where it has
// them: the centre reissues a 仮パスワード, how many minutes to wait and
// the centre's number, the tries left, the lost-device contact (manual
// section 5), and S5 past the recent-authentication window offers a
// restart with 「パスキーを作成」 off.
func TestFailuresSayTheNextStep(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	e.h.cfg.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 1, MaxPerAddress: 100}
	e.h.cfg.OTP.MaxSendsPerHour = 1
	phone := e.cfg.Support.Phone
	e.createUser("taro", "s3cret-pass")
	u := e.createUser("ken", "s3cret-pass")
	owner := e.createUser("hana", "s3cret-pass")
	e.addPasskey(owner)
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)

	e.expect(e.submit(pathLogin, url.Values{"loginID": {"taro"}, "password": {"wrong-pass"}}), http.StatusUnauthorized,
		"日証金コムストックローンセンターにて仮パスワードを再発行いたします")
	r := e.submit(pathLogin, url.Values{"loginID": {"taro"}, "password": {"wrong-pass"}})
	e.expect(r, http.StatusTooManyRequests, "最大15分ほど時間をおいてから", "日証金コムストックローンセンター（"+phone+"）")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("the paused login's 429 lost Retry-After")
	}
	e.expect(e.submit(pathLogin, url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), http.StatusForbidden,
		"端末の紛失、機種変更などでパスキーによるログインができなくなった場合は、日証金コムストックローンセンターまでお問い合わせください。")

	code := e.startF1(u, "s3cret-pass")
	left := e.cfg.OTP.MaxAttempts - 1
	e.expect(e.submit(pathOTP, url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized, fmt.Sprintf("あと%d回入力できます。", left))
	e.expect(e.submit(pathOTP, url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized, fmt.Sprintf("あと%d回入力できます。", left-1))
	e.clock.Advance(e.cfg.OTP.ResendInterval + time.Second)
	e.expect(e.submit(pathOTPResend, nil), http.StatusTooManyRequests, "最大60分ほど時間をおいてから", "（"+phone+"）")

	e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
	e.expect(e.get(pathCreate), http.StatusOK, `data-passkey-register`)
	e.clock.Advance(e.cfg.RecentAuth + time.Second)
	s5 := e.get(pathCreate)
	e.expect(s5, http.StatusOK, "ご本人確認から時間が経過したため、パスキーを作成できません。", `id="s5-create" disabled`,
		`id="s5-restart" href="/login?authRequestID=`, "ログインをやり直す", `action="/login/passkey/create/skip"`)
	if strings.Contains(s5.body, "data-passkey-register") {
		t.Fatal("S5 past the window still offers the create ceremony")
	}
}
