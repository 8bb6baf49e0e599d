package op_test

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
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// benchOP is the harness of harness_test.go for a *testing.B: one provider
// on a fresh database behind a real HTTP server, with a stand-in login
// page that signs the seeded user in at once.
type benchOP struct {
	b       *testing.B
	p       *op.Provider
	issuer  string
	userID  string
	browser *http.Client // mints codes; keeps the binding cookie
	rp      *http.Client // the relying party's back channel
}

func newBenchOP(b *testing.B, flavor string, webSecretHash string) *benchOP {
	b.Helper()
	store := storagetest.New(b, flavor)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	cfg := testConfig(issuer)
	cfg.Clients[0].SecretHash = webSecretHash
	// Production logs at Info; formatting the lines is part of the cost.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	p, err := op.New(cfg, store, logger)
	if err != nil {
		b.Fatalf("op.New: %v", err)
	}
	ctx := context.Background()
	if err := p.EnsureKeys(ctx); err != nil {
		b.Fatalf("EnsureKeys: %v", err)
	}
	u := &storage.User{ID: uuid.NewString(), LoginID: testLoginID, Email: testEmail, DisplayName: testDisplayName, PasswordHash: "unused"}
	if err := store.CreateUser(ctx, u); err != nil {
		b.Fatalf("create user: %v", err)
	}
	e := &benchOP{b: b, p: p, issuer: issuer, userID: u.ID}

	router := mux.NewRouter()
	router.Handle("/login", p.IssuerInterceptor(http.HandlerFunc(e.login)))
	router.PathPrefix("/").Handler(p.Handler())
	srv := httptest.NewUnstartedServer(router)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	b.Cleanup(srv.Close)

	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	e.browser = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: noRedirect}
	e.rp = &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirect}
	b.Cleanup(e.browser.CloseIdleConnections)
	b.Cleanup(e.rp.CloseIdleConnections)
	return e
}

func (e *benchOP) login(w http.ResponseWriter, r *http.Request) {
	next, err := e.p.Complete(w, r, r.URL.Query().Get("authRequestID"),
		unsavedSession(e.userID, time.Now().Add(-time.Minute).Truncate(time.Second), "pwd"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// mintCode walks the browser through /authorize, the login stand-in and the
// callback, and returns the code the client receives.
func (e *benchOP) mintCode(params url.Values) string {
	e.b.Helper()
	next := e.issuer + "/authorize?" + params.Encode()
	for range 5 {
		resp, err := e.browser.Get(next)
		if err != nil {
			e.b.Fatalf("GET %s: %v", next, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if resp.StatusCode != http.StatusFound || err != nil {
			e.b.Fatalf("GET %s: status %d, Location error %v", next, resp.StatusCode, err)
		}
		if !strings.HasPrefix(loc.String(), e.issuer) {
			code := loc.Query().Get("code")
			if code == "" {
				e.b.Fatalf("no code in %s", loc)
			}
			return code
		}
		next = loc.String()
	}
	e.b.Fatal("too many redirects from /authorize")
	return ""
}

// exchange is the relying party's code → tokens request; it fails the
// benchmark unless an access and an ID token come back.
func (e *benchOP) exchange(form url.Values, user, pass string) {
	e.b.Helper()
	req, err := http.NewRequest(http.MethodPost, e.issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		e.b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := e.rp.Do(req)
	if err != nil {
		e.b.Fatalf("token: %v", err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		e.b.Fatalf("token: decoding: %v", err)
	}
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" || tr.IDToken == "" {
		e.b.Fatalf("token: status %d error %q", resp.StatusCode, tr.Error)
	}
}

type pendingCode struct {
	code string
	pk   pkce
}

// BenchmarkCodeExchange measures POST /oauth/token for an authorization
// code: the confidential web client with its secret hashed at the
// production bcrypt cost (op.HashClientSecret) and at the minimum cost, and
// the public SPA client (PKCE only). Codes are minted outside the timer, in
// batches well within the default code lifetime.
func BenchmarkCodeExchange(b *testing.B) {
	prodHash, err := op.HashClientSecret(webSecret)
	if err != nil {
		b.Fatal(err)
	}
	minHash, err := bcrypt.GenerateFromPassword([]byte(webSecret), bcrypt.MinCost)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name, clientID, redirect, scope, secretHash, user, pass string
	}{
		{"web,bcrypt=default", webClientID, webRedirect, "openid profile offline_access", prodHash, webClientID, webSecret},
		{"web,bcrypt=min", webClientID, webRedirect, "openid profile offline_access", string(minHash), webClientID, webSecret},
		{"spa,pkce", spaClientID, spaRedirect, "openid profile", string(minHash), "", ""},
	}
	const batch = 32
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for _, flavor := range storagetest.Flavors() {
				b.Run(flavor, func(b *testing.B) {
					e := newBenchOP(b, flavor, c.secretHash)
					var codes []pendingCode
					b.ReportAllocs()
					for b.Loop() {
						if len(codes) == 0 {
							b.StopTimer()
							for range batch {
								pk := newPKCE()
								codes = append(codes, pendingCode{e.mintCode(authParams(c.clientID, c.redirect, c.scope, pk)), pk})
							}
							b.StartTimer()
						}
						next := codes[len(codes)-1]
						codes = codes[:len(codes)-1]
						form := url.Values{
							"grant_type": {"authorization_code"}, "code": {next.code},
							"redirect_uri": {c.redirect}, "code_verifier": {next.pk.verifier},
						}
						if c.user == "" {
							form.Set("client_id", c.clientID)
						}
						e.exchange(form, c.user, c.pass)
					}
				})
			}
		})
	}
}
