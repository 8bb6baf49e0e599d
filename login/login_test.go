package login

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func TestPasswordLoginF4(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		ar := e.authRequest(func(a *storage.AuthRequest) { a.LoginHint = "taro" })
		r := e.get("/login?authRequestID=" + ar)
		e.expect(r, http.StatusOK, "コムストックローンWEBサイトへログイン", "パスキーでログイン", "当社推奨方式",
			"パスキー認証について", "または", "ログイン ID :", "ログインパスワード :", "ログイン &gt;", `value="taro"`, "デモサイト")
		r = e.submit("/login", url.Values{"loginID": {"taro"}, "password": {"s3cret-pass"}})
		e.expectRedirect(r, "/cb?id="+ar)
		a := e.storedAuthRequest(ar)
		if !a.Done || a.UserID != u.ID || !slices.Equal(a.AMR, []string{"pwd"}) || a.ACR != e.cfg.ACR.Password {
			t.Fatalf("auth request = done %v user %q amr %v acr %q", a.Done, a.UserID, a.AMR, a.ACR)
		}
		sc := e.cookie(sessionCookie)
		if sc == "" {
			t.Fatal("no session cookie")
		}
		s, err := e.store.SessionByID(context.Background(), storage.HashSecret(sc))
		if err != nil || s.UserID != u.ID {
			t.Fatalf("session = %+v, %v", s, err)
		}
		if e.cookie(flowCookie) != "" {
			t.Error("flow cookie survived completion")
		}
	})
}

func TestWrongPasswordAndUnknownIDAnswerAlike(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		wrong := e.submit("/login", url.Values{"loginID": {"taro"}, "password": {"nope-nope"}})
		unknown := e.submit("/login", url.Values{"loginID": {"jiro"}, "password": {"nope-nope"}})
		e.expect(wrong, http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。")
		e.expect(unknown, http.StatusUnauthorized)
		if strings.ReplaceAll(wrong.body, "taro", "X") != strings.ReplaceAll(unknown.body, "jiro", "X") {
			t.Errorf("answers differ:\n%s\n---\n%s", wrong.body, unknown.body)
		}
		if e.storedAuthRequest(ar).Done {
			t.Error("auth request completed after a failed login")
		}
	})
}

func TestUnknownIDCostsAHashVerification(t *testing.T) {
	// Rule 7 "same time": with the real argon2id cost an unknown login ID
	// must cost a verification like a wrong password does. The two kinds of
	// request alternate and their medians are compared, so a busy machine
	// slows both alike; the bound is loose (a skipped verification would make
	// the unknown ID answer many times faster).
	e := newEnv(t, "sqlite", func(c *Config) { c.Password = password.DefaultParams })
	e.createUser("mio", "s3cret-pass")
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	timed := func(loginID string) time.Duration {
		start := time.Now()
		e.expect(e.submit("/login", url.Values{"loginID": {loginID}, "password": {"whatever1"}}), http.StatusUnauthorized)
		return time.Since(start)
	}
	var known, unknown []time.Duration
	for range 5 {
		known = append(known, timed("mio"))
		unknown = append(unknown, timed("nobody"))
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	if k, u := median(known), median(unknown); u < k/3 {
		t.Fatalf("unknown ID answered in %v (median), a wrong password in %v: the dummy verification is missing", u, k)
	}
}

func TestPasswordLoginRefusedForPasskeyOwner(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("hana", "s3cret-pass")
		e.addPasskey(u)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		// A wrong password must not reveal that the account has a passkey.
		e.expect(e.submit("/login", url.Values{"loginID": {"hana"}, "password": {"wrong-pass"}}), http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。")
		r := e.submit("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}})
		e.expect(r, http.StatusForbidden, "パスキー登録済みの場合、「ログイン」ボタンでのログインはできません。", "パスキー認証")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("passkey owner signed in with a password")
		}
	})
}

func TestLockedUserIsToldToContactTheCentre(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("ken", "s3cret-pass", locked)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		r := e.submit("/login", url.Values{"loginID": {"ken"}, "password": {"s3cret-pass"}})
		e.expect(r, http.StatusForbidden, "日証金コムストックローンセンターまでお問い合わせください", "03-6264-9738")
	})
}

// A lock set while the customer is between steps (password and code
// proven, at S5) stops the login where it would complete, whichever way it
// completes: completeLogin refuses a locked account.
func TestLockedDuringTheLoginCompletesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("ken", "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {e.startF1(u, "s3cret-pass")}}), pathCreate)
		if err := e.store.SetUserLocked(t.Context(), u.ID, true); err != nil {
			t.Fatal(err)
		}
		e.expect(e.post(pathCreateSkip, nil), http.StatusForbidden, "日証金コムストックローンセンターまでお問い合わせください")
		if e.cookie(sessionCookie) != "" {
			t.Error("a locked account got a session")
		}
	})
}

func TestTemporaryPasswordGoesThroughS7(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("yuki", "temp-pass-1", temporary)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"yuki"}, "password": {"temp-pass-1"}}), "/login/password/change")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("completed before the password change")
		}
		e.expect(e.get("/login/password/change"), http.StatusOK, "パスワード変更")
		for _, c := range []struct {
			current, next, confirm string
			status                 int
			want                   string
		}{
			{"bad", "new-password-1", "new-password-1", http.StatusUnauthorized, "現在のパスワードが正しくありません。"},
			{"temp-pass-1", "new-password-1", "new-password-2", http.StatusBadRequest, "一致しません"},
			{"temp-pass-1", "short", "short", http.StatusBadRequest, "8文字以上"},
			{"temp-pass-1", "temp-pass-1", "temp-pass-1", http.StatusBadRequest, "現在のパスワードと同じ"},
			{"temp-pass-1", "yuki", "yuki", http.StatusBadRequest, ""},
		} {
			r := e.submit("/login/password/change", url.Values{"current": {c.current}, "new": {c.next}, "confirm": {c.confirm}})
			e.expect(r, c.status, c.want)
		}
		e.createUser("long-login-id", "x")
		e.expectRedirect(e.post("/login/password/change", url.Values{"current": {"temp-pass-1"}, "new": {"new-password-1"}, "confirm": {"new-password-1"}}), "/cb?id="+ar)
		got, err := e.store.UserByID(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := password.Verify(got.PasswordHash, "new-password-1"); !ok || got.PasswordTemporary {
			t.Fatalf("password not changed: ok=%v temporary=%v", ok, got.PasswordTemporary)
		}
		if a := e.storedAuthRequest(ar); !a.Done || a.UserID != u.ID {
			t.Fatal("auth request not completed after S7")
		}
	})
}

func TestPasswordChangeRejectsLoginIDAsPassword(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.createUser("longloginid", "temp-pass-1", temporary)
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.submit("/login", url.Values{"loginID": {"longloginid"}, "password": {"temp-pass-1"}})
	r := e.submit("/login/password/change", url.Values{"current": {"temp-pass-1"}, "new": {"longloginid"}, "confirm": {"longloginid"}})
	e.expect(r, http.StatusBadRequest, "ログインIDと同じパスワードは設定できません。")
}

func TestF1UpToS5AndSkip(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("mika", "s3cret-pass")
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		e.expect(e.get("/login/passkey"), http.StatusOK, "パスキー認証", "パスキー初回登録", `autocomplete="username webauthn"`,
			"パスキー登録済みの場合、ログイン画面の「ログイン」ボタンでのログインはできません。", "現在、パスキー認証はご利用いただけません。")
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"mika"}}), "/login/password")
		e.expect(e.get("/login/password"), http.StatusOK, "ID・パスワード認証", "mika", "編集", `type="password"`)
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login/password", url.Values{"password": {"s3cret-pass"}}), "/login/otp")
		m, code := e.otpFromMail(u, seen)
		if m.From != "info@jsfnet.com" || m.Header.Get("From") != "info@jsfnet.com" {
			t.Errorf("From = %q / %q", m.From, m.Header.Get("From"))
		}
		if len(m.To) != 1 || m.To[0] != u.Email || m.Header.Get("To") != u.Email {
			t.Errorf("To = %v / %q", m.To, m.Header.Get("To"))
		}
		if m.Subject != "【コムストックローン】ワンタイムパスワードのお知らせ" {
			t.Errorf("Subject = %q", m.Subject)
		}
		if !strings.Contains(m.Body, "10分") {
			t.Errorf("body does not state the validity:\n%s", m.Body)
		}
		e.expect(e.get("/login/otp?sent=1"), http.StatusOK, "ご本人確認",
			"ご登録の下記メールアドレス宛に届いたワンタイムパスワードを入力してください。", "m***@e***.com", "コードの入力", "続ける", "メールアドレスが間違っていますか?", "再送信")
		f, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(e.cookie(flowCookie)))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f.OTPHash, code) || f.OTPHash == "" {
			t.Fatalf("stored OTP hash %q", f.OTPHash)
		}
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
		e.expect(e.get("/login/passkey/create"), http.StatusOK, "このデバイス上でコムストックローン用にパスキーを作成",
			"パスキーを作成", "パスキー作成なしでログイン", "パスワードを覚えておく必要がありません",
			"パスキーでは、ログインに指紋や顔認証が使用できます。", "パスキーはフィッシングに対する最先端のセキュリティを提供します。")
		// Reused: the code was single use and the flow has moved on.
		r := e.submit("/login/otp", url.Values{"code": {code}})
		if r.status < 400 || r.status >= 500 {
			t.Fatalf("reused OTP answered %d", r.status)
		}
		e.expectRedirect(e.post("/login/passkey/create/skip", nil), "/cb?id="+ar)
		a := e.storedAuthRequest(ar)
		if !a.Done || a.UserID != u.ID || !slices.Equal(a.AMR, []string{"pwd", "otp", "mfa"}) || a.ACR != e.cfg.ACR.PasswordOTP {
			t.Fatalf("auth request = done %v user %q amr %v acr %q", a.Done, a.UserID, a.AMR, a.ACR)
		}
	})
}

func TestOTPDeadAfterMaxAttempts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("sora", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		for i := 1; i < e.cfg.OTP.MaxAttempts; i++ {
			e.expect(e.submit("/login/otp", url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized, "ワンタイムパスワードが正しくありません。")
		}
		e.expect(e.submit("/login/otp", url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized, "無効になりました", "再送信")
		r := e.submit("/login/otp", url.Values{"code": {code}})
		e.expect(r, http.StatusBadRequest, "無効になりました")
		if strings.Contains(r.body, `action="/login/otp"`) {
			t.Error("dead code page still offers the code form")
		}
	})
}

func TestOTPMalformedIsNotCounted(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("sora", "s3cret-pass")
	code := e.startF1(u, "s3cret-pass")
	for range 10 {
		e.expect(e.submit("/login/otp", url.Values{"code": {"12ab"}}), http.StatusBadRequest, "半角数字6桁")
	}
	e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
}

func TestOTPExpires(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("riku", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		e.clock.Advance(e.cfg.OTP.Lifetime + time.Second)
		e.expect(e.submit("/login/otp", url.Values{"code": {code}}), http.StatusBadRequest, "有効期限が切れました")
	})
}

func TestConcurrentWrongGuessesAllCount(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) { c.OTP.MaxAttempts = 100 })
		u := e.createUser("aoi", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		const guesses = 6
		var wg sync.WaitGroup
		for range guesses {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login/otp", strings.NewReader("code="+wrongCode(code)))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				res, err := e.client.Do(req)
				if err == nil {
					res.Body.Close()
				}
			})
		}
		wg.Wait()
		f, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(e.cookie(flowCookie)))
		if err != nil {
			t.Fatal(err)
		}
		// A guess that lost every race is answered 409 and not counted;
		// every other one must be.
		if f.OTPAttempts < guesses-1 || f.OTPAttempts > guesses {
			t.Fatalf("attempts = %d after %d concurrent wrong guesses", f.OTPAttempts, guesses)
		}
	})
}

func TestOTPResendThrottle(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) { c.OTP.MaxSendsPerHour = 3 })
		u := e.createUser("nagi", "s3cret-pass")
		first := e.startF1(u, "s3cret-pass")
		e.expect(e.submit("/login/otp/resend", nil), http.StatusTooManyRequests, "少し時間をおいて")
		e.clock.Advance(e.cfg.OTP.ResendInterval + time.Second)
		seen := len(e.sink.Messages())
		e.expectRedirect(e.post("/login/otp/resend", nil), "/login/otp?sent=1")
		_, second := e.otpFromMail(u, seen)
		e.clock.Advance(e.cfg.OTP.ResendInterval + time.Second)
		e.expectRedirect(e.post("/login/otp/resend", nil), "/login/otp?sent=1")
		// Three mails this hour: the per-user limit holds even in a new flow.
		e.clock.Advance(e.cfg.OTP.ResendInterval + time.Second)
		e.expect(e.submit("/login/otp/resend", nil), http.StatusTooManyRequests, "上限に達しました")
		if n := len(e.sink.Messages()); n != 3 {
			t.Fatalf("%d mails sent, want 3", n)
		}
		_ = first
		_ = second
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.post("/login/passkey", url.Values{"loginID": {u.LoginID}})
		e.expect(e.submit("/login/password", url.Values{"password": {"s3cret-pass"}}), http.StatusTooManyRequests, "上限に達しました")
	})
}

func TestResentCodeReplacesTheOldOne(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("nagi", "s3cret-pass")
	first := e.startF1(u, "s3cret-pass")
	e.clock.Advance(e.cfg.OTP.ResendInterval + time.Second)
	seen := len(e.sink.Messages())
	e.expectRedirect(e.post("/login/otp/resend", nil), "/login/otp")
	_, second := e.otpFromMail(u, seen)
	if first != second {
		e.expect(e.submit("/login/otp", url.Values{"code": {first}}), http.StatusUnauthorized)
	}
	e.expectRedirect(e.post("/login/otp", url.Values{"code": {second}}), "/login/passkey/create")
}

func TestMailFailureOffersRetry(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("emi", "s3cret-pass")
	e.breakMail()
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.post("/login/passkey", url.Values{"loginID": {u.LoginID}})
	r := e.submit("/login/password", url.Values{"password": {"s3cret-pass"}})
	e.expect(r, http.StatusServiceUnavailable, "メールを送信できませんでした", `action="/login/otp/resend"`)
	if !strings.Contains(e.logs.String(), "sending OTP mail failed") {
		t.Error("SMTP failure not logged")
	}
	f, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(e.cookie(flowCookie)))
	if err != nil {
		t.Fatal(err)
	}
	if f.OTPHash != "" || f.OTPSentAt != nil {
		t.Fatal("unsent code left on the flow (would block the retry)")
	}
}

func TestF1RefusesTemporaryPassword(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("kai", "temp-pass-1", temporary)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.post("/login/passkey", url.Values{"loginID": {"kai"}})
		r := e.submit("/login/password", url.Values{"password": {"temp-pass-1"}})
		e.expect(r, http.StatusForbidden, "仮パスワード状態では行えません", "「ログイン」ボタン", "ログアウト")
		if len(e.sink.Messages()) != 0 {
			t.Fatal("an OTP was sent to a temporary-password user")
		}
	})
}

func TestF1RefusesPasskeyOwner(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("rin", "s3cret-pass")
		e.addPasskey(u)
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"rin"}}), "/login/password")
		e.expect(e.submit("/login/password", url.Values{"password": {"wrong-pass"}}), http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。")
		r := e.submit("/login/password", url.Values{"password": {"s3cret-pass"}})
		e.expect(r, http.StatusForbidden, "パスキー認証")
		if len(e.sink.Messages()) != 0 {
			t.Fatal("an OTP was sent to a passkey owner")
		}
	})
}

func TestF1UnknownIDLooksLikeWrongPassword(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("mei", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {"ghost"}}), "/login/password")
		unknown := e.submit("/login/password", url.Values{"password": {"whatever-1"}})
		e.post("/login/passkey", url.Values{"loginID": {"mei"}})
		wrong := e.submit("/login/password", url.Values{"password": {"whatever-1"}})
		e.expect(unknown, http.StatusUnauthorized)
		e.expect(wrong, http.StatusUnauthorized)
		if strings.ReplaceAll(unknown.body, "ghost", "X") != strings.ReplaceAll(wrong.body, "mei", "X") {
			t.Errorf("answers differ:\n%s\n---\n%s", unknown.body, wrong.body)
		}
	})
}

func (e *env) loginWithPassword(loginID, pw string) string {
	e.t.Helper()
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.expectRedirect(e.post("/login", url.Values{"loginID": {loginID}, "password": {pw}}), "/cb?id="+ar)
	return ar
}

func TestSSOAndPromptAndMaxAge(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		first := e.loginWithPassword("taro", "s3cret-pass")
		firstAuth := e.storedAuthRequest(first).AuthTime

		second := e.authRequest(nil)
		e.expectRedirect(e.get("/login?authRequestID="+second), "/cb?id="+second)
		a := e.storedAuthRequest(second)
		if !a.Done || a.UserID != u.ID || !a.AuthTime.Equal(firstAuth) {
			t.Fatalf("SSO completion = %+v", a)
		}

		withLogin := e.authRequest(func(a *storage.AuthRequest) { a.Prompt = []string{"login"} })
		e.expect(e.get("/login?authRequestID="+withLogin), http.StatusOK, "ログインパスワード")

		e.clock.Advance(10 * time.Minute)
		short, long := 5*time.Minute, time.Hour
		tooOld := e.authRequest(func(a *storage.AuthRequest) { a.MaxAge = &short })
		e.expect(e.get("/login?authRequestID="+tooOld), http.StatusOK, "ログインパスワード")
		fresh := e.authRequest(func(a *storage.AuthRequest) { a.MaxAge = &long })
		e.expectRedirect(e.get("/login?authRequestID="+fresh), "/cb?id="+fresh)

		needsPasskey := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.Passkey} })
		r := e.get("/login?authRequestID=" + needsPasskey)
		e.expect(r, http.StatusOK, "パスキーが必要です")
		if strings.Contains(r.body, `action="/login"`) {
			t.Error("password form offered although the client demands a passkey")
		}
		e.expect(e.submit("/login", url.Values{"loginID": {"taro"}, "password": {"s3cret-pass"}}), http.StatusForbidden, "パスキーが必要です")
		if e.storedAuthRequest(needsPasskey).Done {
			t.Fatal("password satisfied a passkey-only request")
		}
	})
}

// The one read SSO answers on (SessionWithUser) still carries both
// refusals: a locked user's session signs no one in, and a password-only
// session stops working once the user has a passkey.
func TestRule1SSOPasswordSessionStopsAtTheFirstPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		sso := func() string { return e.authRequest(nil) }
		ar := sso()
		e.expectRedirect(e.get("/login?authRequestID="+ar), "/cb?id="+ar)

		ctx := context.Background()
		if err := e.store.SetUserLocked(ctx, u.ID, true); err != nil {
			t.Fatal(err)
		}
		ar = sso()
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK, "ログインパスワード")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("a locked user's session completed a request")
		}
		if err := e.store.SetUserLocked(ctx, u.ID, false); err != nil {
			t.Fatal(err)
		}
		ar = sso()
		e.expectRedirect(e.get("/login?authRequestID="+ar), "/cb?id="+ar)

		e.addPasskey(u)
		ar = sso()
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK, "ログインパスワード")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("a password-only session signed in a user who has a passkey")
		}
	})
}

func TestPromptNoneWithoutSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		ar := e.authRequest(func(a *storage.AuthRequest) { a.Prompt = []string{"none"} })
		r := e.get("/login?authRequestID=" + ar)
		e.expectRedirect(r, "/cb?error=login_required")
	})
}

func TestEndSessionWithHintOfTheUserEndsTheSession(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		u := e.createUser("taro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		sc := e.cookie(sessionCookie)
		e.expectRedirect(e.get("/end_session?id_token_hint=hint-for-"+u.ID), "/logged-out")
		if _, err := e.store.SessionByID(context.Background(), storage.HashSecret(sc)); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("session after logout: %v", err)
		}
		if e.cookie(sessionCookie) != "" {
			t.Error("session cookie not cleared")
		}
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK, "ログインパスワード")
	})
}

// A logout link without a valid hint (any website can send a browser to
// one) only asks; the session ends after a same-origin confirmation.
func TestEndSessionWithoutHintAsksFirst(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		other := e.createUser("jiro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		sc := e.cookie(sessionCookie)
		alive := func() bool {
			_, err := e.store.SessionByID(context.Background(), storage.HashSecret(sc))
			return err == nil
		}
		for _, q := range []string{"", "?id_token_hint=forged", "?id_token_hint=hint-for-" + other.ID + "&state=s1"} {
			e.expect(e.get("/end_session"+q), http.StatusOK, "ログアウトしますか", `name="confirm_logout" value="1"`)
			if !alive() {
				t.Fatalf("GET /end_session%s ended the session without confirmation", q)
			}
		}
		confirm := url.Values{"state": {"s1"}, "confirm_logout": {"1"}}
		e.expect(e.post("/end_session", confirm, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
		if !alive() {
			t.Fatal("a cross-site confirmation ended the session")
		}
		e.expectRedirect(e.post("/end_session", confirm, "Sec-Fetch-Site", "same-origin"), "/logged-out")
		if alive() {
			t.Fatal("confirmed logout left the session")
		}
	})
}

func TestCrossOriginPostRefused(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.createUser("taro", "s3cret-pass")
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	form := url.Values{"loginID": {"taro"}, "password": {"s3cret-pass"}}
	e.expect(e.submit("/login", form, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden, "受け付けられませんでした")
	e.expect(e.submit("/login", form, "Origin", "https://evil.example"), http.StatusForbidden)
	e.expect(e.post("/login/passkey/login/options", nil, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
	if e.storedAuthRequest(ar).Done {
		t.Fatal("cross-origin POST signed in")
	}
	if !strings.Contains(e.logs.String(), "cross-origin request refused") {
		t.Error("refusal not logged")
	}
	e.expectRedirect(e.post("/login", form, "Sec-Fetch-Site", "same-origin"), "/cb?id="+ar)
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ar := e.authRequest(nil)
	for _, path := range []string{"/login?authRequestID=" + ar, "/help", "/login?authRequestID=nope", "/login/otp"} {
		r := e.get(path)
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code", path)
		}
		for k, v := range map[string]string{"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s = %q, want %q", path, k, got, v)
			}
		}
	}
	r := e.get("/static/style.css")
	e.expect(r, http.StatusOK, ".brand")
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("static file without nosniff")
	}
	e.expect(e.get("/static/"), http.StatusNotFound)
}

func TestUnknownAuthRequestIsAFriendly400(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		r := e.get("/login?authRequestID=does-not-exist")
		e.expect(r, http.StatusBadRequest, "ログイン要求が見つからないか", "COM-STOCK LOAN")
		e.expect(e.get("/login"), http.StatusBadRequest, "ログイン要求が見つからないか")
		e.expect(e.get("/login/password"), http.StatusBadRequest, "有効期限が切れました")
		e.expect(e.submit("/login/otp", url.Values{"code": {"123456"}}), http.StatusBadRequest)
		if !strings.Contains(e.logs.String(), "unknown, finished or expired auth request") {
			t.Error("not logged")
		}
	})
}

func TestHelpPageHasTheFAQ(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.expect(e.get("/help"), http.StatusOK, "パスキー認証について", "よくあるご質問", "セキュリティキー（USB 等）",
		"Windows Hello", "iCloud キーチェーン", "Google パスワードマネージャー", "info@jsfnet.com",
		"パスキーの削除を行った場合、端末側でも削除を行う必要があるか",
		"日証金コムストックローンセンター", "comstock@jsf.co.jp", "03-6264-9738", "平日 9:00 – 17:00",
		// Section 6 word for word with the default sender and subject.
		"ワンタイムパスワードは、「info@jsfnet.com」より、「【コムストックローン】ワンタイムパスワードのお知らせ」という件名で送信されます。",
		"メールが届かない場合には「@jsfnet.com」のドメイン指定を行ってください。")
}

// The FAQ names the sender and subject the OTP mail really has, so a
// customer looking for it in the spam folder finds it after a config change.
func TestHelpPageNamesTheConfiguredOTPMail(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) {
		c.OTP.From = "COM-STOCK <otp@mail.example.jp>"
		c.OTP.Subject = "ワンタイムパスワード"
	})
	r := e.get("/help")
	e.expect(r, http.StatusOK, "「otp@mail.example.jp」より、「ワンタイムパスワード」という件名", "「@mail.example.jp」のドメイン指定")
	if strings.Contains(r.body, "jsfnet.com") || strings.Contains(r.body, "%!") {
		t.Errorf("help page names the default sender or has a bad verb:\n%s", r.body)
	}
	r = e.get("/help?lang=en")
	e.expect(r, http.StatusOK, "from “otp@mail.example.jp” with the subject “ワンタイムパスワード”", "allow the domain “@mail.example.jp”")
	if strings.Contains(r.body, "%!") {
		t.Errorf("English help page has a bad verb:\n%s", r.body)
	}
}

func TestLanguageChoice(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.expect(e.get("/help", "Accept-Language", "en-US,en;q=0.9,ja;q=0.8"), http.StatusOK, "Frequently asked questions", `lang="en"`)
	e.expect(e.get("/help", "Accept-Language", "fr"), http.StatusOK, "よくあるご質問")
	e.expect(e.get("/help?lang=en"), http.StatusOK, "Frequently asked questions")
	// The switch is remembered by cookie.
	e.expect(e.get("/help", "Accept-Language", "ja"), http.StatusOK, "Frequently asked questions")
	e.expect(e.get("/help?lang=ja"), http.StatusOK, "よくあるご質問")
}

func TestPasskeyEndpointsWithoutPasskeys(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	for _, p := range []string{"/login/passkey/login/options", "/login/passkey/login/finish", "/login/passkey/register/options", "/login/passkey/register/finish"} {
		r := e.post(p, nil)
		e.expect(r, http.StatusServiceUnavailable, `"code":"unavailable"`)
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type %q", p, ct)
		}
	}
}

func TestMaskEmail(t *testing.T) {
	for in, want := range map[string]string{
		"taro@example.com": "t***@e***.com",
		"a@b.co.jp":        "a***@b***.jp",
		"山田@example.jp":    "山***@e***.jp",
		"broken":           "***",
		"x@localhost":      "x***@l***",
	} {
		if got := maskEmail(in); got != want {
			t.Errorf("maskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "ja",
		"en":                     "en",
		"ja,en;q=0.5":            "ja",
		"en;q=0.4,ja;q=0.6":      "ja",
		"de,en-GB;q=0.8,ja;q=.7": "en",
		"en;q=0":                 "ja",
	} {
		if got := fromAcceptLanguage(in); got != want {
			t.Errorf("fromAcceptLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}

// An SSO login writes the session's last-seen time at most once a minute:
// a burst of logins by one customer costs one write, not one each.
func TestSSOTouchesTheSessionOncePerInterval(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		id := storage.HashSecret(e.cookie(sessionCookie))
		lastSeen := func() time.Time {
			s, err := e.store.SessionByID(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			return s.LastSeenAt
		}
		created := lastSeen()
		sso := func() {
			ar := e.authRequest(nil)
			e.expectRedirect(e.get("/login?authRequestID="+ar), "/cb?id="+ar)
		}
		e.clock.Advance(30 * time.Second)
		sso()
		if got := lastSeen(); !got.Equal(created) {
			t.Fatalf("SSO 30s after sign-in wrote last seen %v (created %v)", got, created)
		}
		e.clock.Advance(31 * time.Second)
		sso()
		if got := lastSeen(); !got.Equal(e.clock.Now().Truncate(time.Microsecond)) {
			t.Fatalf("SSO 61s after sign-in: last seen %v, want %v", got, e.clock.Now())
		}
	})
}

// endingOP ends the SSO session just before the completion, as a sign-out
// in another browser between trySSO's read and its write would.
type endingOP struct{ testOP }

func (o endingOP) Complete(w http.ResponseWriter, r *http.Request, id string, s *storage.Session) (string, error) {
	if err := o.store.DeleteSession(r.Context(), s.ID); err != nil {
		return "", err
	}
	return o.testOP.Complete(w, r, id, s)
}

// A session that ended while it was answering a request leaves the request
// to a login: S1, not an error page.
func TestSSOSessionEndedMeanwhileShowsTheLogin(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("taro", "s3cret-pass")
		e.loginWithPassword("taro", "s3cret-pass")
		e.h.op = endingOP{testOP{e.store}}
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK, `name="loginID"`)
		if !strings.Contains(e.logs.String(), "SSO session ended before it answered") {
			t.Error("the ended session is not logged")
		}
	})
}
