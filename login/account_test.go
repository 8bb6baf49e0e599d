package login

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

const rpReturn = "https://rp.example/menu?x=1"

// browser is a second browser (own cookie jar) on the same server.
func (e *env) browser() *env {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	other := *e
	c := *e.client
	c.Jar = jar
	other.client = &c
	return &other
}

// assert runs a passkey assertion with d against the given endpoints.
func (e *env) assert(d *device, optionsPath, finishPath string) resp {
	e.t.Helper()
	opts := e.post(optionsPath, nil)
	e.expect(opts, http.StatusOK, `"publicKey"`)
	ao, err := virtualwebauthn.ParseAssertionOptions(opts.body)
	if err != nil {
		e.t.Fatalf("assertion options %s: %v", opts.body, err)
	}
	return e.postJSON(finishPath, []byte(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *ao)))
}

// addOnS8 runs 「このデバイスでパスキーを追加」 with d.
func (e *env) addOnS8(d *device) resp {
	e.t.Helper()
	opts := e.post(pathAccountRegOpt, nil)
	if opts.status != http.StatusOK {
		return opts
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(opts.body)
	if err != nil {
		e.t.Fatalf("attestation options %s: %v", opts.body, err)
	}
	return e.postJSON(pathAccountRegFin, []byte(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *ao)))
}

func credID(d *device) string { return base64.RawURLEncoding.EncodeToString(d.cred.ID) }

func (e *env) credentials(u *storage.User) []storage.Credential {
	e.t.Helper()
	cs, err := e.store.CredentialsByUser(context.Background(), u.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

// audit returns the audit events, checking their MACs.
func (e *env) audit() []storage.AuditEvent {
	e.t.Helper()
	evs, err := e.store.ListAudit(context.Background(), 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := storage.VerifyAudit(context.Background(), e.store, storagetest.AuditKey()); err != nil {
		e.t.Fatalf("audit trail: %v", err)
	}
	return evs
}

func hasEvent(evs []storage.AuditEvent, typ, userID string, detail map[string]string) bool {
	for _, ev := range evs {
		if ev.Type != typ || ev.UserID != userID {
			continue
		}
		match := true
		for k, v := range detail {
			if ev.Detail[k] != v {
				match = false
			}
		}
		if match && ev.IP != "" && ev.UserAgent != "" && (userID == "" || ev.Actor == "user:"+userID) {
			return true
		}
	}
	return false
}

func TestS8WithoutSessionSignsInThenReturns(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("hana", "s3cret-pass")
		r := e.get(pathAccount + "?return_to=" + url.QueryEscape(rpReturn))
		e.expectRedirect(r, pathLogin)
		e.expect(e.get(pathLogin), http.StatusOK, `action="/login"`)
		r = e.submit(pathLogin, url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}})
		e.expectRedirect(r, pathAccount+"?return_to=")
		s8 := e.get(r.location())
		e.expect(s8, http.StatusOK, "パスキー設定状況確認", `id="s8-none"`, `id="s8-return" href="https://rp.example/menu?x=1"`, "戻る")
		// Password alone: S8 is readable, adding a passkey is not (rule 1).
		e.expect(s8, http.StatusOK, `data-add-blocked="s8.add_pwd_only"`, `id="s8-sign-in"`)
		if strings.Contains(s8.body, `id="s8-add-button"`) {
			t.Fatal("add button offered to a password-only session")
		}
		e.expect(e.post(pathAccountRegOpt, nil), http.StatusForbidden, `"code":"insufficient_auth"`)
		if len(e.credentials(u)) != 0 {
			t.Fatal("passkey created")
		}
		if !hasEvent(e.audit(), "login.success", u.ID, map[string]string{"method": "password", "auth_request": ""}) {
			t.Fatal("no login.success audit for the S8 sign-in")
		}
	})
}

func TestS8ReturnToForeignOriginIgnored(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("hana", "s3cret-pass")
	e.expectRedirect(e.get(pathAccount+"?return_to="+url.QueryEscape("https://evil.example/phish")), pathLogin)
	r := e.submit(pathLogin, url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}})
	if r.location() != pathAccount {
		t.Fatalf("completion went to %q", r.location())
	}
	for _, rt := range []string{"https://evil.example/", "javascript:alert(1)", "//rp.example/x", "http://rp.example/"} {
		s8 := e.get(pathAccount + "?return_to=" + url.QueryEscape(rt))
		e.expect(s8, http.StatusOK, "パスキー設定状況確認")
		if strings.Contains(s8.body, `id="s8-return"`) || strings.Contains(s8.body, `href="https://evil`) {
			t.Fatalf("return_to %q shown:\n%s", rt, s8.body)
		}
	}
	e.expect(e.get(pathAccount+"?return_to="+url.QueryEscape(rpReturn)), http.StatusOK, `id="s8-return"`)
}

// enrolledPair gives two customers with real passkeys, each signed in in
// their own browser by F1 (a recent password + OTP session).
func enrolledPair(t *testing.T, flavor string) (a *env, ua *storage.User, da *device, b *env, ub *storage.User, db *device) {
	a = newPasskeyEnv(t, flavor)
	ua = a.createUser("aoi", "s3cret-pass")
	da = a.enrol(ua, "s3cret-pass")
	b = a.browser()
	ub = b.createUser("ren", "s3cret-pass")
	db = b.enrol(ub, "s3cret-pass")
	return
}

func TestS8ListsOwnPasskeysAndRenamesOnlyThem(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, ub, db := enrolledPair(t, flavor)
		s8 := a.get(pathAccount)
		a.expect(s8, http.StatusOK, `data-passkey-id="`+credID(da)+`"`, "登録日時", "最終利用日時", "未使用")
		kind := `data-passkey-kind="device">このデバイスのみ`
		if a.credentials(ua)[0].BackupEligible {
			kind = `data-passkey-kind="synced">同期済み`
		}
		a.expect(s8, http.StatusOK, kind)
		if strings.Contains(s8.body, credID(db)) {
			t.Fatal("another user's passkey listed")
		}
		// The creation time is shown in Japan time.
		created := a.credentials(ua)[0].CreatedAt.In(japan).Format("2006年1月2日 15:04")
		a.expect(s8, http.StatusOK, created)

		a.expectRedirect(a.post(pathAccountRename, url.Values{"id": {credID(da)}, "name": {"  会社のPC  "}}), pathAccount+"?renamed=1")
		if got := a.credentials(ua)[0].Name; got != "会社のPC" {
			t.Fatalf("name = %q", got)
		}
		a.expect(a.get(pathAccount+"?renamed=1"), http.StatusOK, "会社のPC", "名前を変更しました")

		before := a.credentials(ub)[0].Name
		a.expect(a.post(pathAccountRename, url.Values{"id": {credID(db)}, "name": {"盗った"}}), http.StatusNotFound)
		a.expect(a.get(pathAccountDelete+"?id="+credID(db)), http.StatusNotFound)
		a.expect(a.post(pathAccountDelete, url.Values{"id": {credID(db)}}), http.StatusNotFound)
		if cs := a.credentials(ub); len(cs) != 1 || cs[0].Name != before {
			t.Fatalf("other user's passkey changed: %+v", cs)
		}
		a.expect(a.post(pathAccountRename, url.Values{"id": {"%%%"}, "name": {"x"}}), http.StatusNotFound)
		for _, bad := range []string{"", "   ", strings.Repeat("あ", 51), "a\x00b"} {
			a.expect(a.post(pathAccountRename, url.Values{"id": {credID(da)}, "name": {bad}}), http.StatusBadRequest, "1文字以上50文字以内")
		}
		a.expect(a.post(pathAccountRename, url.Values{"id": {credID(da)}, "name": {strings.Repeat("あ", 50)}}), http.StatusSeeOther)
		if !hasEvent(a.audit(), "passkey.renamed", ua.ID, map[string]string{"to": "会社のPC"}) {
			t.Fatal("no passkey.renamed audit")
		}
	})
}

func TestS8CrossOriginPostsRefused(t *testing.T) {
	a, ua, da, _, _, _ := enrolledPair(t, "sqlite")
	form := url.Values{"id": {credID(da)}, "name": {"evil"}}
	a.expect(a.post(pathAccountRename, form, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
	a.expect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}, "Origin", "https://evil.example"), http.StatusForbidden)
	a.expect(a.post(pathAccountRegOpt, nil, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
	a.expect(a.post(pathAccountStepUpOpt, nil, "Origin", "https://evil.example"), http.StatusForbidden)
	if cs := a.credentials(ua); len(cs) != 1 || cs[0].Name == "evil" {
		t.Fatalf("cross-origin post changed passkeys: %+v", cs)
	}
}

func TestS8ActionsNeedASession(t *testing.T) {
	a, ua, da, _, _, _ := enrolledPair(t, "sqlite")
	stranger := a.browser()
	stranger.expect(stranger.post(pathAccountRename, url.Values{"id": {credID(da)}, "name": {"x"}}), http.StatusUnauthorized)
	stranger.expect(stranger.post(pathAccountDelete, url.Values{"id": {credID(da)}}), http.StatusUnauthorized)
	stranger.expect(stranger.post(pathAccountRegOpt, nil), http.StatusUnauthorized, `"code":"session_required"`)
	// An expired session is no session.
	a.clock.Advance(a.cfg.SessionLifetime + time.Minute)
	a.expect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), http.StatusUnauthorized)
	a.expectRedirect(a.get(pathAccount), pathLogin)
	if len(a.credentials(ua)) != 1 {
		t.Fatal("passkey deleted without a session")
	}
}

func TestS8DeleteStaleSessionNeedsOwnPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, _, db := enrolledPair(t, flavor)
		rt := url.QueryEscape(rpReturn)
		a.clock.Advance(a.cfg.RecentAuth + time.Second)

		confirm := a.get(pathAccountDelete + "?id=" + credID(da) + "&return_to=" + rt)
		a.expect(confirm, http.StatusOK, `id="s8-step-up"`, `id="s8-delete-last"`, "パスキーの削除")
		if strings.Contains(confirm.body, `id="s8-delete-confirm"`) {
			t.Fatal("stale session offered the delete button")
		}
		a.expect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), http.StatusForbidden, `id="s8-step-up"`)
		if len(a.credentials(ua)) != 1 {
			t.Fatal("deleted on a stale session")
		}

		// Another customer's passkey on this browser proves nothing.
		wrong := a.assert(db, pathAccountStepUpOpt, pathAccountStepUpFin)
		a.expect(wrong, http.StatusForbidden, `"code":"wrong_user"`)
		a.expect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), http.StatusForbidden)

		old := a.cookie(sessionCookie)
		ok := a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin+"?id="+credID(da)+"&return_to="+rt)
		a.expect(ok, http.StatusOK)
		if got := a.jsonField(ok, "redirect"); got != deleteURL(credID(da), rpReturn) {
			t.Fatalf("step-up redirect = %q", got)
		}
		if a.cookie(sessionCookie) == old {
			t.Fatal("session not renewed after step-up")
		}
		if _, err := a.store.SessionByID(context.Background(), storage.HashSecret(old)); err == nil {
			t.Fatal("old session still valid")
		}
		confirm = a.get(pathAccountDelete + "?id=" + credID(da) + "&return_to=" + rt)
		a.expect(confirm, http.StatusOK, `id="s8-delete-confirm"`)

		// Before the delete, password login is refused (rule 1).
		pw := a.browser()
		ar := pw.authRequest(nil)
		pw.get("/login?authRequestID=" + ar)
		pw.expect(pw.submit("/login", url.Values{"loginID": {ua.LoginID}, "password": {"s3cret-pass"}}), http.StatusForbidden)

		del := a.post(pathAccountDelete, url.Values{"id": {credID(da)}, "return_to": {rpReturn}})
		a.expectRedirect(del, pathAccount+"?")
		if len(a.credentials(ua)) != 0 {
			t.Fatal("passkey not deleted")
		}
		after := a.get(del.location())
		a.expect(after, http.StatusOK, "パスキーを削除しました", "お客様の端末でのパスキーは削除されておられません",
			`id="s8-back-to-password"`, "パスキー初回登録", `data-passkey-signal `, `data-rp-id="localhost"`,
			`data-user-id="`+base64.RawURLEncoding.EncodeToString([]byte(ua.ID))+`"`, `data-credential-ids=""`, `id="s8-return"`)

		// Rule 6: the password path is open again.
		ar = pw.authRequest(nil)
		pw.get("/login?authRequestID=" + ar)
		pw.expectRedirect(pw.post("/login", url.Values{"loginID": {ua.LoginID}, "password": {"s3cret-pass"}}), pathOffer)
		pw.expectRedirect(pw.post(pathOfferSkip, nil), "/cb?id="+ar)

		evs := a.audit()
		for _, want := range []struct {
			typ    string
			detail map[string]string
		}{
			{"login.failure", map[string]string{"method": "passkey", "reason": "step_up_other_user"}},
			{"login.success", map[string]string{"method": "passkey", "step_up": "true"}},
			{"passkey.deleted", map[string]string{"credential": credID(da), "remaining": "0"}},
			{"login.failure", map[string]string{"method": "password", "reason": "has_passkey"}},
		} {
			if !hasEvent(evs, want.typ, ua.ID, want.detail) {
				t.Errorf("no %s %v audit event", want.typ, want.detail)
			}
		}
	})
}

func TestS8DeleteOneOfTwoSignalsTheOther(t *testing.T) {
	a, ua, da, _, _, _ := enrolledPair(t, "sqlite")
	// The F1 session may delete (recent password + OTP) but, rule 1, not add.
	s8 := a.get(pathAccount)
	a.expect(s8, http.StatusOK, `data-add-blocked="s8.add_needs_passkey"`, `id="s8-step-up"`)
	a.expect(a.post(pathAccountRegOpt, nil), http.StatusForbidden, `"code":"reauthenticate"`)
	a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
	second := newDevice(ua)
	a.expect(a.addOnS8(second), http.StatusOK)
	a.expectRedirect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), pathAccount+"?deleted=1")
	a.expect(a.get(pathAccount+"?deleted=1"), http.StatusOK, `data-credential-ids="`+credID(second)+`"`)
	if strings.Contains(a.get(pathAccount+"?deleted=1").body, `id="s8-back-to-password"`) {
		t.Fatal("back-to-password shown while a passkey is left")
	}
}

func TestS8AddPasskeyNeedsRecentStrongSessionAndMails(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, _, _ := enrolledPair(t, flavor)
		// F1's registration mailed the customer (after the OTP mail).
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := a.sink.WaitForNew(ctx, ua.Email, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPasskeyMail(m.Subject, m.Body, m.To, ua.Email, a.credentials(ua)[0].Name); err != "" {
			t.Fatal(err)
		}

		// A passkey session that is stale may not add.
		a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
		a.clock.Advance(a.cfg.RecentAuth + time.Second)
		a.expect(a.get(pathAccount), http.StatusOK, `data-add-blocked="s8.add_stale"`)
		a.expect(a.post(pathAccountRegOpt, nil), http.StatusForbidden, `"code":"reauthenticate"`)

		a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
		a.expect(a.get(pathAccount), http.StatusOK, `id="s8-add-button"`, `data-options-url="/account/passkeys/register/options"`)
		seen := len(a.sink.Messages())
		pc := newDevice(ua)
		r := a.addOnS8(pc)
		a.expect(r, http.StatusOK)
		if got := a.jsonField(r, "redirect"); got != pathAccount+"?added=1" {
			t.Fatalf("redirect = %q", got)
		}
		if n := len(a.credentials(ua)); n != 2 {
			t.Fatalf("%d passkeys, want 2", n)
		}
		// The same authenticator cannot be added twice.
		a.expect(a.addOnS8(pc), http.StatusConflict)
		m, err = a.sink.WaitForNew(ctx, ua.Email, seen)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPasskeyMail(m.Subject, m.Body, m.To, ua.Email, a.credentials(ua)[1].Name); err != "" {
			t.Fatal(err)
		}
		if !hasEvent(a.audit(), "passkey.registered", ua.ID, map[string]string{"credential": credID(pc)}) {
			t.Fatal("no passkey.registered audit for the S8 add")
		}
	})
}

func checkPasskeyMail(subject, body string, to []string, email, name string) string {
	switch {
	case subject != "【コムストックローン】パスキー登録のお知らせ":
		return "subject " + subject
	case !slices.Equal(to, []string{email}):
		return "to " + strings.Join(to, ",")
	case !strings.Contains(body, name) || !strings.Contains(body, "日本時間") || !strings.Contains(body, "03-6264-9738"):
		return "body:\n" + body
	}
	return ""
}

func TestS8PasswordOTPSessionAddsFirstPasskey(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("yui", "s3cret-pass")
	e.expectRedirect(e.get(pathAccountSignIn), pathPasskey)
	e.expectRedirect(e.post(pathPasskey, url.Values{"loginID": {u.LoginID}}), pathPassword)
	seen := len(e.sink.Messages())
	e.expectRedirect(e.post(pathPassword, url.Values{"password": {"s3cret-pass"}}), pathOTP)
	_, code := e.otpFromMail(u, seen)
	e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
	e.expectRedirect(e.post(pathCreateSkip, nil), pathAccount)
	e.expect(e.get(pathAccount), http.StatusOK, `id="s8-add-button"`)
	// The relay is down: the passkey is still created, the failure logged.
	e.breakMail()
	e.expect(e.addOnS8(newDevice(u)), http.StatusOK)
	if !strings.Contains(e.logs.String(), "sending new-passkey notification failed") {
		t.Error("failed notification not logged")
	}
	if n := len(e.credentials(u)); n != 1 {
		t.Fatalf("%d passkeys", n)
	}
	evs := e.audit()
	for _, typ := range []string{"otp.sent", "passkey.registered"} {
		if !hasEvent(evs, typ, u.ID, nil) {
			t.Errorf("no %s audit", typ)
		}
	}
	if !hasEvent(evs, "login.success", u.ID, map[string]string{"method": "password+otp"}) {
		t.Error("no password+otp login.success audit")
	}
}

func TestAuditLoginFailuresAndOTP(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		e.cfg.OTP.MaxAttempts = 2
		e.h.cfg.OTP.MaxAttempts = 2
		u := e.createUser("sho", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expect(e.submit("/login", url.Values{"loginID": {u.LoginID}, "password": {"wrong-pass"}}), http.StatusUnauthorized)
		e.expect(e.submit("/login", url.Values{"loginID": {"nobody"}, "password": {"wrong-pass"}}), http.StatusUnauthorized)
		code := e.startF1(u, "s3cret-pass")
		e.expect(e.submit(pathOTP, url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized)
		e.expect(e.submit(pathOTP, url.Values{"code": {wrongCode(code)}}), http.StatusUnauthorized)
		// A passkey nobody registered.
		stranger := newDevice(u)
		e.get("/login?authRequestID=" + e.authRequest(nil))
		e.expect(e.passkeyLogin(stranger, ""), http.StatusUnauthorized)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}}), pathOffer)
		e.expectRedirect(e.post(pathOfferSkip, nil), "/cb?id=")
		e.logout()

		evs := e.audit()
		for _, want := range []struct {
			typ, user string
			detail    map[string]string
		}{
			{"login.failure", u.ID, map[string]string{"method": "password", "reason": "credentials"}},
			{"login.failure", "", map[string]string{"method": "password", "reason": "credentials"}},
			{"otp.sent", u.ID, nil},
			{"otp.failed", u.ID, map[string]string{"reason": "wrong_code", "attempts": "1"}},
			{"otp.locked", u.ID, nil},
			{"login.failure", "", map[string]string{"method": "passkey", "reason": "unknown_credential"}},
			{"login.success", u.ID, map[string]string{"method": "password"}},
			{"session.ended", u.ID, nil},
		} {
			if !hasEvent(evs, want.typ, want.user, want.detail) {
				t.Errorf("no %s %v audit event for %q", want.typ, want.detail, want.user)
			}
		}
		if !strings.Contains(e.logs.String(), `msg=audit type=login.failure actor=system`) {
			t.Error("audit events are not in the structured log")
		}
	})
}

func TestLoggedOutPage(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) { c.HomeURL = "https://rp.example/" })
	e.expect(e.get(pathLoggedOut), http.StatusOK, "ログアウトしました", `id="logged-out-home" href="https://rp.example/"`)
	e.expect(e.get(pathLoggedOut+"?lang=en"), http.StatusOK, "You have signed out")
	bare := newEnv(t, "sqlite", nil)
	r := bare.get(pathLoggedOut)
	bare.expect(r, http.StatusOK, "ログアウトしました")
	if strings.Contains(r.body, `id="logged-out-home"`) {
		t.Fatal("home link without a HomeURL")
	}
}

func TestS8PagesInEnglish(t *testing.T) {
	a, _, da, _, _, _ := enrolledPair(t, "sqlite")
	r := a.get(pathAccount + "?lang=en")
	a.expect(r, http.StatusOK, "Your passkeys", "This device only", "Rename", "Last used", "Never")
	a.expect(a.get(pathAccountDelete+"?id="+credID(da)), http.StatusOK, "Delete a passkey", "This is your last passkey")
}

// S8 says who keeps each passkey beside synced / this device, from the
// AAGUID list (and the transports for a security key), in the page's
// language; a passkey added on S8 is named after its provider.
func TestS8ShowsWhoKeepsEachPasskey(t *testing.T) {
	a, ua, da, _, _, _ := enrolledPair(t, "sqlite")
	a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
	google := &device{
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(ua.ID), BackupEligible: true, BackupState: true}),
		cred: passkeytest.NewCredential(),
	}
	google.auth.Aaguid = [16]byte(uuid.MustParse("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"))
	google.auth.AddCredential(google.cred)
	a.expect(a.addOnS8(google), http.StatusOK)
	titan := uuid.MustParse("42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3")
	for i, c := range []storage.Credential{
		{AAGUID: titan[:], Transports: []string{"nfc", "usb"}, Name: "鍵"},
		{AAGUID: make([]byte, 16), Transports: []string{"usb"}, Name: "古い鍵"},
	} {
		c.ID, c.UserID, c.PublicKey, c.UserPresent, c.UserVerified, c.CreatedAt = []byte{byte(i), 9, 9}, ua.ID, []byte{1}, true, true, time.Now().UTC()
		if err := a.store.CreateCredential(context.Background(), &c, false); err != nil {
			t.Fatal(err)
		}
	}
	var added storage.Credential
	for _, c := range a.credentials(ua) {
		if slices.Equal(c.ID, google.cred.ID) {
			added = c
		}
	}
	if added.Name != "Google パスワードマネージャー" {
		t.Errorf("the passkey added on S8 is named %q, want its provider", added.Name)
	}
	// The F1 passkey's AAGUID is not in the list: no provider, as before.
	a.expect(a.get(pathAccount), http.StatusOK,
		`data-passkey-provider="" data-passkey-kind="device">このデバイスのみ</dd>`,
		`data-passkey-provider="Google パスワードマネージャー" data-passkey-kind="synced">同期済み・Google パスワードマネージャー</dd>`,
		`>このデバイスのみ・セキュリティキー（Google Titan Security Key v2）</dd>`,
		`>このデバイスのみ・セキュリティキー</dd>`)
	a.expect(a.get(pathAccount+"?lang=en"), http.StatusOK,
		`>This device only</dd>`,
		`>Synced · Google Password Manager</dd>`,
		`>This device only · Security key (Google Titan Security Key v2)</dd>`,
		`>This device only · Security key</dd>`)
}
