package login

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// The harness in env_test.go is bound to *testing.T; benchEnv is its
// testing.B twin, kept to what the benchmarks need: the real handler with
// the real passkey service over real HTTP on a fresh store.
type benchEnv struct {
	b         *testing.B
	store     storage.Store
	srv       *httptest.Server
	transport *http.Transport
	argon     password.Params
}

func newBenchEnv(b *testing.B, flavor string, argon password.Params) *benchEnv {
	b.Helper()
	// Production logs at Info; formatting the lines is part of the cost.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store := storagetest.New(b, flavor)
	sink, err := mailsink.Start(logger)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	cfg := Config{Password: argon}
	cfg.Defaults()
	mailer := &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: cfg.OTP.From, Timeout: 5 * time.Second}
	svc, err := passkey.New(passkey.Config{RPID: testRP.ID, RPDisplayName: testRP.Name, Origins: []string{testRP.Origin}}, store, logger)
	if err != nil {
		b.Fatal(err)
	}
	h, err := New(cfg, Deps{Store: store, OP: testOP{store}, Mailer: mailer, Passkeys: svc, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	r := mux.NewRouter()
	h.Register(r)
	srv := httptest.NewServer(r)
	b.Cleanup(srv.Close)
	// One transport for every simulated browser: connections are kept alive
	// as a load balancer would keep them, so the numbers are the handler's
	// and the database's, not TCP handshakes.
	transport := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(transport.CloseIdleConnections)
	return &benchEnv{b: b, store: store, srv: srv, transport: transport, argon: argon}
}

// browser is a fresh cookie jar: every measured login starts without an SSO
// session, or the second one would complete silently.
func (e *benchEnv) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.b.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Transport:     e.transport,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *benchEnv) createUser(loginID, pw string) *storage.User {
	e.b.Helper()
	hash, err := password.Hash(e.argon, pw)
	if err != nil {
		e.b.Fatal(err)
	}
	now := time.Now().UTC()
	u := &storage.User{
		ID: uuid.NewString(), LoginID: loginID, Email: loginID + "@example.com", DisplayName: "テスト 太郎",
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.b.Fatal(err)
	}
	return u
}

// enrolDevice stores a passkey for u the way a finished registration does,
// so the benchmark measures login alone (registration is F1's cost).
func (e *benchEnv) enrolDevice(u *storage.User) *device {
	e.b.Helper()
	d := newDevice(u)
	c := &storage.Credential{
		ID: d.cred.ID, UserID: u.ID, PublicKey: d.cred.Key.AttestationData(), AttestationType: "none",
		AAGUID: d.auth.Aaguid[:], Transports: []string{"internal", "hybrid"}, UserPresent: true, UserVerified: true,
		Attachment: "platform", Name: "bench", CreatedAt: time.Now().UTC(),
	}
	if err := e.store.CreateCredential(context.Background(), c, false); err != nil {
		e.b.Fatal(err)
	}
	return d
}

// authRequest inserts what the OP's /authorize would, so each measured
// login includes that row.
func (e *benchEnv) authRequest() string {
	e.b.Helper()
	now := time.Now().UTC()
	a := &storage.AuthRequest{
		ID: uuid.NewString(), ClientID: "demo", RedirectURI: "https://rp.example/cb", State: "st", Nonce: "n",
		Scopes: []string{"openid"}, ResponseType: "code", CodeChallenge: "abc", CodeChallengeMethod: "S256",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	if err := e.store.CreateAuthRequest(context.Background(), a); err != nil {
		e.b.Fatal(err)
	}
	return a.ID
}

// call sends one request and fails the benchmark unless the status is want.
func (e *benchEnv) call(c *http.Client, method, path, contentType string, body io.Reader, want int) (*http.Response, []byte) {
	e.b.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.b.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := c.Do(req)
	if err != nil {
		e.b.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.b.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	if res.StatusCode != want {
		e.b.Fatalf("%s %s: status %d, want %d; Location=%q body:\n%s", method, path, res.StatusCode, want, res.Header.Get("Location"), b)
	}
	return res, b
}

// passwordLogin is F4: S1 shown for a fresh auth request, 「ログイン >」
// posted, and the redirect back to the OP's callback.
func (e *benchEnv) passwordLogin(loginID, pw string) {
	e.b.Helper()
	c := e.browser()
	ar := e.authRequest()
	e.call(c, http.MethodGet, "/login?authRequestID="+ar, "", nil, http.StatusOK)
	form := url.Values{"loginID": {loginID}, "password": {pw}}
	res, _ := e.call(c, http.MethodPost, "/login", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()), http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/cb?id="+url.QueryEscape(ar) {
		e.b.Fatalf("password login ended at %q, want the callback of %s", loc, ar)
	}
}

// passkeyLogin is F2, usernameless: S1, S2, the assertion options, the
// authenticator's answer and the finish that names the OP's callback.
func (e *benchEnv) passkeyLogin(d *device) {
	e.b.Helper()
	c := e.browser()
	ar := e.authRequest()
	e.call(c, http.MethodGet, "/login?authRequestID="+ar, "", nil, http.StatusOK)
	e.call(c, http.MethodGet, "/login/passkey", "", nil, http.StatusOK)
	_, opts := e.call(c, http.MethodPost, "/login/passkey/login/options", "", nil, http.StatusOK)
	ao, err := virtualwebauthn.ParseAssertionOptions(string(opts))
	if err != nil {
		e.b.Fatalf("assertion options %s: %v", opts, err)
	}
	answer := virtualwebauthn.CreateAssertionResponse(testRP, d.auth, d.cred, *ao)
	_, fin := e.call(c, http.MethodPost, "/login/passkey/login/finish", "application/json", strings.NewReader(answer), http.StatusOK)
	var out struct {
		Redirect string `json:"redirect"`
	}
	if err := json.Unmarshal(fin, &out); err != nil || out.Redirect != "/cb?id="+url.QueryEscape(ar) {
		e.b.Fatalf("passkey finish = %s (%v), want the callback of %s", fin, err, ar)
	}
}

// BenchmarkPasswordLogin measures F4 with the production argon2id costs and
// with tiny ones; the difference is the hash, the rest is HTTP, templates
// and SQL.
func BenchmarkPasswordLogin(b *testing.B) {
	for _, argon := range []struct {
		name   string
		params password.Params
	}{
		{"argon2id=default", password.DefaultParams},
		{"argon2id=tiny", tinyArgon},
	} {
		b.Run(argon.name, func(b *testing.B) {
			for _, flavor := range storagetest.Flavors() {
				b.Run(flavor, func(b *testing.B) {
					e := newBenchEnv(b, flavor, argon.params)
					e.createUser("taro", "s3cret-pass")
					b.ReportAllocs()
					for b.Loop() {
						e.passwordLogin("taro", "s3cret-pass")
					}
				})
			}
		})
	}
}

// BenchmarkPasskeyLogin measures F2 (usernameless) with a P-256 passkey.
func BenchmarkPasskeyLogin(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			e := newBenchEnv(b, flavor, tinyArgon)
			d := e.enrolDevice(e.createUser("mika", "s3cret-pass"))
			b.ReportAllocs()
			for b.Loop() {
				e.passkeyLogin(d)
			}
		})
	}
}
