package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// target is the IdP under load and the relying party the bench plays.
type target struct {
	issuer, clientID, clientSecret, redirectURI, scope string
	timeout                                            time.Duration
	spreadAddresses                                    bool

	origin       string // scheme://host of the issuer, for Origin headers and WebAuthn
	authorizeURL string
	tokenURL     string
	transport    *http.Transport
	mu           sync.Mutex
	idTokenAlg   string // as the first ID token's header says
}

func (t *target) register(fs *flag.FlagSet) {
	fs.StringVar(&t.issuer, "issuer", "http://localhost:8080", "the IdP's issuer URL")
	fs.StringVar(&t.clientID, "client-id", "bench", "a registered client the bench plays")
	fs.StringVar(&t.clientSecret, "client-secret", "", "the client's secret (default $IDP_BENCH_CLIENT_SECRET; empty for a public client)")
	fs.StringVar(&t.redirectURI, "redirect-uri", "https://bench.invalid/callback", "one of the client's redirect URIs (never fetched: the bench reads the code from the redirect)")
	fs.DurationVar(&t.timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.BoolVar(&t.spreadAddresses, "spread-addresses", false, "send X-Forwarded-For 10.x.y.z, one address per worker (needs trust_proxy_headers), so per-address limits do not cap the load")
	t.scope = "openid"
}

// discover reads the endpoints from the issuer's discovery document.
func (t *target) discover(ctx context.Context) error {
	if t.clientSecret == "" {
		t.clientSecret = os.Getenv("IDP_BENCH_CLIENT_SECRET")
	}
	t.issuer = strings.TrimSuffix(t.issuer, "/")
	u, err := url.Parse(t.issuer)
	if err != nil || u.Host == "" {
		return usagef("bench: --issuer %q is not a URL", t.issuer)
	}
	t.origin = u.Scheme + "://" + u.Host
	t.transport = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4096, // every worker keeps its connection: no ephemeral-port churn
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	c := &http.Client{Transport: t.transport, Timeout: t.timeout}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.issuer+"/.well-known/openid-configuration", nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("bench: discovery: %w", err)
	}
	defer res.Body.Close()
	var d struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: discovery answered %d", res.StatusCode)
	}
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		return fmt.Errorf("bench: discovery: %w", err)
	}
	if d.Issuer != t.issuer {
		return fmt.Errorf("bench: the IdP at %s says its issuer is %q", t.issuer, d.Issuer)
	}
	t.authorizeURL, t.tokenURL = d.AuthorizationEndpoint, d.TokenEndpoint
	return nil
}

// address is worker n's client address under --spread-addresses.
func (t *target) address(n int) string {
	if !t.spreadAddresses {
		return ""
	}
	return fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
}

func (t *target) signingAlg() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idTokenAlg == "" {
		return "RS256" // the server's default; no token seen yet
	}
	return t.idTokenAlg
}

// flowError is a failed step: its request ("POST /login"), a kind for the
// error table ("HTTP 429", "timeout", "network", "protocol") and a detail
// for the first example.
type flowError struct {
	step, kind, detail string
	// retryAfter is set on a 429: how long the server asked the client
	// to wait, as a customer told 「数秒おいて」 would.
	retryAfter time.Duration
}

// busy makes the flowError of a 429 carry the wait the server asked for.
func busy(e *flowError, status int, h http.Header) *flowError {
	if status != http.StatusTooManyRequests {
		return e
	}
	e.retryAfter = time.Second
	if n, err := strconv.Atoi(h.Get("Retry-After")); err == nil && n > 0 {
		e.retryAfter = time.Duration(n) * time.Second
	}
	return e
}

func (e *flowError) Error() string {
	s := e.step + ": " + e.kind
	if e.detail != "" {
		s += ": " + e.detail
	}
	return s
}

// errorKind is the key of err in the error table and its example text.
func errorKind(err error) (string, string) {
	var fe *flowError
	if errors.As(err, &fe) {
		k := fe.step + " " + fe.kind
		if strings.HasPrefix(err.Error(), "setup: ") {
			k = "setup " + k
		}
		return k, fe.detail
	}
	return "other", err.Error()
}

// browser is one cookie jar at one client address. It follows redirects
// itself, so it can stop at the relying party's redirect URI.
type browser struct {
	t       *target
	c       *http.Client
	address string
}

func (t *target) newBrowser(n int) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &browser{t: t, address: t.address(n), c: &http.Client{
		Transport: t.transport, Jar: jar, Timeout: t.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// answer is one response, read whole.
type answer struct {
	status   int
	header   http.Header
	location string
	body     []byte
	path     string
}

// do sends one request; a transport failure becomes a flowError.
func (b *browser) do(ctx context.Context, method, rawURL, contentType string, body []byte) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, &flowError{step: method + " " + rawURL, kind: "protocol", detail: err.Error()}
	}
	step := method + " " + req.URL.Path
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method == http.MethodPost {
		// What a browser sends, so the cross-origin protection sees a
		// same-origin form or fetch.
		req.Header.Set("Origin", b.t.origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if b.address != "" {
		req.Header.Set("X-Forwarded-For", b.address)
	}
	res, err := b.c.Do(req)
	if err != nil {
		kind := "network"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			kind = "timeout"
		}
		return nil, &flowError{step: step, kind: kind, detail: err.Error()}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &flowError{step: step, kind: "network", detail: "reading the answer: " + err.Error()}
	}
	a := &answer{status: res.StatusCode, header: res.Header, body: raw, path: req.URL.Path}
	if loc := res.Header.Get("Location"); loc != "" {
		u, err := req.URL.Parse(loc)
		if err != nil {
			return nil, &flowError{step: step, kind: "protocol", detail: "bad Location " + loc}
		}
		a.location = u.String()
	}
	return a, nil
}

// landing is where a navigation ended: a page of the IdP (path, body) or
// the relying party's redirect URI with a code.
type landing struct {
	path string
	body []byte
	code string
}

// navigate sends the request and follows the IdP's redirects until a page
// (200) or the redirect URI; anything else is a flowError of the step that
// answered it.
func (b *browser) navigate(ctx context.Context, method, rawURL, contentType string, body []byte, state string) (*landing, error) {
	for hops := 0; hops < 10; hops++ {
		a, err := b.do(ctx, method, rawURL, contentType, body)
		if err != nil {
			return nil, err
		}
		step := method + " " + a.path
		switch {
		case a.status == http.StatusOK:
			return &landing{path: a.path, body: a.body}, nil
		case a.status >= 300 && a.status < 400 && a.location != "":
			if strings.HasPrefix(a.location, b.t.redirectURI) {
				return b.t.authorizationResponse(step, a.location, state)
			}
			if !strings.HasPrefix(a.location, b.t.origin+"/") {
				return nil, &flowError{step: step, kind: "protocol", detail: "redirected away to " + a.location}
			}
			method, rawURL, contentType, body = http.MethodGet, a.location, "", nil
		default:
			return nil, busy(&flowError{step: step, kind: fmt.Sprintf("HTTP %d", a.status), detail: snippet(a.body)}, a.status, a.header)
		}
	}
	return nil, &flowError{step: method + " " + rawURL, kind: "protocol", detail: "too many redirects"}
}

// authorizationResponse reads the code from the redirect to the client,
// which the bench never fetches.
func (t *target) authorizationResponse(step, location, state string) (*landing, error) {
	u, err := url.Parse(location)
	if err != nil {
		return nil, &flowError{step: step, kind: "protocol", detail: "bad redirect " + location}
	}
	q := u.Query()
	if e := q.Get("error"); e != "" {
		return nil, &flowError{step: step, kind: "protocol", detail: "redirected with error=" + e}
	}
	if q.Get("state") != state {
		return nil, &flowError{step: step, kind: "protocol", detail: "state does not match"}
	}
	if q.Get("code") == "" {
		return nil, &flowError{step: step, kind: "protocol", detail: "redirected without a code"}
	}
	return &landing{code: q.Get("code")}, nil
}

// snippet is the start of an error answer, for the example column.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if i := strings.Index(s, `class="message error"`); i >= 0 {
		s = s[i:] // the login pages' error text
	}
	if r := []rune(s); len(r) > 100 {
		s = string(r[:100]) + "…"
	}
	return s
}

// authorization is one started authorization request.
type authorization struct {
	verifier, state string
	at              *landing // S1, or the code when an SSO session answered
}

// authorize starts the code flow with PKCE, as the loan website does.
func (b *browser) authorize(ctx context.Context) (*authorization, error) {
	v := make([]byte, 32)
	_, _ = rand.Read(v)
	verifier := base64.RawURLEncoding.EncodeToString(v)
	sum := sha256.Sum256([]byte(verifier))
	state := rand.Text()
	q := url.Values{
		"client_id": {b.t.clientID}, "redirect_uri": {b.t.redirectURI}, "response_type": {"code"},
		"scope": {b.t.scope}, "state": {state}, "nonce": {rand.Text()},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	at, err := b.navigate(ctx, http.MethodGet, b.t.authorizeURL+"?"+q.Encode(), "", nil, state)
	if err != nil {
		return nil, err
	}
	return &authorization{verifier: verifier, state: state, at: at}, nil
}

// tokens is the token endpoint's answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

// exchange redeems the code as the relying party's server does.
func (t *target) exchange(ctx context.Context, n int, code, verifier string) (*tokens, error) {
	return t.token(ctx, n, url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {t.redirectURI}, "code_verifier": {verifier},
	})
}

func (t *target) refresh(ctx context.Context, n int, refreshToken string) (*tokens, error) {
	if refreshToken == "" {
		return nil, &flowError{step: "POST token", kind: "protocol", detail: "no refresh token to use"}
	}
	tok, err := t.token(ctx, n, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err == nil && tok.RefreshToken == "" {
		return nil, &flowError{step: "POST token", kind: "protocol", detail: "refresh answered without a new refresh_token"}
	}
	return tok, err
}

func (t *target) token(ctx context.Context, n int, form url.Values) (*tokens, error) {
	const step = "POST token"
	if t.clientSecret == "" {
		form.Set("client_id", t.clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &flowError{step: step, kind: "protocol", detail: err.Error()}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if t.clientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(t.clientID), url.QueryEscape(t.clientSecret))
	}
	if a := t.address(n); a != "" {
		req.Header.Set("X-Forwarded-For", a)
	}
	res, err := (&http.Client{Transport: t.transport, Timeout: t.timeout}).Do(req)
	if err != nil {
		kind := "network"
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			kind = "timeout"
		}
		return nil, &flowError{step: step, kind: kind, detail: err.Error()}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, &flowError{step: step, kind: "network", detail: err.Error()}
	}
	if res.StatusCode != http.StatusOK {
		return nil, busy(&flowError{step: step, kind: fmt.Sprintf("HTTP %d", res.StatusCode), detail: snippet(raw)}, res.StatusCode, res.Header)
	}
	var tok tokens
	if err := json.Unmarshal(raw, &tok); err != nil || tok.AccessToken == "" || tok.IDToken == "" {
		return nil, &flowError{step: step, kind: "protocol", detail: "no access_token and id_token in " + snippet(raw)}
	}
	t.noteAlg(tok.IDToken)
	return &tok, nil
}

// noteAlg remembers the algorithm of the first ID token, so the crypto
// limit compared with is the one the IdP really pays.
func (t *target) noteAlg(idToken string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idTokenAlg != "" {
		return
	}
	head, _, _ := strings.Cut(idToken, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(raw, &h) == nil && (h.Alg == "RS256" || h.Alg == "ES256") {
		t.idTokenAlg = h.Alg
	}
}

// atPage checks that a navigation ended on the IdP page at path.
func atPage(l *landing, step, path string) error {
	if l.code != "" {
		return &flowError{step: step, kind: "protocol", detail: "signed in at once, want the page " + path}
	}
	if l.path != path {
		return &flowError{step: step, kind: "protocol", detail: "ended at " + l.path + ", want " + path}
	}
	return nil
}

// passwordFlow is F4: authorize → S1 「ログイン >」 → token.
func passwordFlow(ctx context.Context, b *browser, u benchUser) (*tokens, error) {
	az, err := b.authorize(ctx)
	if err != nil {
		return nil, err
	}
	if err := atPage(az.at, "GET /authorize", "/login"); err != nil {
		return nil, err
	}
	form := url.Values{"loginID": {u.LoginID}, "password": {u.Password}}
	l, err := b.navigate(ctx, http.MethodPost, b.t.origin+"/login", "application/x-www-form-urlencoded", []byte(form.Encode()), az.state)
	if err != nil {
		return nil, err
	}
	if l.code == "" && l.path == "/login/passkey/offer" {
		// 「今はしない」 at the passkey offer of a customer without one.
		if l, err = b.navigate(ctx, http.MethodPost, b.t.origin+"/login/passkey/offer/skip", "application/x-www-form-urlencoded", nil, az.state); err != nil {
			return nil, err
		}
	}
	if l.code == "" {
		return nil, &flowError{step: "POST /login", kind: "protocol", detail: "not signed in: ended at " + l.path + " " + snippet(l.body)}
	}
	return b.t.exchange(ctx, 0, l.code, az.verifier)
}

// ssoFlow rides the browser's SSO session: authorize → token.
func ssoFlow(ctx context.Context, b *browser) error {
	az, err := b.authorize(ctx)
	if err != nil {
		return err
	}
	if az.at.code == "" {
		return &flowError{step: "GET /authorize", kind: "protocol", detail: "no SSO: ended at " + az.at.path}
	}
	_, err = b.t.exchange(ctx, 0, az.at.code, az.verifier)
	return err
}

// passkeyFlow is F2 in a browser with no session: authorize → S1 → S2 →
// options → assertion → finish → token.
func passkeyFlow(ctx context.Context, b *browser, cred *benchCredential) error {
	az, err := b.authorize(ctx)
	if err != nil {
		return err
	}
	if err := atPage(az.at, "GET /authorize", "/login"); err != nil {
		return err
	}
	s2, err := b.navigate(ctx, http.MethodGet, b.t.origin+"/login/passkey", "", nil, az.state)
	if err != nil {
		return err
	}
	if err := atPage(s2, "GET /login/passkey", "/login/passkey"); err != nil {
		return err
	}
	opts, err := b.ceremony(ctx, "/login/passkey/login/options", []byte(`{}`))
	if err != nil {
		return err
	}
	assertion, err := cred.assert(opts, b.t.origin)
	if err != nil {
		return &flowError{step: "POST /login/passkey/login/options", kind: "protocol", detail: err.Error()}
	}
	done, err := b.ceremony(ctx, "/login/passkey/login/finish", assertion)
	if err != nil {
		return err
	}
	l, err := b.followCeremony(ctx, "/login/passkey/login/finish", done, az.state)
	if err != nil {
		return err
	}
	if l.code == "" {
		return &flowError{step: "POST /login/passkey/login/finish", kind: "protocol", detail: "not signed in: ended at " + l.path}
	}
	_, err = b.t.exchange(ctx, 0, l.code, az.verifier)
	return err
}

// ceremonyAnswer is what the passkey endpoints answer (see passkey.js).
type ceremonyAnswer struct {
	PublicKey json.RawMessage `json:"publicKey"`
	Redirect  string          `json:"redirect"`
	Error     string          `json:"error"`
	Code      string          `json:"code"`
}

// ceremony posts JSON to a passkey endpoint as passkey.js does.
func (b *browser) ceremony(ctx context.Context, path string, body []byte) (*ceremonyAnswer, error) {
	a, err := b.do(ctx, http.MethodPost, b.t.origin+path, "application/json", body)
	if err != nil {
		return nil, err
	}
	step := "POST " + path
	var ans ceremonyAnswer
	jerr := json.Unmarshal(a.body, &ans)
	if a.status != http.StatusOK {
		detail := snippet(a.body)
		if jerr == nil && ans.Code != "" {
			detail = ans.Code + ": " + ans.Error
		}
		return nil, busy(&flowError{step: step, kind: fmt.Sprintf("HTTP %d", a.status), detail: detail}, a.status, a.header)
	}
	if jerr != nil || ans.Error != "" {
		return nil, &flowError{step: step, kind: "protocol", detail: "answer " + snippet(a.body)}
	}
	return &ans, nil
}

// followCeremony goes where a finish answer sends the browser.
func (b *browser) followCeremony(ctx context.Context, path string, ans *ceremonyAnswer, state string) (*landing, error) {
	if ans.Redirect == "" {
		return nil, &flowError{step: "POST " + path, kind: "protocol", detail: "no redirect in the answer"}
	}
	if strings.HasPrefix(ans.Redirect, b.t.redirectURI) {
		return b.t.authorizationResponse("POST "+path, ans.Redirect, state)
	}
	u, err := url.Parse(b.t.origin + "/")
	if err != nil {
		return nil, err
	}
	next, err := u.Parse(ans.Redirect)
	if err != nil {
		return nil, &flowError{step: "POST " + path, kind: "protocol", detail: "bad redirect " + ans.Redirect}
	}
	return b.navigate(ctx, http.MethodGet, next.String(), "", nil, state)
}
