package login

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

var tinyArgon = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// testOP is the login.OP contract's test double: it records completion in
// the store exactly as the provider does and names a callback URL.
type testOP struct{ store storage.Store }

func (o testOP) Complete(_ http.ResponseWriter, r *http.Request, id string, s *storage.Session) (string, error) {
	if _, err := o.store.CompleteAuthRequest(r.Context(), id, storage.Completion{
		UserID: s.UserID, AuthTime: s.AuthTime, AMR: s.AMR, ACR: s.ACR, SID: s.SID,
	}); err != nil {
		return "", err
	}
	return "/cb?id=" + url.QueryEscape(id), nil
}

func (o testOP) RedirectError(w http.ResponseWriter, r *http.Request, id string, err error) {
	var oe *oidc.Error
	code := "server_error"
	if errors.As(err, &oe) {
		code = string(oe.ErrorType)
	}
	http.Redirect(w, r, "/cb?error="+code+"&id="+url.QueryEscape(id), http.StatusFound)
}

func (o testOP) ClientName(string) (string, error) { return "デモサイト", nil }

// BrowserBound: the binding cookie is op's (tested there and end to end);
// these tests play the browser that started every request.
func (o testOP) BrowserBound(*http.Request, string) bool { return true }

// IDTokenHintSubject accepts "hint-for-<user ID>" as the token of that user.
func (o testOP) IDTokenHintSubject(_ context.Context, hint string) (string, error) {
	if sub, ok := strings.CutPrefix(hint, "hint-for-"); ok {
		return sub, nil
	}
	return "", errors.New("bad id_token_hint")
}

// AllowedReturnURL knows one client, at https://rp.example.
func (o testOP) AllowedReturnURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Scheme == "https" && p.Host == "rp.example"
}

// clock is the handler's time, movable by tests.
type clock struct {
	mu   sync.Mutex
	now  time.Time
	tick time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now
	c.now = c.now.Add(c.tick)
	return now
}

// Tick makes the clock move by d on every reading, as a real one does
// between two statements of one request.
func (c *clock) Tick(d time.Duration) {
	c.mu.Lock()
	c.tick = d
	c.mu.Unlock()
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	t      *testing.T
	store  storage.Store
	sink   *mailsink.Sink
	h      *Handler
	cfg    Config
	srv    *httptest.Server
	client *http.Client
	clock  *clock
	logs   *syncBuffer
}

func testConfig() Config {
	cfg := Config{Password: tinyArgon}
	cfg.Defaults()
	return cfg
}

// breakMail points the pages' mail at a relay that refuses every message
// (554 at its greeting). Closing the sink instead would free its port for
// another test's sink to take and accept the mail.
func (e *env) breakMail() {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("554 5.3.2 no mail service here\r\n"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	e.h.mailer = &mail.SMTPSender{Host: "127.0.0.1", Port: p, TLS: mail.TLSNone, From: e.cfg.OTP.From, Timeout: 5 * time.Second}
}

// newEnv serves the login pages over real HTTP on a fresh store of flavor,
// with OTP mail going to an in-process SMTP sink.
func newEnv(t *testing.T, flavor string, tweak func(*Config)) *env {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	store := storagetest.New(t, flavor)
	sink, err := mailsink.Start(logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	cfg := testConfig()
	if tweak != nil {
		tweak(&cfg)
	}
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	mailer := &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: cfg.OTP.From, Timeout: 5 * time.Second}
	h, err := New(cfg, Deps{Store: store, OP: testOP{store}, Mailer: mailer, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Now().UTC()}
	h.now = clk.Now
	r := mux.NewRouter()
	h.Register(r)
	r.Handle("/end_session", h.EndSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/logged-out", http.StatusFound)
	})))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("handler logs:\n%s", logs.String())
		}
	})
	return &env{t: t, store: store, sink: sink, h: h, cfg: cfg, srv: srv, client: client, clock: clk, logs: logs}
}

type userOpt func(*storage.User)

func temporary(u *storage.User) { u.PasswordTemporary = true }
func locked(u *storage.User)    { u.Locked = true }

func (e *env) createUser(loginID, pw string, opts ...userOpt) *storage.User {
	e.t.Helper()
	hash, err := password.Hash(tinyArgon, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	now := time.Now().UTC()
	u := &storage.User{
		ID: uuid.NewString(), LoginID: loginID, Email: loginID + "@example.com", DisplayName: "テスト 太郎",
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	for _, o := range opts {
		o(u)
	}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) addPasskey(u *storage.User) {
	e.t.Helper()
	c := &storage.Credential{
		ID: []byte("cred-" + u.ID), UserID: u.ID, PublicKey: []byte{1, 2, 3}, AttestationType: "none",
		AAGUID: make([]byte, 16), Transports: []string{"internal"}, UserPresent: true, UserVerified: true,
		Attachment: "platform", Name: "test", CreatedAt: time.Now().UTC(),
	}
	if err := e.store.CreateCredential(context.Background(), c, false); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) authRequest(mod func(*storage.AuthRequest)) string {
	e.t.Helper()
	now := time.Now().UTC()
	a := &storage.AuthRequest{
		ID: uuid.NewString(), ClientID: "demo", RedirectURI: "https://rp.example/cb", State: "st", Nonce: "n",
		Scopes: []string{"openid"}, ResponseType: "code", CodeChallenge: "abc", CodeChallengeMethod: "S256",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	if mod != nil {
		mod(a)
	}
	if err := e.store.CreateAuthRequest(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	return a.ID
}

type resp struct {
	status int
	header http.Header
	body   string
}

func (r resp) location() string { return r.header.Get("Location") }

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{res.StatusCode, res.Header, string(b)}
}

func (e *env) get(path string, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(req)
}

func (e *env) post(path string, form url.Values, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return e.do(req)
}

// expect fails unless r has the status and every wanted substring.
func (e *env) expect(r resp, status int, wants ...string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status = %d, want %d; Location=%q body:\n%s", r.status, status, r.location(), r.body)
	}
	for _, w := range wants {
		if !strings.Contains(r.body, w) {
			e.t.Fatalf("body lacks %q:\n%s", w, r.body)
		}
	}
}

func (e *env) expectRedirect(r resp, prefix string) {
	e.t.Helper()
	if r.status != http.StatusSeeOther && r.status != http.StatusFound {
		e.t.Fatalf("status = %d, want a redirect to %s; body:\n%s", r.status, prefix, r.body)
	}
	if !strings.HasPrefix(r.location(), prefix) {
		e.t.Fatalf("Location = %q, want prefix %q", r.location(), prefix)
	}
}

func (e *env) storedAuthRequest(id string) *storage.AuthRequest {
	e.t.Helper()
	a, err := e.store.AuthRequestByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) cookie(name string) string {
	u, _ := url.Parse(e.srv.URL)
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

var codeRE = regexp.MustCompile(`ワンタイムパスワード: (\d{6})`)

// otpFromMail waits for the n-th mail (0-based count seen before) to u.
func (e *env) otpFromMail(u *storage.User, seen int) (mailsink.Message, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := e.sink.WaitForNew(ctx, u.Email, seen)
	if err != nil {
		e.t.Fatal(err)
	}
	match := codeRE.FindStringSubmatch(m.Body)
	if match == nil {
		e.t.Fatalf("no code in mail body:\n%s", m.Body)
	}
	return m, match[1]
}

// startF1 runs S1 → S2 → S3 for u and returns the OTP mailed at S3.
func (e *env) startF1(u *storage.User, pw string) string {
	e.t.Helper()
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
	e.expectRedirect(e.post("/login/passkey", url.Values{"loginID": {u.LoginID}}), "/login/password")
	seen := len(e.sink.Messages())
	e.expectRedirect(e.post("/login/password", url.Values{"password": {pw}}), "/login/otp")
	_, code := e.otpFromMail(u, seen)
	return code
}

func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// logout ends the SSO session the way a customer confirming 「ログアウト」
// does (a same-origin POST); it also works when there is no session.
func (e *env) logout() {
	e.t.Helper()
	e.expectRedirect(e.post("/end_session", url.Values{"confirm_logout": {"1"}}, "Sec-Fetch-Site", "same-origin"), "/logged-out")
}

// submit is post as a browser sees a refused form (post/redirect/get,
// formerror.go): the 303 back to the step's page is followed and its GET,
// which shows the refusal with its status, is the answer. Any other
// answer is returned as it came.
func (e *env) submit(path string, form url.Values, hdr ...string) resp {
	e.t.Helper()
	r := e.post(path, form, hdr...)
	switch loc := r.location(); {
	case r.status == http.StatusSeeOther && (loc == pathLogin || loc == pathPassword || loc == pathOTP || loc == pathChangePassword):
		return e.get(loc)
	}
	return r
}
