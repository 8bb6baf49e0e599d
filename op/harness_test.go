package op_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

const (
	webClientID     = "web"
	webSecret       = "web-secret-0123456789"
	webRedirect     = "https://rp.example/cb"
	webPostLogout   = "https://rp.example/bye"
	spaClientID     = "spa"
	spaRedirect     = "http://localhost:3000/cb"
	testACR         = "urn:test:pwd"
	testLoginID     = "taro"
	testDisplayName = "山田 太郎"
	testEmail       = "taro@example.jp"
)

// env is one provider on a fresh database behind a real HTTP server.
type env struct {
	t      *testing.T
	store  storage.Store
	p      *op.Provider
	cfg    op.Config
	srv    *httptest.Server
	issuer string
	user   *storage.User
	client *http.Client // a browser that never follows redirects
	// lastSession is the SSO session testLogin signed in with last.
	lastSession atomic.Pointer[storage.Session]
}

func testConfig(issuer string) op.Config {
	hash, err := bcrypt.GenerateFromPassword([]byte(webSecret), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	var key [32]byte
	_, _ = rand.Read(key[:])
	return op.Config{
		Issuer:        issuer,
		CryptoKey:     key,
		AllowInsecure: true,
		Clients: []op.ClientConfig{
			{
				ID: webClientID, Name: "コムストックローン", SecretHash: string(hash),
				RedirectURIs: []string{webRedirect}, PostLogoutRedirectURIs: []string{webPostLogout},
			},
			{ID: spaClientID, Public: true, RedirectURIs: []string{spaRedirect}, Scopes: []string{"openid", "profile"}},
		},
	}
}

func newEnv(t *testing.T, flavor string, mutate func(*op.Config)) *env {
	t.Helper()
	return newEnvOn(t, storagetest.New(t, flavor), mutate)
}

func newEnvOn(t *testing.T, store storage.Store, mutate func(*op.Config)) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	cfg := testConfig(issuer)
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	p, err := op.New(cfg, store, logger)
	if err != nil {
		t.Fatalf("op.New: %v", err)
	}
	ctx := context.Background()
	if err := p.EnsureKeys(ctx); err != nil {
		t.Fatalf("EnsureKeys: %v", err)
	}
	e := &env{t: t, store: store, p: p, cfg: cfg, issuer: issuer}
	// A second provider on the same database shares the seeded user.
	if u, err := store.UserByLoginID(ctx, testLoginID); err == nil {
		e.user = u
	} else {
		e.user = &storage.User{ID: uuid.NewString(), LoginID: testLoginID, Email: testEmail, DisplayName: testDisplayName, PasswordHash: "unused"}
		if err := store.CreateUser(ctx, e.user); err != nil {
			t.Fatalf("create user: %v", err)
		}
	}

	router := mux.NewRouter()
	router.Handle("/login", p.IssuerInterceptor(http.HandlerFunc(e.testLogin)))
	router.PathPrefix("/").Handler(p.Handler())
	e.srv = httptest.NewUnstartedServer(router)
	e.srv.Listener.Close()
	e.srv.Listener = ln
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	// The jar carries the cookie that binds an authorization request to the
	// browser that started it.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.client = &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testLogin stands in for package login: it signs the seeded user in with
// a password, or answers prompt=none with login_required.
func (e *env) testLogin(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	ar, err := e.store.AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, "no such request", http.StatusBadRequest)
		return
	}
	for _, p := range ar.Prompt {
		if p == "none" {
			e.p.RedirectError(w, r, id, oidc.ErrLoginRequired())
			return
		}
	}
	u, err := e.store.UserByLoginID(r.Context(), testLoginID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// A real SSO session, as package login creates, so ID tokens carry its
	// sid and ending it owes back-channel logouts.
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	se := &storage.Session{ID: storage.HashSecret(rand.Text()), UserID: u.ID, AuthTime: at, AMR: []string{"pwd"}, ACR: testACR,
		CreatedAt: at, LastSeenAt: at, ExpiresAt: at.AddDate(10, 0, 0)} // tests move the clock by days
	if err := e.store.CreateSession(r.Context(), se); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	e.lastSession.Store(se)
	next, err := e.p.Complete(w, r, id, se)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// complete is Provider.Complete outside a login page's request.
func complete(ctx context.Context, p *op.Provider, id string, se *storage.Session) (string, error) {
	return p.Complete(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/login", nil), id, se)
}

// unsavedSession is a session that was never stored (no SID): enough for
// Complete where back-channel logout is not the subject.
func unsavedSession(userID string, authTime time.Time, amr ...string) *storage.Session {
	return &storage.Session{UserID: userID, AuthTime: authTime, AMR: amr, ACR: testACR}
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(v))
	return pkce{verifier: v, challenge: base64.RawURLEncoding.EncodeToString(sum[:])}
}

func (e *env) get(rawURL string) *http.Response {
	e.t.Helper()
	resp, err := e.client.Get(rawURL)
	if err != nil {
		e.t.Fatalf("GET %s: %v", rawURL, err)
	}
	return resp
}

func (e *env) authorizeURL(params url.Values) string {
	return e.issuer + "/authorize?" + params.Encode()
}

func authParams(clientID, redirect, scope string, pk pkce) url.Values {
	return url.Values{
		"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {scope}, "state": {"st-" + uuid.NewString()}, "nonce": {"n-" + uuid.NewString()},
		"code_challenge": {pk.challenge}, "code_challenge_method": {"S256"},
	}
}

// authorize follows the browser through /authorize, the test login and the
// callback, and returns the final redirect to the client.
func (e *env) authorize(params url.Values) *url.URL {
	e.t.Helper()
	next := e.authorizeURL(params)
	for range 5 {
		resp := e.get(next)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			e.t.Fatalf("GET %s: status %d, want 302", next, resp.StatusCode)
		}
		loc, err := resp.Location()
		if err != nil {
			e.t.Fatalf("no Location from %s: %v", next, err)
		}
		if !strings.HasPrefix(loc.String(), e.issuer) {
			return loc
		}
		next = loc.String()
	}
	e.t.Fatalf("too many redirects from %s", params.Encode())
	return nil
}

type tokenResponse struct {
	status       int
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
}

func (e *env) postForm(path string, form url.Values, user, pass string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	return resp
}

func (e *env) token(form url.Values) tokenResponse {
	e.t.Helper()
	user, pass := webClientID, webSecret
	if form.Get("client_id") == spaClientID {
		user, pass = "", ""
	}
	return decodeToken(e.t, e.postForm("/oauth/token", form, user, pass))
}

// decodeToken reads and closes a token endpoint response.
func decodeToken(t *testing.T, resp *http.Response) tokenResponse {
	t.Helper()
	defer resp.Body.Close()
	var tr tokenResponse
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	tr.status = resp.StatusCode
	return tr
}

// do sends req from the browser of e.
func (e *env) do(req *http.Request) *http.Response {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return resp
}

func (e *env) exchange(code, redirect string, pk pkce) tokenResponse {
	e.t.Helper()
	return e.token(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {pk.verifier},
	})
}

func (e *env) refresh(rt string) tokenResponse {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// login runs a whole code flow for the web client and returns its tokens.
func (e *env) login(scope string) (tokenResponse, url.Values) {
	e.t.Helper()
	pk := newPKCE()
	params := authParams(webClientID, webRedirect, scope, pk)
	loc := e.authorize(params)
	code := loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in %s", loc)
	}
	tr := e.exchange(code, webRedirect, pk)
	if tr.status != http.StatusOK || tr.AccessToken == "" || tr.IDToken == "" {
		e.t.Fatalf("code exchange: status %d error %q", tr.status, tr.Error)
	}
	return tr, params
}

func (e *env) verifyIDToken(raw string, nonce string) *oidc.IDTokenClaims {
	e.t.Helper()
	ks := rp.NewRemoteKeySet(http.DefaultClient, e.issuer+"/keys")
	opts := []rp.VerifierOption{}
	if nonce != "" {
		opts = append(opts, rp.WithNonce(func(context.Context) string { return nonce }))
	}
	v := rp.NewIDTokenVerifier(e.issuer, webClientID, ks, opts...)
	claims, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.Background(), raw, v)
	if err != nil {
		e.t.Fatalf("verify ID token: %v", err)
	}
	return claims
}

func (e *env) userinfo(accessToken string, post bool) (int, map[string]any) {
	e.t.Helper()
	var req *http.Request
	if post {
		req, _ = http.NewRequest(http.MethodPost, e.issuer+"/userinfo", strings.NewReader(url.Values{"access_token": {accessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+accessToken)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("userinfo: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (e *env) introspect(token string) map[string]any {
	e.t.Helper()
	resp := e.postForm("/oauth/introspect", url.Values{"token": {token}}, webClientID, webSecret)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspect: status %d", resp.StatusCode)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		e.t.Fatalf("introspect: %v", err)
	}
	return m
}

func (e *env) cryptoKey() [32]byte { return e.cfg.CryptoKey }
