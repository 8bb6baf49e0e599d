package login

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// loginRoutes is every path Register and EndSession serve. A new route
// must be added here so the bad-input test below reaches it.
var loginRoutes = []string{
	pathLogin, pathPasskey, pathPassword, pathOTP, pathOTPResend, pathCreate, pathCreateSkip,
	pathChangePassword, pathOffer, pathOfferSkip, pathPasskeyLoginOpt, pathPasskeyLoginFin, pathPasskeyRegOpt, pathPasskeyRegFin,
	pathHelp, pathAccount, pathAccountSignIn, pathAccountRename, pathAccountDelete, pathAccountStepUpOpt,
	pathAccountStepUpFin, pathAccountRegOpt, pathAccountRegFin, pathLoggedOut, "/end_session",
	"/static/style.css",
}

// badRequest is one kind of hostile or broken client input.
type badRequest struct {
	name        string
	method      string
	query       string
	contentType string
	body        func() io.Reader
	header      map[string]string
}

func bodyOf(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }

var huge = strings.Repeat("A", 2<<20)

var badRequests = []badRequest{
	{name: "wrong method PUT", method: http.MethodPut, body: bodyOf("x=1")},
	{name: "wrong method DELETE", method: http.MethodDelete},
	{name: "wrong method PATCH", method: http.MethodPatch, contentType: "application/json", body: bodyOf("{}")},
	{name: "OPTIONS", method: http.MethodOptions},
	{name: "garbage query", method: http.MethodGet,
		query: "authRequestID=%00%ff../../x&lang=xx&return_to=javascript:alert(1)&id=!!!&mediation=conditional&sent=1&deleted=1"},
	{name: "huge query", method: http.MethodGet, query: "authRequestID=" + strings.Repeat("9", 6000) + "&return_to=https://rp.example/" + strings.Repeat("a", 6000)},
	{name: "malformed form encoding", method: http.MethodPost, contentType: "application/x-www-form-urlencoded",
		body: bodyOf("loginID=%zz&password=%&code=%G1")},
	{name: "garbage form values", method: http.MethodPost, contentType: "application/x-www-form-urlencoded",
		body: bodyOf(url.Values{
			"loginID": {"\x00\xff<script>"}, "password": {"\xff"}, "code": {"１２３４５６"},
			"current": {"\x00"}, "new": {strings.Repeat("é", 300)}, "confirm": {"x"},
			"id": {"%%%"}, "name": {strings.Repeat("\u202e", 60)}, "return_to": {"//evil.example"},
			"confirm_logout": {"1"}, "id_token_hint": {"garbage"},
		}.Encode())},
	{name: "oversized form", method: http.MethodPost, contentType: "application/x-www-form-urlencoded",
		body: bodyOf("loginID=" + huge)},
	{name: "multipart without boundary", method: http.MethodPost, contentType: "multipart/form-data", body: bodyOf("--x\r\n")},
	{name: "JSON that is not JSON", method: http.MethodPost, contentType: "application/json", body: bodyOf("{not json")},
	{name: "JSON of the wrong shape", method: http.MethodPost, contentType: "application/json",
		body: bodyOf(`{"id":1,"rawId":[],"type":"public-key","response":{"clientDataJSON":"%%%","authenticatorData":null}}`)},
	{name: "JSON with a fake challenge", method: http.MethodPost, contentType: "application/json",
		body: bodyOf(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiQUFBQSIsIm9yaWdpbiI6Imh0dHA6Ly9sb2NhbGhvc3Q6ODA4MCJ9","authenticatorData":"AAAA","signature":"AAAA","userHandle":"AAAA"}}`)},
	{name: "oversized JSON", method: http.MethodPost, contentType: "application/json", body: bodyOf(`{"id":"` + huge + `"}`)},
	{name: "wrong content type", method: http.MethodPost, contentType: "text/plain", body: bodyOf("loginID=taro")},
	{name: "empty POST", method: http.MethodPost},
	{name: "garbage cookies", method: http.MethodPost, contentType: "application/x-www-form-urlencoded", body: bodyOf("code=123456"),
		header: map[string]string{"Cookie": flowCookie + "=" + strings.Repeat("Z", 4000) + "; " + sessionCookie + "=%00; idp_lang=\xff"}},
	{name: "cross-site POST", method: http.MethodPost, contentType: "application/x-www-form-urlencoded", body: bodyOf("loginID=taro"),
		header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
	{name: "odd Accept-Language", method: http.MethodGet, header: map[string]string{"Accept-Language": strings.Repeat("en;q=x,", 500)}},
}

// badInputStates are the places a customer can be when the bad input
// arrives: each builds its state in a fresh cookie jar on e.
var badInputStates = []struct {
	name  string
	build func(e *env, n int)
}{
	{"no cookies", func(*env, int) {}},
	{"flow at S1", func(e *env, _ int) {
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
	}},
	{"flow at S4", func(e *env, n int) {
		u := e.createUser(fmt.Sprintf("bad%d", n), "s3cret-pass")
		e.startF1(u, "s3cret-pass")
	}},
	{"flow at S5", func(e *env, n int) {
		u := e.createUser(fmt.Sprintf("s5-%d", n), "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {e.startF1(u, "s3cret-pass")}}), pathCreate)
	}},
	{"signed in by password + OTP", func(e *env, n int) {
		u := e.createUser(fmt.Sprintf("otp-%d", n), "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {e.startF1(u, "s3cret-pass")}}), pathCreate)
		e.expectRedirect(e.post(pathCreateSkip, nil), "/cb")
	}},
	{"flow at S7", func(e *env, n int) {
		e.createUser(fmt.Sprintf("tmp%d", n), "temp-pass-1", temporary)
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {fmt.Sprintf("tmp%d", n)}, "password": {"temp-pass-1"}}), pathChangePassword)
	}},
	{"flow at the passkey offer", func(e *env, n int) {
		e.createUser(fmt.Sprintf("offer%d", n), "s3cret-pass")
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {fmt.Sprintf("offer%d", n)}, "password": {"s3cret-pass"}}), pathOffer)
	}},
	{"signed in", func(e *env, n int) {
		e.createUser(fmt.Sprintf("pwd%d", n), "s3cret-pass")
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {fmt.Sprintf("pwd%d", n)}, "password": {"s3cret-pass"}}), pathOffer)
		e.expectRedirect(e.post(pathOfferSkip, nil), "/cb")
	}},
}

// TestBadInputNeverAnswers5xx throws broken and hostile requests at every
// login route, from every state a flow can be in, and wants a 4xx or a
// normal answer: never a 5xx, a panic or a blank page.
func TestBadInputNeverAnswers5xx(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) {
			// The test sends hundreds of wrong passwords from one address.
			c.PasswordThrottle.MaxPerAddress = 1 << 20
			c.PasswordThrottle.MaxPerLoginID = 1 << 20
		})
		svc, err := passkey.New(passkey.Config{RPID: testRP.ID, RPDisplayName: testRP.Name, Origins: []string{testRP.Origin}}, e.store, e.h.log)
		if err != nil {
			t.Fatal(err)
		}
		e.h.passkeys = svc
		n := 0
		for _, st := range badInputStates {
			for _, route := range loginRoutes {
				n++
				jar, _ := cookiejar.New(nil)
				e.client.Jar = jar
				st.build(e, n)
				for _, br := range badRequests {
					method := br.method
					target := e.srv.URL + route
					if br.query != "" {
						target += "?" + br.query
					}
					var body io.Reader
					if br.body != nil {
						body = br.body()
					}
					req, err := http.NewRequest(method, target, body)
					if err != nil {
						t.Fatal(err)
					}
					if br.contentType != "" {
						req.Header.Set("Content-Type", br.contentType)
					}
					for k, v := range br.header {
						req.Header.Set(k, v)
					}
					r := e.do(req)
					where := fmt.Sprintf("%s / %s %s / %s", st.name, method, route, br.name)
					if r.status >= 500 {
						t.Errorf("%s: status %d, body:\n%.400s", where, r.status, r.body)
						continue
					}
					if strings.Contains(r.body, "goroutine ") || strings.Contains(r.body, "panic") {
						t.Errorf("%s: body shows internals:\n%.400s", where, r.body)
					}
					// Redirects may be blank; every page and refusal says something.
					// (/static/ is not ours past GET: production hands other
					// methods to the OP's catch-all.)
					blank := len(bytes.TrimSpace([]byte(r.body))) == 0
					if blank && method != http.MethodHead && (r.status < 300 || r.status >= 400 && !strings.HasPrefix(route, "/static/")) {
						t.Errorf("%s: blank %d answer", where, r.status)
					}
					if r.status == http.StatusMethodNotAllowed && r.header.Get("Allow") == "" && !strings.HasPrefix(route, "/static/") {
						t.Errorf("%s: 405 without Allow", where)
					}
				}
			}
		}
	})
}

// TestUserDeletedMidFlowIsAStaleFlow: support staff may delete a customer
// while the customer is between two steps; every later step answers with
// the expired-flow page, not a 500. (DeleteUser drops the user's flows;
// flowUser covers a delete that lands between loading the flow and the
// user.)
func TestUserDeletedMidFlowIsAStaleFlow(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		deleteUser := func(loginID string) {
			t.Helper()
			u, err := e.store.UserByLoginID(context.Background(), loginID)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.store.DeleteUser(context.Background(), u.ID); err != nil {
				t.Fatal(err)
			}
		}

		u := e.createUser("gone-s4", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		deleteUser(u.LoginID)
		e.expect(e.get(pathOTP), http.StatusBadRequest, "操作の有効期限が切れました")
		e.expect(e.submit(pathOTPResend, nil), http.StatusBadRequest, "操作の有効期限が切れました")
		e.expect(e.submit(pathOTP, url.Values{"code": {code}}), http.StatusBadRequest, "操作の有効期限が切れました")

		e.client.Jar, _ = cookiejar.New(nil)
		u = e.createUser("gone-s5", "s3cret-pass")
		code = e.startF1(u, "s3cret-pass")
		e.expectRedirect(e.post(pathOTP, url.Values{"code": {code}}), pathCreate)
		deleteUser(u.LoginID)
		e.expect(e.post(pathPasskeyRegOpt, nil), http.StatusBadRequest, "flow_expired")
		e.expect(e.post(pathCreateSkip, nil), http.StatusBadRequest, "操作の有効期限が切れました")

		e.client.Jar, _ = cookiejar.New(nil)
		e.createUser("gone-s7", "temp-pass-1", temporary)
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		e.expectRedirect(e.post(pathLogin, url.Values{"loginID": {"gone-s7"}, "password": {"temp-pass-1"}}), pathChangePassword)
		deleteUser("gone-s7")
		e.expect(e.submit(pathChangePassword, url.Values{"current": {"temp-pass-1"}, "new": {"new-pass-123"}, "confirm": {"new-pass-123"}}),
			http.StatusBadRequest, "操作の有効期限が切れました")
	})
}

// A page answered to a POST-only path switches language through the GET
// page of its step: the switch must never lead to a 405.
func TestLanguageSwitchOfPostOnlyPaths(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("kana", "s3cret-pass")
	e.startF1(u, "s3cret-pass")
	r := e.submit(pathOTPResend, nil) // too soon: S4 again, at the resend path
	e.expect(r, http.StatusTooManyRequests, `href="/login/otp?lang=en"`)
	e.expect(e.get("/login/otp?lang=en"), http.StatusOK, "Verify it&#39;s you")
}

// A User-Agent PostgreSQL cannot store must not cost the audit event: a
// guesser could otherwise hide its failed logins from the trail. The
// recorder stores at most 512 bytes of it.
func TestAuditKeepsEventsOfHostileUserAgents(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		e.createUser("rin", "s3cret-pass")
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		ua := "evil\xff\xfe\t" + strings.Repeat("x", 4000)
		e.expect(e.submit("/login", url.Values{"loginID": {"rin"}, "password": {"wrong-pass"}}, "User-Agent", ua), http.StatusUnauthorized)
		var got *storage.AuditEvent
		for _, ev := range e.audit() {
			if ev.Type == "login.failure" {
				got = &ev
			}
		}
		if got == nil {
			t.Fatal("the failed login left no audit event")
		}
		if !strings.HasPrefix(got.UserAgent, "evil") || len(got.UserAgent) > 512 || !utf8.ValidString(got.UserAgent) {
			t.Errorf("audited user agent = %.80q (%d bytes)", got.UserAgent, len(got.UserAgent))
		}
	})
}

// Behind a proxy the last X-Forwarded-For entry is the client address; an
// entry that is no address (a proxy passing a forged header through) is
// ignored rather than stored as a throttle key.
func TestForwardedForMustBeAnAddress(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) { c.TrustProxyHeaders = true })
		e.createUser("yui", "s3cret-pass")
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		wrong := url.Values{"loginID": {"yui"}, "password": {"wrong-pass"}}
		e.expect(e.submit("/login", wrong, "X-Forwarded-For", "198.51.100.1, 203.0.113.9"), http.StatusUnauthorized)
		e.expect(e.submit("/login", wrong, "X-Forwarded-For", "\xff' OR 1=1"), http.StatusUnauthorized)
		var ips []string
		for _, ev := range e.audit() {
			if ev.Type == "login.failure" {
				ips = append(ips, ev.IP)
			}
		}
		if len(ips) != 2 || ips[0] != "203.0.113.9" || ips[1] != "127.0.0.1" {
			t.Errorf("audited addresses = %q, want the proxy's entry, then the peer", ips)
		}
	})
}
