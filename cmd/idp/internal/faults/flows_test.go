package faults

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
)

// The relying party the flows play: the loan website's server.
const (
	bankClientID = "bank"
	bankSecret   = "bank-secret-0123456789"
	bankRedirect = "https://bank.example/cb"
	otpSubject   = "【コムストックローン】ワンタイムパスワードのお知らせ"
)

// attempt is one request of a flow step and what came back.
type attempt struct {
	flow       int    // serial of the flow
	kind       string // "enrol" or "password"
	step       string
	try        int // 1 for the first attempt of the step, 0 for a probe
	start, end time.Time
	status     int    // 0 when the request got no answer at all
	replica    int    // index of the replica that answered or failed, -1 unknown
	proxyError string // the proxy could not get an answer from the replica
	err        string // transport error on the client side
	rpError    string // the error a redirect to the bank carried
	afterLost  bool   // an earlier attempt of this step got no answer
	body       string // start of the body of an answer that was not a success
	ok         bool
}

func (a attempt) String() string {
	who := "replica " + strconv.Itoa(a.replica)
	if a.replica < 0 {
		who = "no replica"
	}
	s := fmt.Sprintf("%s flow %d step %q try %d at %s+%s: %s answered %d", a.kind, a.flow, a.step, a.try,
		a.start.Format("15:04:05.000"), a.end.Sub(a.start).Round(time.Millisecond), who, a.status)
	if a.proxyError != "" {
		s += " (proxy: " + a.proxyError + ")"
	}
	if a.err != "" {
		s += " (client: " + a.err + ")"
	}
	if a.body != "" {
		s += ": " + a.body
	}
	return s
}

// summary is the answer in a few words, for the report.
func (a attempt) summary() string {
	switch {
	case a.ok:
		return "success"
	case a.status == 0:
		return "no answer: " + a.err
	case a.rpError != "":
		return fmt.Sprintf("%d to the bank with error=%s", a.status, a.rpError)
	}
	s := strconv.Itoa(a.status)
	if a.body != "" {
		s += " " + truncate(a.body, 160)
	}
	return s
}

// answer is one HTTP answer as a step sees it.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) location() string { return a.header.Get("Location") }

// recorder keeps every attempt of every flow.
type recorder struct {
	mu       sync.Mutex
	attempts []attempt
	flows    int
}

func (r *recorder) add(a attempt) {
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
}

func (r *recorder) newFlow() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flows++
	return r.flows
}

func (r *recorder) all() []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]attempt(nil), r.attempts...)
}

// client is what a worker talks through: a browser (its own cookie jar
// per flow) and the bank's server, each from its own loopback address so
// that the proxy's per-client rotation and the IdP's per-address limits
// see different clients.
type client struct {
	issuer    string
	browserRT http.RoundTripper
	serverRT  http.RoundTripper
	rec       *recorder
	sink      *mailsink.Sink
	// stepBudget is how long a step is retried while it answers 5xx.
	stepBudget time.Duration
}

// transportFrom dials the proxy from the loopback address src.
func transportFrom(src, proxyAddr string) *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp4", proxyAddr)
		},
		MaxIdleConnsPerHost: 4,
	}
}

// flow is one run of F1 or F4 by one browser: a list of steps that can be
// run to the end, or up to a step and left there (parked) until a fault.
type flow struct {
	c       *client
	id      int
	kind    string
	browser *http.Client
	server  *http.Client
	pk      pkce
	steps   []step
	next    int
	// lost is set when an attempt of the current step got no answer
	// from the replica: it may have done the work, so a refusal of the
	// retry can be right.
	lost bool

	// what the steps learn on the way
	loginURL, code, refreshToken, otp string
	mailSeen                          int
	options                           *virtualwebauthn.AttestationOptions
	credID                            []byte
}

// step is one request of a flow. req builds it for the given attempt (it
// may run other steps first); after takes what the next steps need from a
// successful answer.
type step struct {
	name  string
	req   func(try int) (request, bool)
	want  func(answer) bool
	after func(answer) error
}

func (c *client) newFlow(kind string) *flow {
	jar, _ := cookiejar.New(nil)
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &flow{
		c: c, id: c.rec.newFlow(), kind: kind, pk: newPKCE(),
		browser: &http.Client{Jar: jar, Transport: c.browserRT, Timeout: 20 * time.Second, CheckRedirect: noFollow},
		server:  &http.Client{Transport: c.serverRT, Timeout: 20 * time.Second, CheckRedirect: noFollow},
	}
}

type request struct {
	hc          *http.Client
	method, url string
	contentType string
	body        string
	basicAuth   bool
}

// once sends a request and records the attempt.
func (f *flow) once(name string, try int, req request, want func(answer) bool) (answer, attempt) {
	u := req.url
	if strings.HasPrefix(u, "/") {
		u = f.c.issuer + u
	}
	a := attempt{flow: f.id, kind: f.kind, step: name, try: try, replica: -1, afterLost: f.lost, start: time.Now()}
	var ans answer
	hr, err := http.NewRequest(req.method, u, strings.NewReader(req.body))
	if err == nil {
		if req.contentType != "" {
			hr.Header.Set("Content-Type", req.contentType)
		}
		if req.basicAuth {
			hr.SetBasicAuth(bankClientID, bankSecret)
		}
		var res *http.Response
		res, err = req.hc.Do(hr)
		if err == nil {
			b, readErr := io.ReadAll(res.Body)
			res.Body.Close()
			err = readErr
			ans = answer{status: res.StatusCode, header: res.Header, body: string(b)}
			a.status = res.StatusCode
			a.proxyError = res.Header.Get(proxyErrorHeader)
			if v, convErr := strconv.Atoi(res.Header.Get(replicaHeader)); convErr == nil {
				a.replica = v
			}
			if loc, perr := url.Parse(ans.location()); perr == nil && strings.HasPrefix(ans.location(), bankRedirect+"?") {
				a.rpError = loc.Query().Get("error")
			}
		}
	}
	a.end = time.Now()
	if err != nil {
		a.err = err.Error()
		ans = answer{}
	}
	a.ok = err == nil && want(ans)
	if !a.ok {
		a.body = snippet(ans)
	}
	f.c.rec.add(a)
	return ans, a
}

// retryable: no answer, or a server error (the database or a replica is
// away). Anything else is the server's considered answer.
func retryable(a attempt) bool { return a.status == 0 || a.status >= 500 }

// runStep sends the step's request until the answer is what it wants,
// retrying server errors for stepBudget, as a customer pressing the
// button again would. A step run as part of another's retry keeps the
// other's lost answer in mind.
func (f *flow) runStep(s step) bool {
	deadline := time.Now().Add(f.c.stepBudget)
	for try := 1; ; try++ {
		req, ok := s.req(try)
		if !ok {
			return false
		}
		ans, a := f.once(s.name, try, req, s.want)
		if a.ok {
			return f.apply(s, ans)
		}
		if !retryable(a) || time.Now().After(deadline) {
			return false
		}
		if a.status == 0 || a.proxyError != "" {
			f.lost = true
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *flow) apply(s step, ans answer) bool {
	if s.after == nil {
		return true
	}
	if err := s.after(ans); err != nil {
		now := time.Now()
		f.c.rec.add(attempt{flow: f.id, kind: f.kind, step: s.name + " (after)", try: 1, replica: -1, start: now, end: now, err: err.Error()})
		return false
	}
	return true
}

// runUntil runs the steps up to (not including) the one named stop, or to
// the end when stop is "".
func (f *flow) runUntil(stop string) bool {
	for f.next < len(f.steps) {
		s := f.steps[f.next]
		if s.name == stop {
			return true
		}
		f.lost = false
		if !f.runStep(s) {
			return false
		}
		f.next++
	}
	return stop == ""
}

// probe sends the parked step's request once (try 0) and moves on past
// it only if it succeeded.
func (f *flow) probe() attempt {
	s := f.steps[f.next]
	req, ok := s.req(1)
	if !ok {
		return attempt{step: s.name, err: "request not built"}
	}
	ans, a := f.once(s.name, 0, req, s.want)
	if a.ok && f.apply(s, ans) {
		f.next++
	}
	return a
}

func (f *flow) current() string {
	if f.next < len(f.steps) {
		return f.steps[f.next].name
	}
	return ""
}

func (f *flow) get(hc *http.Client, u func() string) func(int) (request, bool) {
	return func(int) (request, bool) { return request{hc: hc, method: http.MethodGet, url: u()}, true }
}

func (f *flow) postForm(u string, form func() url.Values) func(int) (request, bool) {
	return func(int) (request, bool) {
		return request{hc: f.browser, method: http.MethodPost, url: u, contentType: "application/x-www-form-urlencoded", body: form().Encode()}, true
	}
}

func (f *flow) postJSON(u string, body func() string) func(int) (request, bool) {
	return func(int) (request, bool) {
		return request{hc: f.browser, method: http.MethodPost, url: u, contentType: "application/json", body: body()}, true
	}
}

func (f *flow) tokenRequest(form func() url.Values) func(int) (request, bool) {
	return func(int) (request, bool) {
		return request{hc: f.server, method: http.MethodPost, url: "/oauth/token",
			contentType: "application/x-www-form-urlencoded", body: form().Encode(), basicAuth: true}, true
	}
}

func fixed(s string) func() string { return func() string { return s } }

// redirectTo accepts a redirect to prefix; an IdP path may come back
// absolute (on the issuer) or relative.
func (f *flow) redirectTo(prefix string) func(answer) bool {
	return func(a answer) bool {
		loc := a.location()
		if strings.HasPrefix(prefix, "/") {
			loc = strings.TrimPrefix(loc, f.c.issuer)
		}
		return (a.status == http.StatusFound || a.status == http.StatusSeeOther) && strings.HasPrefix(loc, prefix)
	}
}

func pageWith(text string) func(answer) bool {
	return func(a answer) bool { return a.status == http.StatusOK && strings.Contains(a.body, text) }
}

func tokensIn(body string) (access, refresh, id string) {
	var ts struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	_ = json.Unmarshal([]byte(body), &ts)
	return ts.AccessToken, ts.RefreshToken, ts.IDToken
}

func tokens(a answer) bool {
	access, refresh, id := tokensIn(a.body)
	return a.status == http.StatusOK && access != "" && refresh != "" && id != ""
}

// startSteps: authorize (PKCE) → S1, in the browser.
func (f *flow) startSteps() []step {
	q := url.Values{"client_id": {bankClientID}, "redirect_uri": {bankRedirect}, "response_type": {"code"},
		"scope": {"openid offline_access"}, "state": {"st"}, "nonce": {"n"},
		"code_challenge": {f.pk.challenge}, "code_challenge_method": {"S256"}}
	return []step{
		{name: "authorize", req: f.get(f.browser, fixed("/authorize?"+q.Encode())), want: f.redirectTo("/login?authRequestID="),
			after: func(a answer) error { f.loginURL = strings.TrimPrefix(a.location(), f.c.issuer); return nil }},
		{name: "S1", req: f.get(f.browser, func() string { return f.loginURL }), want: pageWith("パスキーでログイン")},
	}
}

// codeFor reads the code from the authorization response to the bank that
// completes a login: the login's last answer sends the browser there.
func codeFor(location string) (string, bool) {
	u, err := url.Parse(location)
	if err != nil || !strings.HasPrefix(location, bankRedirect+"?") {
		return "", false
	}
	code := u.Query().Get("code")
	return code, code != ""
}

// finishSteps: the bank exchanges the code and refreshes once.
func (f *flow) finishSteps() []step {
	return []step{
		{name: "token", req: f.tokenRequest(func() url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {f.code}, "redirect_uri": {bankRedirect}, "code_verifier": {f.pk.verifier}}
		}), want: tokens, after: func(a answer) error { _, f.refreshToken, _ = tokensIn(a.body); return nil }},
		{name: "refresh", req: f.tokenRequest(func() url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refreshToken}}
		}), want: tokens},
	}
}

// passwordLogin plans F4: S1 「ログイン >」 with ID and password.
func (f *flow) passwordLogin(u *customer) *flow {
	f.steps = append(f.startSteps(), step{name: "S1 password",
		req: f.postForm("/login", func() url.Values { return url.Values{"loginID": {u.loginID}, "password": {u.password}} }),
		want: func(a answer) bool {
			_, ok := codeFor(a.location())
			return a.status == http.StatusSeeOther && ok
		},
		after: func(a answer) error {
			f.code, _ = codeFor(a.location())
			return nil
		}})
	f.steps = append(f.steps, f.finishSteps()...)
	return f
}

var otpCode = regexp.MustCompile(`\b(\d{6})\b`)

// enrolment plans F1 for one customer: S2 login ID → S3 password → S4 the
// mailed OTP → S5 a passkey from a pure-Go authenticator → the bank.
// credID is the passkey the authenticator made.
func (f *flow) enrolment(u *customer) *flow {
	rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: "bank", Origin: f.c.issuer}
	dev := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(u.id)})
	cred := passkeytest.NewCredential()
	dev.AddCredential(cred)
	f.credID = cred.ID
	options := step{name: "S5 options", req: f.postJSON("/login/passkey/register/options", fixed("")),
		want: func(a answer) bool {
			_, err := virtualwebauthn.ParseAttestationOptions(a.body)
			return a.status == http.StatusOK && err == nil
		},
		after: func(a answer) error {
			var err error
			f.options, err = virtualwebauthn.ParseAttestationOptions(a.body)
			return err
		}}
	f.steps = append(f.startSteps(),
		step{name: "S2 login ID", req: f.postForm("/login/passkey", func() url.Values { return url.Values{"loginID": {u.loginID}} }),
			want: f.redirectTo("/login/password")},
		step{name: "S3 page", req: f.get(f.browser, fixed("/login/password")), want: pageWith(`name="password"`)},
		step{name: "S3 password",
			req: func(try int) (request, bool) {
				if try == 1 {
					f.mailSeen = len(f.c.sink.Messages())
				}
				return f.postForm("/login/password", func() url.Values { return url.Values{"password": {u.password}} })(try)
			},
			want: f.redirectTo("/login/otp"),
			after: func(answer) error {
				code, err := f.c.otpFor(u.email, f.mailSeen)
				f.otp = code
				if err != nil {
					return fmt.Errorf("S3 answered success: %w", err)
				}
				return nil
			}},
		step{name: "S4 OTP", req: f.postForm("/login/otp", func() url.Values { return url.Values{"code": {f.otp}} }),
			want: f.redirectTo("/login/passkey/create")},
		step{name: "S5 page", req: f.get(f.browser, fixed("/login/passkey/create")), want: pageWith("パスキーを作成")},
		options,
		step{name: "S5 finish",
			// The challenge is single use: a finish that failed starts
			// over with new options.
			req: func(try int) (request, bool) {
				if try > 1 && !f.runStep(options) {
					return request{}, false
				}
				return f.postJSON("/login/passkey/register/finish", func() string {
					return virtualwebauthn.CreateAttestationResponse(rp, dev, cred, *f.options)
				})(try)
			},
			want: func(a answer) bool {
				var fin struct{ Redirect string }
				if a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &fin) != nil {
					return false
				}
				_, ok := codeFor(fin.Redirect)
				return ok
			},
			after: func(a answer) error {
				var fin struct{ Redirect string }
				_ = json.Unmarshal([]byte(a.body), &fin)
				f.code, _ = codeFor(fin.Redirect)
				return nil
			}},
	)
	f.steps = append(f.steps, f.finishSteps()...)
	return f
}

// otpFor waits for the OTP mail to addr after the first seen messages.
func (c *client) otpFor(addr string, seen int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		m, err := c.sink.WaitForNew(ctx, addr, seen)
		if err != nil {
			return "", fmt.Errorf("no OTP mail: %w", err)
		}
		if m.Subject == otpSubject {
			if code := otpCode.FindStringSubmatch(m.Body); code != nil {
				return code[1], nil
			}
			return "", errors.New("no 6-digit code in the OTP mail")
		}
		seen = len(c.sink.Messages())
	}
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func snippet(a answer) string {
	s := strings.Join(strings.Fields(visibleText(a.body)), " ")
	if loc := a.location(); loc != "" {
		s = "Location " + loc + " " + s
	}
	return truncate(s, 300)
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

var tags = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]+>`)

// visibleText strips an HTML page down to its words, so a finding shows
// the message the customer saw.
func visibleText(body string) string { return tags.ReplaceAllString(body, " ") }
