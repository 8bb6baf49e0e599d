package login

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

var testRP = virtualwebauthn.RelyingParty{ID: "localhost", Name: "コムストックローン", Origin: "http://localhost:8080"}

// newPasskeyEnv is newEnv with the real passkey service.
func newPasskeyEnv(t *testing.T, flavor string) *env {
	t.Helper()
	e := newEnv(t, flavor, nil)
	svc, err := passkey.New(passkey.Config{RPID: testRP.ID, RPDisplayName: testRP.Name, Origins: []string{testRP.Origin}}, e.store, e.h.log)
	if err != nil {
		t.Fatal(err)
	}
	e.h.passkeys = svc
	return e
}

type device struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newDevice(u *storage.User) *device {
	d := &device{
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(u.ID)}),
		cred: passkeytest.NewCredential(),
	}
	d.auth.AddCredential(d.cred)
	return d
}

func (e *env) postJSON(path string, body []byte) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.do(req)
}

func (e *env) jsonField(r resp, key string) string {
	e.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		e.t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	s, _ := m[key].(string)
	return s
}

// register runs the S5 ceremony of the current flow with d.
func (e *env) register(d *device) resp {
	e.t.Helper()
	opts := e.post("/login/passkey/register/options", nil)
	if opts.status != http.StatusOK {
		return opts
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(opts.body)
	if err != nil {
		e.t.Fatalf("attestation options %s: %v", opts.body, err)
	}
	return e.postJSON("/login/passkey/register/finish", []byte(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *ao)))
}

// passkeyLogin runs the S2 ceremony with d; attachment is what the browser
// reports ("" to leave it out).
func (e *env) passkeyLogin(d *device, attachment string) resp {
	e.t.Helper()
	opts := e.post("/login/passkey/login/options", nil)
	e.expect(opts, http.StatusOK, `"publicKey"`)
	ao, err := virtualwebauthn.ParseAssertionOptions(opts.body)
	if err != nil {
		e.t.Fatalf("assertion options %s: %v", opts.body, err)
	}
	answer := []byte(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *ao))
	if attachment != "" {
		var m map[string]any
		_ = json.Unmarshal(answer, &m)
		m["authenticatorAttachment"] = attachment
		answer, _ = json.Marshal(m)
	}
	return e.postJSON("/login/passkey/login/finish", answer)
}

// enrol runs F1 with a passkey for u and returns the device holding it.
func (e *env) enrol(u *storage.User, pw string) *device {
	e.t.Helper()
	code := e.startF1(u, pw)
	e.expectRedirect(e.post("/login/otp", map[string][]string{"code": {code}}), "/login/passkey/create")
	d := newDevice(u)
	r := e.register(d)
	e.expect(r, http.StatusOK)
	if !strings.HasPrefix(e.jsonField(r, "redirect"), "/cb?id=") {
		e.t.Fatalf("register finish = %s", r.body)
	}
	return d
}

func TestF1CreatesAPasskeyThenF2SignsIn(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("mika", "s3cret-pass")
		d := e.enrol(u, "s3cret-pass")
		if n, _ := e.store.CountCredentials(context.Background(), u.ID); n != 1 {
			t.Fatalf("%d passkeys after F1", n)
		}

		e.logout()
		ar := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.Passkey} })
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		e.expect(e.get("/login/passkey"), http.StatusOK, "data-passkey-login", "/static/passkey.js")
		r := e.passkeyLogin(d, "platform")
		e.expect(r, http.StatusOK)
		if got := e.jsonField(r, "redirect"); got != "/cb?id="+ar {
			t.Fatalf("redirect = %q", got)
		}
		a := e.storedAuthRequest(ar)
		if !a.Done || a.UserID != u.ID || a.ACR != e.cfg.ACR.Passkey || len(a.AMR) == 0 || slices.Contains(a.AMR, "pwd") {
			t.Fatalf("passkey completion: done %v user %q amr %v acr %q", a.Done, a.UserID, a.AMR, a.ACR)
		}
		// The passkey session satisfies a later passkey-only request silently.
		again := e.authRequest(func(a *storage.AuthRequest) { a.ACRValues = []string{e.cfg.ACR.Passkey} })
		e.expectRedirect(e.get("/login?authRequestID="+again), "/cb?id="+again)
	})
}

// 40 concurrent finishes of one ceremony (one assertion replayed at once,
// each call taking its slot and reading its flow in one store call) sign
// in once: one session, one write-back of the counter, one login audited;
// the others are refused with a 4xx.
func TestConcurrentFinishesOfOneCeremonySignInOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("mika", "s3cret-pass")
		d := e.enrol(u, "s3cret-pass")
		e.logout()
		ctx := context.Background()
		sessionsBefore, err := e.store.SessionsByUser(ctx, u.ID, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		loginsBefore := e.auditCount("login.success")
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		opts := e.post(pathPasskeyLoginOpt, nil)
		e.expect(opts, http.StatusOK, `"publicKey"`)
		ao, err := virtualwebauthn.ParseAssertionOptions(opts.body)
		if err != nil {
			t.Fatalf("assertion options %s: %v", opts.body, err)
		}
		answer := []byte(virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *ao))

		const calls = 40
		won := 0
		for i, r := range concurrently(calls, func(int) resp { return e.postJSON(pathPasskeyLoginFin, answer) }) {
			switch {
			case r.status == http.StatusOK:
				won++
				if got := e.jsonField(r, "redirect"); got != "/cb?id="+ar {
					t.Fatalf("finish %d: redirect %q", i, got)
				}
			case r.status != http.StatusBadRequest:
				t.Fatalf("finish %d: %d %s, want 200 once and 400 for the rest", i, r.status, r.body)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent finishes signed in, want 1", won, calls)
		}
		sessions, err := e.store.SessionsByUser(ctx, u.ID, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) != len(sessionsBefore)+1 {
			t.Fatalf("%d sessions after the race, want %d", len(sessions), len(sessionsBefore)+1)
		}
		if n := e.auditCount("login.success") - loginsBefore; n != 1 {
			t.Fatalf("%d passkey logins audited, want 1", n)
		}
		if a := e.storedAuthRequest(ar); !a.Done || a.UserID != u.ID {
			t.Fatalf("auth request after the race: done %v user %q", a.Done, a.UserID)
		}
	})
}

func TestCrossDeviceLoginOffersS5Variant(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("sora", "s3cret-pass")
		phone := e.enrol(u, "s3cret-pass")
		e.logout()

		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		r := e.passkeyLogin(phone, "cross-platform")
		e.expect(r, http.StatusOK)
		if got := e.jsonField(r, "redirect"); got != "/login/passkey/create" {
			t.Fatalf("redirect = %q", got)
		}
		if e.storedAuthRequest(ar).Done {
			t.Fatal("completed before S5")
		}
		e.expect(e.get("/login/passkey/create"), http.StatusOK, "このデバイスでクイックにサインイン", "パスキー作成なしでログイン", "【重要】パスキーの追加登録について")
		// After a passkey login, a second passkey may be added on this PC.
		pc := newDevice(u)
		reg := e.register(pc)
		e.expect(reg, http.StatusOK)
		if n, _ := e.store.CountCredentials(context.Background(), u.ID); n != 2 {
			t.Fatalf("%d passkeys, want 2", n)
		}
		a := e.storedAuthRequest(ar)
		if !a.Done || a.ACR != e.cfg.ACR.Passkey {
			t.Fatalf("completion after cross-device + register: %+v", a)
		}
	})
}

func TestCrossDeviceSkipCompletesWithPasskeyACR(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("sora", "s3cret-pass")
	phone := e.enrol(u, "s3cret-pass")
	e.logout()
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.passkeyLogin(phone, "cross-platform")
	e.expectRedirect(e.post("/login/passkey/create/skip", nil), "/cb?id="+ar)
	if a := e.storedAuthRequest(ar); a.ACR != e.cfg.ACR.Passkey || slices.Contains(a.AMR, "pwd") {
		t.Fatalf("skip after cross-device: amr %v acr %q", a.AMR, a.ACR)
	}
}

func TestRegistrationNeedsRecentAuth(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("riku", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		e.expectRedirect(e.post("/login/otp", map[string][]string{"code": {code}}), "/login/passkey/create")
		e.clock.Advance(e.cfg.RecentAuth + time.Second)
		r := e.register(newDevice(u))
		e.expect(r, http.StatusForbidden, `"code":"reauthenticate"`)
		if n, _ := e.store.CountCredentials(context.Background(), u.ID); n != 0 {
			t.Fatal("passkey created on a stale authentication")
		}
	})
}

func TestRegistrationBeforeOTPRefused(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("riku", "s3cret-pass")
	e.startF1(u, "s3cret-pass") // password verified, OTP not yet
	e.expect(e.post("/login/passkey/register/options", nil), http.StatusBadRequest, `"code":"wrong_step"`)
}

func TestF1EnrolmentCannotAddASecondPasskey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("kai", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		e.expectRedirect(e.post("/login/otp", map[string][]string{"code": {code}}), "/login/passkey/create")
		d := newDevice(u)
		opts := e.post("/login/passkey/register/options", nil)
		e.expect(opts, http.StatusOK)
		// Meanwhile a passkey appears (another tab, another device).
		e.addPasskey(u)
		ao, err := virtualwebauthn.ParseAttestationOptions(opts.body)
		if err != nil {
			t.Fatal(err)
		}
		r := e.postJSON("/login/passkey/register/finish", []byte(virtualwebauthn.CreateAttestationResponse(testRP, d.auth, d.cred, *ao)))
		e.expect(r, http.StatusConflict, `"code":"has_passkey"`)
		if n, _ := e.store.CountCredentials(context.Background(), u.ID); n != 1 {
			t.Fatalf("%d passkeys, want only the other one", n)
		}
		e.expect(e.post("/login/passkey/register/options", nil), http.StatusConflict, `"code":"has_passkey"`)
	})
}

func TestUnknownPasskeyAnswersUnknownCredential(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("mei", "s3cret-pass")
	d := e.enrol(u, "s3cret-pass")
	if _, err := e.store.DeleteUserCredentials(context.Background(), u.ID); err != nil {
		t.Fatal(err)
	}
	e.logout()
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	r := e.passkeyLogin(d, "")
	e.expect(r, http.StatusUnauthorized, `"code":"unknown_credential"`, `"credentialId"`, `"rpId":"localhost"`)
	if e.storedAuthRequest(ar).Done {
		t.Fatal("deleted passkey signed in")
	}
}

// A customer who deleted one of two passkeys on S8 and then uses it is not
// sent only to 「パスキー初回登録」, which rule 1 refuses while the other
// passkey exists (the loop the old text made): the answer names the other
// passkey first, and that passkey signs in.
func TestRule6DeletedPasskeyPointsToTheOtherNotALoop(t *testing.T) {
	a := newPasskeyEnv(t, "sqlite")
	ua := a.createUser("aoi", "s3cret-pass")
	da := a.enrol(ua, "s3cret-pass")
	a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
	second := newDevice(ua)
	a.expect(a.addOnS8(second), http.StatusOK)
	a.expectRedirect(a.post(pathAccountDelete, url.Values{"id": {credID(da)}}), pathAccount+"?deleted=1")
	a.logout()
	ar := a.authRequest(nil)
	a.expect(a.get("/login?authRequestID="+ar), http.StatusOK)
	r := a.passkeyLogin(da, "")
	a.expect(r, http.StatusUnauthorized, `"code":"unknown_credential"`)
	msg := a.jsonField(r, "error")
	for _, want := range []string{"ほかに登録済みのパスキーがある場合は、そのパスキーで「パスキー認証」", "「パスキー初回登録」", "日証金コムストックローンセンター"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("unknown-passkey text %q lacks %q", msg, want)
		}
	}
	// The way the text names first works.
	r = a.passkeyLogin(second, "")
	a.expect(r, http.StatusOK)
	if !a.storedAuthRequest(ar).Done {
		t.Fatal("the remaining passkey did not sign in")
	}
}

// auth_time is when the customer proved who they are, not when they left
// S5: a client's max_age and S8's freshness checks depend on it.
func TestAuthTimeIsTheProofNotTheS5Click(t *testing.T) {
	t.Run("password + OTP, then skip", func(t *testing.T) {
		e := newEnv(t, "sqlite", nil)
		u := e.createUser("toki", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		verified := e.clock.Now()
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		e.clock.Advance(10 * time.Minute)
		ar := e.storedAuthRequest(e.currentFlowAuthRequest())
		e.expectRedirect(e.post(pathCreateSkip, nil), "/cb?id="+ar.ID)
		e.expectAuthTime(ar.ID, verified)
	})
	t.Run("cross-device passkey, then skip", func(t *testing.T) {
		e := newPasskeyEnv(t, "sqlite")
		u := e.createUser("haru", "s3cret-pass")
		phone := e.enrol(u, "s3cret-pass")
		e.logout()
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.passkeyLogin(phone, "cross-platform")
		verified := e.clock.Now()
		e.clock.Advance(4 * time.Minute)
		e.expectRedirect(e.post(pathCreateSkip, nil), "/cb?id="+ar)
		e.expectAuthTime(ar, verified)
	})
}

func (e *env) currentFlowAuthRequest() string {
	e.t.Helper()
	f, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(e.cookie(flowCookie)))
	if err != nil {
		e.t.Fatal(err)
	}
	return f.AuthRequestID
}

// expectAuthTime checks the completed auth request and the new SSO session.
func (e *env) expectAuthTime(authRequestID string, want time.Time) {
	e.t.Helper()
	if got := e.storedAuthRequest(authRequestID).AuthTime; got.Sub(want).Abs() > time.Millisecond {
		e.t.Errorf("auth request auth_time = %v, want %v", got, want)
	}
	s, err := e.store.SessionByID(context.Background(), storage.HashSecret(e.cookie(sessionCookie)))
	if err != nil {
		e.t.Fatal(err)
	}
	if s.AuthTime.Sub(want).Abs() > time.Millisecond {
		e.t.Errorf("session auth time = %v, want %v", s.AuthTime, want)
	}
}
