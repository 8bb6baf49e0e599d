package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// The relying party these tests play, registered beside the demo RP.
const (
	bankClientID = "bank"
	bankSecret   = "bank-secret-0123456789"
	bankRedirect = "https://bank.example/cb"
	bankBye      = "https://bank.example/bye"
)

// stackWithCLI runs the whole IdP (real OP, login pages, passkeys) on a
// fresh database and a CLI on the same database.
func stackWithCLI(t *testing.T, flavor string) (*devstack.Stack, *cli) {
	t.Helper()
	return stackWithBank(t, flavor, "")
}

// stackWithBank is stackWithCLI with the bank's backchannel_logout_uri.
func stackWithBank(t *testing.T, flavor, backchannelURI string) (*devstack.Stack, *cli) {
	t.Helper()
	hash, err := op.HashClientSecret(bankSecret)
	if err != nil {
		t.Fatal(err)
	}
	dsn := storagetest.DSN(t, flavor)
	st, err := devstack.Start(context.Background(), devstack.Options{
		DataDir: t.TempDir(), Database: dsn, IdPAddr: "127.0.0.1:0", RPAddr: "127.0.0.1:0", FastHashes: true,
		ExtraClients: []config.Client{{ID: bankClientID, SecretHash: hash, RedirectURIs: []string{bankRedirect},
			PostLogoutRedirectURIs: []string{bankBye}, BackchannelLogoutURI: backchannelURI}},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(st.Close)
	return st, &cli{t: t, config: writeConfig(t, dsn), store: storagetest.Open(t, dsn)}
}

// customer is one browser of one customer, with the tokens the bank's
// server got from the sign-in.
type customer struct {
	t       *testing.T
	st      *devstack.Stack
	browser *http.Client
	user    *storage.User
	pw      string
	device  *virtualwebauthn.Authenticator
	cred    virtualwebauthn.Credential
	tokens  tokenSet
}

type tokenSet struct {
	status       int
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Error        string `json:"error"`
}

func newCustomer(t *testing.T, st *devstack.Stack, c *cli, loginID string) *customer {
	t.Helper()
	pw := "pass-" + loginID + "-2026"
	hash, err := password.Hash(password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, pw)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	u := &storage.User{ID: rand.Text(), LoginID: loginID, Email: loginID + "@example.com", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := c.store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return &customer{t: t, st: st, browser: newBrowser(t), user: u, pw: pw}
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// page is one answer to the browser.
type page struct {
	status int
	header http.Header
	body   string
}

func (cu *customer) do(req *http.Request) page {
	cu.t.Helper()
	res, err := cu.browser.Do(req)
	if err != nil {
		cu.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		cu.t.Fatal(err)
	}
	return page{res.StatusCode, res.Header, string(b)}
}

func (cu *customer) get(u string) page {
	cu.t.Helper()
	req, err := http.NewRequest(http.MethodGet, cu.abs(u), nil)
	if err != nil {
		cu.t.Fatal(err)
	}
	return cu.do(req)
}

func (cu *customer) post(u, contentType, body string) page {
	cu.t.Helper()
	req, err := http.NewRequest(http.MethodPost, cu.abs(u), strings.NewReader(body))
	if err != nil {
		cu.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return cu.do(req)
}

func (cu *customer) postForm(u string, form url.Values) page {
	cu.t.Helper()
	return cu.post(u, "application/x-www-form-urlencoded", form.Encode())
}

func (cu *customer) abs(u string) string {
	if strings.HasPrefix(u, "/") {
		return cu.st.IdPURL + u
	}
	return u
}

// follow follows the IdP's redirects from u until one leaves it (the
// answer to the bank) or a page is shown; it returns the last response.
func (cu *customer) follow(u string) (int, string, string) {
	cu.t.Helper()
	for range 10 {
		if strings.HasPrefix(u, bankRedirect) {
			return http.StatusFound, u, ""
		}
		p := cu.get(u)
		if p.status < 300 || p.status >= 400 {
			return p.status, u, p.body
		}
		u = p.header.Get("Location")
	}
	cu.t.Fatalf("too many redirects from %s", u)
	return 0, "", ""
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func authorizeURL(st *devstack.Stack, pk pkce, prompt string) string {
	q := url.Values{"client_id": {bankClientID}, "redirect_uri": {bankRedirect}, "response_type": {"code"},
		"scope": {"openid offline_access"}, "state": {"st"}, "nonce": {"n"},
		"code_challenge": {pk.challenge}, "code_challenge_method": {"S256"}}
	if prompt != "" {
		q.Set("prompt", prompt)
	}
	return st.IdPURL + "/authorize?" + q.Encode()
}

var otpCode = regexp.MustCompile(`\b(\d{6})\b`)

// enrol runs F1 over HTTP: S1 → 「パスキー初回登録」 → password → the
// mailed OTP → S5 creates a passkey on a virtual authenticator. The
// browser then holds a password + OTP session, and the bank exchanges the
// code for tokens.
func (cu *customer) enrol() {
	cu.t.Helper()
	pk := newPKCE()
	status, _, _ := cu.follow(authorizeURL(cu.st, pk, ""))
	if status != http.StatusOK {
		cu.t.Fatalf("authorize: status %d, want S1", status)
	}
	cu.expectRedirect("/login/password", cu.postForm("/login/passkey", url.Values{"loginID": {cu.user.LoginID}}))
	seen := len(cu.st.Sink.Messages())
	cu.expectRedirect("/login/otp", cu.postForm("/login/password", url.Values{"password": {cu.pw}}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := cu.st.Sink.WaitForNew(ctx, cu.user.Email, seen)
	if err != nil {
		cu.t.Fatal(err)
	}
	code := otpCode.FindStringSubmatch(m.Body)
	if code == nil {
		cu.t.Fatalf("no OTP in %s", m.Body)
	}
	cu.expectRedirect("/login/passkey/create", cu.postForm("/login/otp", url.Values{"code": {code[1]}}))

	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "bank", Origin: cu.st.IdPURL}
	dev := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(cu.user.ID)})
	cu.device, cu.cred = &dev, passkeytest.NewCredential()
	cu.device.AddCredential(cu.cred)
	opts := cu.post("/login/passkey/register/options", "application/json", "")
	if opts.status != http.StatusOK {
		cu.t.Fatalf("register options: %d %s", opts.status, opts.body)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(opts.body)
	if err != nil {
		cu.t.Fatal(err)
	}
	done := cu.post("/login/passkey/register/finish", "application/json",
		virtualwebauthn.CreateAttestationResponse(rp, *cu.device, cu.cred, *ao))
	var fin struct{ Redirect string }
	if done.status != http.StatusOK || json.Unmarshal([]byte(done.body), &fin) != nil || fin.Redirect == "" {
		cu.t.Fatalf("register finish: %d %s", done.status, done.body)
	}
	cu.tokens = cu.exchange(fin.Redirect, pk)
}

func (cu *customer) expectRedirect(prefix string, p page) {
	cu.t.Helper()
	if p.status != http.StatusSeeOther && p.status != http.StatusFound || !strings.HasPrefix(p.header.Get("Location"), prefix) {
		cu.t.Fatalf("status %d Location %q, want a redirect to %s; body:\n%s", p.status, p.header.Get("Location"), prefix, p.body)
	}
}

// exchange follows next to the bank's callback and redeems the code.
func (cu *customer) exchange(next string, pk pkce) tokenSet {
	cu.t.Helper()
	_, final, body := cu.follow(next)
	u, err := url.Parse(final)
	if err != nil || u.Query().Get("code") == "" {
		cu.t.Fatalf("no code at %s (%s)", final, body)
	}
	ts := cu.token(url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")},
		"redirect_uri": {bankRedirect}, "code_verifier": {pk.verifier}})
	if ts.status != http.StatusOK || ts.RefreshToken == "" || ts.AccessToken == "" {
		cu.t.Fatalf("code exchange: %+v", ts)
	}
	return ts
}

// backChannel is the bank's server posting a form to the IdP with its
// client credentials; the caller closes the body.
func (cu *customer) backChannel(path string, form url.Values) *http.Response {
	cu.t.Helper()
	req, err := http.NewRequest(http.MethodPost, cu.st.IdPURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		cu.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(bankClientID, bankSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cu.t.Fatal(err)
	}
	return res
}

// token is the bank's server calling the token endpoint.
func (cu *customer) token(form url.Values) tokenSet {
	cu.t.Helper()
	res := cu.backChannel("/oauth/token", form)
	defer res.Body.Close()
	var ts tokenSet
	if err := json.NewDecoder(res.Body).Decode(&ts); err != nil {
		cu.t.Fatalf("token response: %v", err)
	}
	ts.status = res.StatusCode
	return ts
}

func (cu *customer) refresh() tokenSet {
	cu.t.Helper()
	return cu.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cu.tokens.RefreshToken}})
}

// userinfo is the bank's server calling /userinfo with the access token.
func (cu *customer) userinfo() int {
	cu.t.Helper()
	req, err := http.NewRequest(http.MethodGet, cu.st.IdPURL+"/userinfo", nil)
	if err != nil {
		cu.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+cu.tokens.AccessToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cu.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// introspect reports the access token's "active".
func (cu *customer) introspect() bool {
	cu.t.Helper()
	res := cu.backChannel("/oauth/introspect", url.Values{"token": {cu.tokens.AccessToken}})
	defer res.Body.Close()
	var v struct{ Active bool }
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		cu.t.Fatal(err)
	}
	return v.Active
}

// ssoSignsIn: prompt=none gets a code from the browser's session.
func (cu *customer) ssoSignsIn() bool {
	cu.t.Helper()
	_, final, _ := cu.follow(authorizeURL(cu.st, newPKCE(), "none"))
	u, err := url.Parse(final)
	if err != nil {
		cu.t.Fatal(err)
	}
	switch {
	case u.Query().Get("code") != "":
		return true
	case u.Query().Get("error") == "login_required":
		return false
	}
	cu.t.Fatalf("prompt=none ended at %s", final)
	return false
}

// expectWorking checks the session and both tokens work (before the
// staff action), so a later refusal means something.
func (cu *customer) expectWorking() {
	cu.t.Helper()
	if !cu.ssoSignsIn() {
		cu.t.Fatal("the SSO session does not sign in")
	}
	if s := cu.userinfo(); s != http.StatusOK {
		cu.t.Fatalf("userinfo with a fresh access token: %d", s)
	}
	if !cu.introspect() {
		cu.t.Fatal("a fresh access token is inactive")
	}
	next := cu.refresh()
	if next.status != http.StatusOK || next.RefreshToken == "" {
		cu.t.Fatalf("refresh before the staff action: %+v", next)
	}
	cu.tokens = next
}

func (cu *customer) expectSignedOut(what string) {
	cu.t.Helper()
	if cu.ssoSignsIn() {
		cu.t.Errorf("after %s: the old SSO cookie still signs in", what)
	}
	if s := cu.userinfo(); s == http.StatusOK {
		cu.t.Errorf("after %s: userinfo accepts the access token", what)
	}
	if cu.introspect() {
		cu.t.Errorf("after %s: the access token is active at introspection", what)
	}
	if r := cu.refresh(); r.status == http.StatusOK || r.Error != "invalid_grant" {
		cu.t.Errorf("after %s: refresh = %d %q, want invalid_grant", what, r.status, r.Error)
	}
}

// A lost device, a lock or a new temporary password: the support centre's
// command ends every session and token of the customer, checked through
// the real OP: the old SSO cookie, the bank's refresh token and its access
// token all stop working. Another customer is not touched.
func TestStaffActionsSignTheCustomerOutEverywhere(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		bystander := newCustomer(t, st, c, "bystander")
		bystander.enrol()
		for _, tc := range []struct {
			args []string
			out  string
			typ  string
		}{
			{[]string{"users", "delete-passkeys"}, "deleted 1 passkey(s)", "passkey.deleted_all"},
			{[]string{"users", "delete-passkeys", "--id", ""}, "deleted passkey", "passkey.deleted"},
			{[]string{"users", "lock"}, "locked", "user.locked"},
			{[]string{"users", "reset-password"}, "issued a temporary password", "password.temporary_issued"},
			{[]string{"users", "delete", "--yes"}, "deleted", "user.deleted"},
		} {
			loginID := strings.ReplaceAll(strings.Join(tc.args[1:], ""), "-", "")
			cu := newCustomer(t, st, c, loginID)
			cu.enrol()
			cu.expectWorking()
			args := append(append([]string{}, tc.args...), loginID)
			if len(tc.args) > 2 && tc.args[2] == "--id" {
				args = []string{"users", "delete-passkeys", loginID, "--id", base64.RawURLEncoding.EncodeToString(cu.cred.ID)}
			}
			out := c.ok(args...)
			if !strings.Contains(out, tc.out) || !strings.Contains(out, "ended 1 session(s), revoked 1 refresh token(s) and 2 access token(s)") {
				t.Errorf("idp %v said:\n%s", args, out)
			}
			cu.expectSignedOut(strings.Join(tc.args, " "))
			var audited bool
			for _, e := range c.auditEvents() {
				if e.Type == tc.typ && e.UserID == cu.user.ID && e.Actor == "staff:tester" &&
					e.Detail["sessions_ended"] == "1" && e.Detail["refresh_tokens_revoked"] == "1" && e.Detail["access_tokens_revoked"] == "2" {
					audited = true
				}
			}
			if !audited {
				t.Errorf("idp %v: no %s audit event by staff:tester with what ended", args, tc.typ)
			}
		}
		bystander.expectWorking()
	})
}

// The bank keeps refreshing while the support centre deletes the lost
// phone's passkey: once the command has returned, no token of the chain
// works, whichever rotation won a race with the revocation.
func TestDeletePasskeysWhileTheRPRefreshes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		cu := newCustomer(t, st, c, "racer")
		cu.enrol()
		stop, rotating := make(chan struct{}), make(chan struct{})
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			tokens = []tokenSet{cu.tokens}
		)
		wg.Go(func() {
			defer close(rotating) // also when refused early
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				current := tokens[len(tokens)-1]
				mu.Unlock()
				next := cu.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {current.RefreshToken}})
				if next.status != http.StatusOK {
					return
				}
				mu.Lock()
				tokens = append(tokens, next)
				if len(tokens) == 4 {
					rotating <- struct{}{}
				}
				mu.Unlock()
			}
		})
		<-rotating // the revocation lands in the middle of the chain
		c.ok("users", "delete-passkeys", "racer")
		close(stop)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		t.Logf("%d rotations in all", len(tokens)-1)
		// The newest refresh token first: presenting an older one would
		// revoke the family as a reuse and hide a surviving successor.
		cu.tokens = tokens[len(tokens)-1]
		if r := cu.refresh(); r.status == http.StatusOK {
			t.Fatalf("the newest of %d refresh tokens still works after delete-passkeys", len(tokens))
		}
		for i, ts := range tokens {
			cu.tokens = ts
			if cu.introspect() {
				t.Fatalf("access token %d of %d still active after delete-passkeys", i, len(tokens))
			}
		}
		if cu.ssoSignsIn() {
			t.Fatal("the session survived delete-passkeys")
		}
	})
}
