package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/storagetest"
)

// servedIdP is `idp serve` running in this process as production runs it
// (JSON log, the config file, its own metrics listener), with an SMTP sink
// as its relay.
type servedIdP struct {
	stack      *devstack.Stack // IdPURL and Sink, for the customer helpers
	metricsURL string
	log        *lockedBuffer
	stop       func()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServe runs `idp serve --log-level debug` on dsn and waits for
// /readyz.
func startServe(t *testing.T, dsn string) *servedIdP {
	t.Helper()
	sink, err := mailsink.Start(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	hash, err := op.HashClientSecret(bankSecret)
	if err != nil {
		t.Fatal(err)
	}
	addr, metricsAddr := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	smtpHost, smtpPort, _ := net.SplitHostPort(sink.Addr())
	issuer := "http://localhost:" + port
	config := filepath.Join(t.TempDir(), "idp.yaml")
	body := fmt.Sprintf(`
issuer: %s
listen: %s
metrics_listen: %s
database: %q
crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
smtp: {host: %s, port: %s, tls: none}
clients:
  - id: %s
    secret_hash: %q
    redirect_uris: [%s]
    post_logout_redirect_uris: [%s]
`, issuer, addr, metricsAddr, dsn, smtpHost, smtpPort, bankClientID, hash, bankRedirect, bankBye)
	if err := os.WriteFile(config, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	prev := slog.Default() // serve makes its logger the default, for zitadel
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	logs := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--config", config, "--log-level", "debug"}, nil, &out, logs)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
		slog.SetDefault(prev)
	}
	t.Cleanup(stop)

	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(issuer + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended before it was ready: %v\n%s", err, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 30s:\n%s", logs.String())
		}
	}
	return &servedIdP{stack: &devstack.Stack{IdPURL: issuer, Sink: sink}, metricsURL: "http://" + metricsAddr + "/metrics", log: logs, stop: stop}
}

// secretRecorder is a browser's transport that remembers every cookie value
// the IdP set and every authorization code it redirected with.
type secretRecorder struct {
	next    http.RoundTripper
	secrets map[string]string // value → what it is
}

func (r *secretRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	for _, c := range res.Cookies() {
		if len(c.Value) >= 16 { // not the language choice
			r.secrets[c.Value] = "cookie " + c.Name
		}
	}
	if loc, err := url.Parse(res.Header.Get("Location")); err == nil {
		if code := loc.Query().Get("code"); code != "" {
			r.secrets[code] = "authorization code"
		}
	}
	return res, nil
}

func (s *servedIdP) record(cu *customer, secrets map[string]string) {
	cu.browser.Transport = &secretRecorder{next: http.DefaultTransport, secrets: secrets}
	secrets[cu.pw] = "password of " + cu.user.LoginID
}

func addTokens(secrets map[string]string, ts tokenSet) {
	for v, what := range map[string]string{ts.AccessToken: "access token", ts.RefreshToken: "refresh token", ts.IDToken: "ID token"} {
		if v == "" {
			continue
		}
		secrets[v] = what
		// A JWT's signature alone is as good as the token to a forger's
		// replay checker, and a log line may have cut the token.
		if parts := strings.Split(v, "."); len(parts) == 3 {
			secrets[parts[2]] = what + " signature"
		}
	}
}

// passkeyLogin is F2 in a new browser: S1, the passkey button, the
// assertion from the customer's authenticator, the code exchange.
func (cu *customer) passkeyLogin() {
	cu.t.Helper()
	pk := newPKCE()
	if status, _, body := cu.follow(authorizeURL(cu.st, pk, "")); status != http.StatusOK {
		cu.t.Fatalf("authorize: status %d, want S1\n%s", status, body)
	}
	cu.tokens = cu.exchange(cu.passkeyAssertion(), pk)
}

// passkeyAssertion is S2's 「パスキー認証」 with the customer's authenticator
// in the current flow; it returns the finish answer's redirect.
func (cu *customer) passkeyAssertion() string {
	cu.t.Helper()
	opts := cu.post("/login/passkey/login/options", "application/json", "")
	if opts.status != http.StatusOK {
		cu.t.Fatalf("login options: %d %s", opts.status, opts.body)
	}
	ao, err := virtualwebauthn.ParseAssertionOptions(opts.body)
	if err != nil {
		cu.t.Fatal(err)
	}
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "bank", Origin: cu.st.IdPURL}
	done := cu.post("/login/passkey/login/finish", "application/json",
		virtualwebauthn.CreateAssertionResponse(rp, *cu.device, cu.cred, *ao))
	var fin struct{ Redirect string }
	if done.status != http.StatusOK || json.Unmarshal([]byte(done.body), &fin) != nil || fin.Redirect == "" {
		cu.t.Fatalf("login finish: %d %s", done.status, done.body)
	}
	return fin.Redirect
}

var otpInMail = regexp.MustCompile(`\b(\d{6})\b`)

// No password, one-time password, authorization code, token, client secret
// or cookie value ever reaches the log: every flow runs against `idp
// serve` at debug level (F1 enrolment with the mailed code and a passkey,
// F2 passkey login, F4 password login and a wrong password, code exchange
// with the client secret, refresh, userinfo, introspection, revocation,
// logout), then the whole log is searched for every secret the test saw.
// The log also shows the request ID on the lines of requests, and /metrics
// counted the events.
func TestNoSecretReachesTheLog(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		dsn := storagetest.DSN(t, flavor)
		idp := startServe(t, dsn)
		c := &cli{t: t, store: storagetest.Open(t, dsn)}
		secrets := map[string]string{
			bankSecret: "client secret",
			base64.StdEncoding.EncodeToString([]byte(bankClientID + ":" + bankSecret)): "client's Basic credentials",
		}

		enroller := newCustomer(t, idp.stack, c, "enroller")
		idp.record(enroller, secrets)
		enroller.enrol() // F1: password, mailed code, passkey, code exchange with the client secret
		addTokens(secrets, enroller.tokens)
		enroller.expectWorking() // SSO, userinfo, introspection, refresh
		addTokens(secrets, enroller.tokens)

		enroller.browser = newBrowser(t) // F2 on another device
		idp.record(enroller, secrets)
		enroller.passkeyLogin()
		addTokens(secrets, enroller.tokens)

		pw := newCustomer(t, idp.stack, c, "pwuser")
		idp.record(pw, secrets)
		pk := newPKCE()
		if status, _, _ := pw.follow(authorizeURL(idp.stack, pk, "")); status != http.StatusOK {
			t.Fatalf("authorize: %d", status)
		}
		wrong := "wrong-" + pw.pw
		secrets[wrong] = "mistyped password"
		// Refused: a 303 back to S1 (post/redirect/get), not on to the client.
		if p := pw.postForm("/login", url.Values{"loginID": {pw.user.LoginID}, "password": {wrong}}); p.status != http.StatusSeeOther || p.header.Get("Location") != "/login" {
			t.Fatalf("a wrong password answered %d Location %q, want the refusal's 303 to /login", p.status, p.header.Get("Location"))
		}
		pw.passwordLogin() // F4
		addTokens(secrets, pw.tokens)
		next := pw.refresh()
		if next.status != http.StatusOK {
			t.Fatalf("refresh: %+v", next)
		}
		addTokens(secrets, next)
		pw.tokens = next
		res := pw.backChannel("/revoke", url.Values{"token": {pw.tokens.RefreshToken}, "token_type_hint": {"refresh_token"}})
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", res.StatusCode)
		}
		p := pw.get("/end_session?" + url.Values{"id_token_hint": {pw.tokens.IDToken}, "post_logout_redirect_uri": {bankBye}}.Encode())
		if p.status != http.StatusFound || !strings.HasPrefix(p.header.Get("Location"), bankBye) {
			t.Fatalf("logout: %d %q", p.status, p.header.Get("Location"))
		}

		var otps []string
		for _, m := range idp.stack.Sink.Messages() {
			for _, code := range otpInMail.FindAllStringSubmatch(m.Body, -1) {
				otps = append(otps, code[1])
			}
		}
		if len(otps) == 0 {
			t.Fatal("no one-time password was mailed")
		}
		expectCounts(t, idp.metricsURL, map[string]int{
			`idp_logins_total{method="password",reason="",result="success"}`:            1,
			`idp_logins_total{method="password",reason="credentials",result="failure"}`: 1,
			`idp_logins_total{method="passkey",reason="",result="success"}`:             1,
			`idp_otp_sent_total`: len(otps),
			`idp_webauthn_ceremonies_total{ceremony="registration",result="success"}`: 1,
			`idp_webauthn_ceremonies_total{ceremony="login",result="success"}`:        1,
			`idp_tokens_issued_total{grant="authorization_code"}`:                     3,
			`idp_tokens_issued_total{grant="refresh_token"}`:                          2,
		})
		idp.stop()
		log := idp.log.String()

		// Enough of the log to mean something: audit events and request
		// IDs (the flows log nothing at debug level today; the level is
		// there so that a future debug line is searched too).
		for _, want := range []string{`"type":"otp.sent"`, `"type":"login.success"`, `"request_id":"`} {
			if !strings.Contains(log, want) {
				t.Fatalf("the log has no %s; the test searched nothing:\n%s", want, log)
			}
		}
		for value, what := range secrets {
			if strings.Contains(log, value) {
				t.Errorf("the log contains the %s %.6s…", what, value)
			}
		}
		for _, code := range otps {
			if regexp.MustCompile(`(^|\D)` + code + `(\D|$)`).MatchString(log) {
				t.Errorf("the log contains the one-time password %s", code)
			}
		}
		if t.Failed() {
			t.Logf("log:\n%s", log)
		}
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, `"msg":"audit"`) && strings.Contains(line, `"type":"login.`) && !strings.Contains(line, `"request_id":"`) {
				t.Errorf("a login's audit line has no request_id: %s", line)
			}
		}

	})
}

// expectCounts scrapes /metrics until the series have the counts wanted:
// the token counter moves once the answer is written, which the client
// may have read a moment before.
func expectCounts(t *testing.T, u string, want map[string]int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got := scrape(t, u)
		var wrong []string
		for series, n := range want {
			if got[series] != n {
				wrong = append(wrong, fmt.Sprintf("%s = %d, want %d", series, got[series], n))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("metrics after the flows:\n%s", strings.Join(wrong, "\n"))
			return
		}
	}
}

// scrape reads the integer samples of a Prometheus exposition.
func scrape(t *testing.T, u string) map[string]int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	samples := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		var n int
		if _, err := fmt.Sscan(value, &n); err == nil {
			samples[name] = n
		}
	}
	return samples
}
