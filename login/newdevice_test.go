package login

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

const testIssuer = "https://idp.example"

// newDeviceEnv is newEnv with the new sign-in mail on or off, and room
// for concurrent password checks.
func newDeviceEnv(t *testing.T, flavor string, on bool) *env {
	return newEnv(t, flavor, func(c *Config) {
		c.Issuer = testIssuer
		c.NewDeviceMail = on
		c.PasswordHashing = password.LimiterConfig{Queue: 100, MaxWait: 10 * time.Second}
	})
}

// drained waits until the mails sent after their responses are done, so
// that "no mail" is an answer and not a race.
func (e *env) drained() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.h.Drain(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// newDeviceMails are the new sign-in mails u received.
func (e *env) newDeviceMails(u *storage.User) []mailsink.Message {
	e.t.Helper()
	e.drained()
	var out []mailsink.Message
	for _, m := range e.sink.Messages() {
		if slices.Contains(m.To, u.Email) && m.Subject == e.cfg.NewDeviceMailSubject {
			out = append(out, m)
		}
	}
	return out
}

// signIn is a password login (F4) in this browser, with the pages in
// lang; prompt=login, so that a session the browser has is not reused.
func (e *env) signIn(u *storage.User, lang string) {
	e.t.Helper()
	ar := e.authRequest(func(a *storage.AuthRequest) { a.Prompt = []string{"login"} })
	e.expect(e.get("/login?authRequestID="+ar+"&lang="+lang), http.StatusOK)
	e.expectRedirect(e.post("/login", url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}}), "/cb?id="+ar)
}

func (e *env) newDeviceEvents(u *storage.User, notified string) int {
	e.t.Helper()
	n := 0
	for _, ev := range e.audit() {
		if ev.Type == "session.new_device" && ev.UserID == u.ID && ev.Detail["notified"] == notified {
			n++
		}
	}
	return n
}

// TestNewSignInMail: the first sign-in and the same browser again mail
// nothing; a browser the customer never used mails address 1 once, in the
// page language, with the browser, the website and the link to S8.
func TestNewSignInMail(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newDeviceEnv(t, flavor, true)
		u := e.createUser("sora", "s3cret-pass")
		phone := e.browserWithUA(uaIPhone)
		phone.signIn(u, "ja")
		if got := e.newDeviceMails(u); len(got) != 0 {
			t.Fatalf("the first sign-in mailed: %+v", got)
		}
		phone.logout() // the device cookie outlives the session
		phone.signIn(u, "ja")
		if got := e.newDeviceMails(u); len(got) != 0 {
			t.Fatalf("the same browser again mailed: %+v", got)
		}

		pc := e.browserWithUA(uaWindowsChrome)
		pc.signIn(u, "ja")
		got := e.newDeviceMails(u)
		if len(got) != 1 {
			t.Fatalf("a new browser sent %d mails, want 1", len(got))
		}
		body := got[0].Body
		for _, want := range []string{"これまでご利用のない端末からログインがありました", "端末: Chrome (Windows)",
			"ご利用のサイト: デモサイト", "日本時間", "他の端末からログアウト", testIssuer + "/account/passkeys\n",
			"日証金コムストックローンセンター", "03-6264-9738", "受付時間 平日 9:00 – 17:00"} {
			if !strings.Contains(body, want) {
				t.Fatalf("mail lacks %q:\n%s", want, body)
			}
		}
		if got[0].Subject != "【コムストックローン】新しい端末からのログインのお知らせ" || !slices.Equal(got[0].To, []string{u.Email}) {
			t.Fatalf("mail to %v, subject %q", got[0].To, got[0].Subject)
		}
		if n := e.newDeviceEvents(u, "true"); n != 1 {
			t.Fatalf("%d session.new_device notified=true events, want 1", n)
		}
		pc.signIn(u, "ja")
		if n := len(e.newDeviceMails(u)); n != 1 {
			t.Fatalf("the new browser's second sign-in mailed again (%d mails)", n)
		}

		tablet := e.browserWithUA("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36")
		tablet.signIn(u, "en")
		got = e.newDeviceMails(u)
		if len(got) != 2 {
			t.Fatalf("%d mails after a second new browser, want 2", len(got))
		}
		for _, want := range []string{"signed in to your account on a device not used with it before", "Device: Chrome (ChromeOS)",
			"Website: デモサイト", "Japan time", "Sign out of other devices", testIssuer + "/account/passkeys\n", "Hours Weekdays"} {
			if !strings.Contains(got[1].Body, want) {
				t.Fatalf("English mail lacks %q:\n%s", want, got[1].Body)
			}
		}
	})
}

// The device cookie: long-lived, HttpOnly, Lax, and with an https issuer
// a __Host- cookie like the session's. A value that is not one of ours is
// replaced.
func TestNewSignInDeviceCookie(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) { c.SecureCookies = true })
	u := e.createUser("sora", "s3cret-pass")
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
	res := e.post("/login", url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}})
	e.expectRedirect(res, "/cb?id="+ar)
	var device *http.Cookie
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if strings.HasSuffix(c.Name, deviceCookie) {
			device = c
		}
	}
	if device == nil || device.Name != "__Host-"+deviceCookie || !device.Secure || !device.HttpOnly ||
		device.SameSite != http.SameSiteLaxMode || device.Path != "/" || device.Domain != "" ||
		device.MaxAge != 400*24*60*60 || !isDeviceSecret(device.Value) {
		t.Fatalf("device cookie %+v, want __Host-%s, Secure, HttpOnly, Lax, 400 days, a random secret", device, deviceCookie)
	}

	plain := newDeviceEnv(t, "sqlite", true)
	v := plain.createUser("yui", "s3cret-pass")
	plain.plantCookie(deviceCookie, "x")
	plain.signIn(v, "ja")
	if got := plain.cookie(deviceCookie); got == "x" || !isDeviceSecret(got) {
		t.Fatalf("planted device cookie %q kept", got)
	}
}

// With the mail off (the default) a new browser is still remembered and
// audited as not notified, so turning the mail on later does not mail
// every customer at their next sign-in.
func TestNewSignInMailOffByDefault(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, nil)
		if e.cfg.NewDeviceMail {
			t.Fatal("the new sign-in mail is on by default")
		}
		u := e.createUser("sora", "s3cret-pass")
		e.signIn(u, "ja")
		pc := e.browserWithUA(uaWindowsChrome)
		pc.signIn(u, "ja")
		if got := e.newDeviceMails(u); len(got) != 0 {
			t.Fatalf("mail sent while off: %+v", got)
		}
		if n := e.newDeviceEvents(u, "false"); n != 1 {
			t.Fatalf("%d session.new_device notified=false events, want 1", n)
		}
		if n := e.auditCount("session.new_device"); n != 1 {
			t.Fatalf("%d session.new_device events, want 1 (the first sign-in is none)", n)
		}
	})
}

// An attacker who is a customer too signs in to the victim's account from
// their own browser, or with their own device cookie copied into a fresh
// one: the cookie is known for the attacker, not for the victim, whose
// mail still goes (the stored hash is per user).
func TestNewSignInMailForeignDeviceCookieDoesNotSuppressIt(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newDeviceEnv(t, flavor, true)
		victim := e.createUser("sora", "s3cret-pass")
		attacker := e.createUser("kuro", "s3cret-pass")
		e.browser().signIn(victim, "ja")
		// attackerBrowser is a browser the attacker signs in on, known for them.
		attackerBrowser := func() *env {
			b := e.browser()
			b.signIn(attacker, "ja")
			b.signIn(attacker, "ja")
			b.logout()
			return b
		}

		own := attackerBrowser()
		own.signIn(victim, "ja")
		if n := len(e.newDeviceMails(victim)); n != 1 {
			t.Fatalf("victim got %d mails for a sign-in from the attacker's browser, want 1", n)
		}
		planted := e.browser()
		planted.plantCookie(deviceCookie, attackerBrowser().cookie(deviceCookie))
		planted.signIn(victim, "ja")
		if n := len(e.newDeviceMails(victim)); n != 2 {
			t.Fatalf("victim got %d mails after a sign-in with the attacker's copied device cookie, want 2", n)
		}
	})
}

// A family PC another customer already signs in on is new to this one:
// 40 sign-ins from it at once (each its own flow, one device cookie)
// mail exactly once.
func TestNewSignInMailConcurrentSignInsMailOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newDeviceEnv(t, flavor, true)
		u := e.createUser("sora", "s3cret-pass")
		sibling := e.createUser("kai", "s3cret-pass")
		e.browser().signIn(u, "ja") // u's first browser: no mail
		shared := e.browser()
		shared.signIn(sibling, "ja")
		device := shared.cookie(deviceCookie)

		const n = 40
		tabs := make([]*env, n)
		for i := range tabs {
			tabs[i] = e.browser()
			tabs[i].plantCookie(deviceCookie, device)
			tabs[i].expect(tabs[i].get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		}
		res := concurrently(n, func(i int) resp {
			return tabs[i].post("/login", url.Values{"loginID": {u.LoginID}, "password": {"s3cret-pass"}})
		})
		for i, r := range res {
			if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/cb?id=") {
				t.Fatalf("sign-in %d: %d %q", i, r.status, r.location())
			}
		}
		if got := len(e.newDeviceMails(u)); got != 1 {
			t.Fatalf("%d concurrent sign-ins on one new browser sent %d mails, want 1", n, got)
		}
	})
}

// stallingSMTP accepts connections and never says a word, as a relay that
// hangs does; the connections it took come out of the channel.
func stallingSMTP(t *testing.T) (*mail.SMTPSender, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	return &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: "info@jsfnet.com", Timeout: 30 * time.Second}, conns
}

// A relay that hangs does not hold up the sign-in: the browser is at the
// website while the mail is still waiting for the relay's greeting (had
// the send been part of the request, the answer would have come only
// after the mail failed and was audited). When the relay then drops the
// mail, the failure is logged and audited, and the customer stays signed
// in.
func TestNewSignInMailNeverHoldsUpTheSignIn(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newDeviceEnv(t, flavor, true)
		u := e.createUser("sora", "s3cret-pass")
		e.signIn(u, "ja")
		stalled, conns := stallingSMTP(t)
		e.h.mailer = stalled

		pc := e.browserWithUA(uaWindowsChrome)
		pc.signIn(u, "ja")
		if n := e.auditCount("session.new_device"); n != 0 {
			t.Fatalf("%d session.new_device events before the relay answered: the sign-in waited for the mail", n)
		}
		var conn net.Conn
		select {
		case conn = <-conns:
		case <-time.After(10 * time.Second):
			t.Fatal("the mail never reached the relay")
		}
		conn.Close()
		e.drained()
		if n := e.newDeviceEvents(u, "failed"); n != 1 {
			t.Fatalf("%d session.new_device notified=failed events, want 1", n)
		}
		if !strings.Contains(e.logs.String(), "sending the new sign-in mail failed") {
			t.Fatal("the failed mail was not logged")
		}
		pc.expect(pc.get(pathAccount), http.StatusOK, "パスキー設定状況確認")
	})
}

// A relay that refuses outright: the sign-in completes all the same.
func TestNewSignInMailFailingMailerLoginCompletes(t *testing.T) {
	e := newDeviceEnv(t, "sqlite", true)
	u := e.createUser("sora", "s3cret-pass")
	e.signIn(u, "ja")
	e.breakMail()
	pc := e.browserWithUA(uaWindowsChrome)
	pc.signIn(u, "ja")
	e.drained()
	if n := e.newDeviceEvents(u, "failed"); n != 1 {
		t.Fatalf("%d session.new_device notified=failed events, want 1", n)
	}
	pc.expect(pc.get(pathAccount), http.StatusOK, "パスキー設定状況確認")
}

// The S8 link in the mail is the configured issuer's: without one the
// mail cannot be turned on.
func TestNewSignInMailNeedsTheIssuer(t *testing.T) {
	cfg := testConfig()
	cfg.NewDeviceMail = true
	store := storagetest.New(t, "sqlite")
	logger := slog.New(slog.DiscardHandler)
	if _, err := New(cfg, Deps{Store: store, OP: testOP{store}, Mailer: &mail.SMTPSender{}, Logger: logger}); err == nil {
		t.Fatal("New accepted NewDeviceMail without an Issuer")
	}
}
