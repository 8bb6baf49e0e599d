package op_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

const wrongSecret = "wrong-secret-0123456789"

// checkCounter counts the bcrypt comparisons of one provider and the most
// that ran at once.
type checkCounter struct {
	total, inFlight, maxInFlight atomic.Int64
	hold                         chan struct{} // nil: do not hold
	entered                      chan struct{}
}

func (c *checkCounter) hook() {
	c.total.Add(1)
	n := c.inFlight.Add(1)
	for {
		m := c.maxInFlight.Load()
		if n <= m || c.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	if c.hold != nil {
		<-c.hold
	}
	c.inFlight.Add(-1)
}

func countChecks(p *op.Provider) *checkCounter {
	c := &checkCounter{}
	op.SetSecretCheckHook(p, c.hook)
	return c
}

func throttle(perClient, perAddress, concurrent int) func(*op.Config) {
	return func(c *op.Config) {
		c.Throttle = op.Throttle{Window: 15 * time.Minute,
			MaxSecretFailuresPerClient: perClient, MaxSecretFailuresPerAddress: perAddress, MaxConcurrentSecretChecks: concurrent}
	}
}

type oauthAnswer struct {
	status     int
	err        string
	retryAfter string
}

func (e *env) introspectAs(user, pass string, header http.Header) oauthAnswer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth/introspect", strings.NewReader("token=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	req.SetBasicAuth(user, pass)
	resp := e.do(req)
	defer resp.Body.Close()
	var body struct{ Error string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return oauthAnswer{resp.StatusCode, body.Error, resp.Header.Get("Retry-After")}
}

func rateRows(t *testing.T, st *sqlstore.Store, key string) int {
	t.Helper()
	var n int
	if err := st.DB().Get(&n, st.DB().Rebind(`SELECT COUNT(*) FROM rate_events WHERE kind = 'client_auth_failure' AND key = ?`), key); err != nil {
		t.Fatal(err)
	}
	return n
}

// 40 concurrent wrong secrets (all different, as a guesser's are) for one
// client, spread over two replicas of one database, run exactly the
// per-client limit of bcrypt checks, never
// more at once than the slots allow; the rest get a fast 429. A replica that
// has verified the real secret keeps serving the client.
func TestClientSecretThrottlePerClient(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		const limit, slots = 5, 2
		dsn := storagetest.DSN(t, flavor)
		st := storagetest.Open(t, dsn)
		e1 := newEnvOn(t, st, throttle(limit, 1000, slots))
		e2 := newEnvOn(t, storagetest.Open(t, dsn), throttle(limit, 1000, slots))
		if a := e1.introspectAs(webClientID, webSecret, nil); a.status != http.StatusOK {
			t.Fatalf("right secret before the attack: %+v", a)
		}
		c1, c2 := countChecks(e1.p), countChecks(e2.p)

		answers := make(chan oauthAnswer, 40)
		var wg sync.WaitGroup
		for i := range 40 {
			e := e1
			if i%2 == 1 {
				e = e2
			}
			wg.Add(1)
			go func() { defer wg.Done(); answers <- e.introspectAs(webClientID, wrongSecret+strconv.Itoa(i), nil) }()
		}
		wg.Wait()
		close(answers)
		count := map[int]int{}
		for a := range answers {
			count[a.status]++
			if a.status == http.StatusTooManyRequests {
				if s, err := strconv.Atoi(a.retryAfter); err != nil || s <= 0 || a.err != "invalid_client" {
					t.Errorf("throttled answer: %+v, want invalid_client with Retry-After", a)
				}
			}
		}
		if count[http.StatusUnauthorized] != limit || count[http.StatusTooManyRequests] != 40-limit {
			t.Errorf("answers %v, want %d × 401 and %d × 429", count, limit, 40-limit)
		}
		if n := c1.total.Load() + c2.total.Load(); n != limit {
			t.Errorf("%d bcrypt checks, want %d", n, limit)
		}
		if m := max(c1.maxInFlight.Load(), c2.maxInFlight.Load()); m > slots {
			t.Errorf("%d checks at once on one replica, want at most %d", m, slots)
		}
		if n := rateRows(t, st, "client:"+webClientID); n != limit {
			t.Errorf("%d failure rows for the client, want %d", n, limit)
		}
		if a := e1.introspectAs(webClientID, webSecret, nil); a.status != http.StatusOK {
			t.Errorf("right secret on the replica that verified it: %+v", a)
		}
		// The price of a per-client limit: a replica that never saw the
		// secret cannot check it until failures leave the window.
		if a := e2.introspectAs(webClientID, webSecret, nil); a.status != http.StatusTooManyRequests {
			t.Errorf("right secret on a fresh replica during the attack: %+v", a)
		}
	})
}

// Failures from one address are limited across client IDs, known or not;
// the address is the peer, or with TrustProxyHeaders the last
// X-Forwarded-For entry, as for the login pages. A right secret gives its
// slot back.
func TestClientSecretThrottlePerAddress(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		xff := func(v string) http.Header { return http.Header{"X-Forwarded-For": {v}} }

		direct := newEnv(t, flavor, throttle(100, 3, 4))
		if a := direct.introspectAs(webClientID, wrongSecret, xff("192.0.2.1")); a.status != http.StatusUnauthorized {
			t.Fatalf("first failure: %+v", a)
		}
		if a := direct.introspectAs(webClientID, webSecret, xff("192.0.2.2")); a.status != http.StatusOK {
			t.Fatalf("right secret: %+v", a)
		}
		for i, id := range []string{"nobody", "ghost"} {
			if a := direct.introspectAs(id, wrongSecret, xff("192.0.2."+strconv.Itoa(3+i))); a.status != http.StatusUnauthorized {
				t.Fatalf("failure for %s: %+v", id, a)
			}
		}
		if a := direct.introspectAs("another", wrongSecret, xff("198.51.100.1")); a.status != http.StatusTooManyRequests {
			t.Errorf("fourth failure from one peer with a new X-Forwarded-For: %+v, want 429", a)
		}

		proxied := newEnv(t, flavor, func(c *op.Config) { throttle(100, 3, 4)(c); c.TrustProxyHeaders = true })
		for range 3 {
			if a := proxied.introspectAs("nobody", wrongSecret, xff("203.0.113.7")); a.status != http.StatusUnauthorized {
				t.Fatalf("failure behind the proxy: %+v", a)
			}
		}
		if a := proxied.introspectAs("nobody", wrongSecret, xff("203.0.113.7")); a.status != http.StatusTooManyRequests {
			t.Errorf("fourth failure of one forwarded address: %+v, want 429", a)
		}
		// Only the entry our proxy appended counts: a client cannot
		// escape by prefixing its own.
		if a := proxied.introspectAs("nobody", wrongSecret, xff("198.51.100.9, 203.0.113.7")); a.status != http.StatusTooManyRequests {
			t.Errorf("forged leading X-Forwarded-For entry: %+v, want 429", a)
		}
		if a := proxied.introspectAs("nobody", wrongSecret, xff("203.0.113.7, 198.51.100.9")); a.status != http.StatusUnauthorized {
			t.Errorf("another forwarded address: %+v, want 401", a)
		}
	})
}

// Beyond the check slots a request is answered at once with 503
// temporarily_unavailable instead of queueing, and does not count as a
// failure.
func TestClientSecretChecksAreBounded(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := storagetest.New(t, flavor)
		e := newEnvOn(t, st, throttle(100, 100, 2))
		op.SetSecretCheckWait(e.p, 20*time.Millisecond)
		c := &checkCounter{hold: make(chan struct{}), entered: make(chan struct{}, 3)}
		op.SetSecretCheckHook(e.p, c.hook)
		held := make(chan oauthAnswer, 2)
		for i := range 2 {
			go func() { held <- e.introspectAs(webClientID, wrongSecret+strconv.Itoa(i), nil) }()
			<-c.entered
		}
		extra := make(chan oauthAnswer, 1)
		go func() { extra <- e.introspectAs(webClientID, wrongSecret+"2", nil) }()
		select {
		case a := <-extra:
			if a.status != http.StatusServiceUnavailable || a.err != "temporarily_unavailable" || a.retryAfter == "" {
				t.Errorf("check beyond the slots: %+v, want 503 temporarily_unavailable with Retry-After", a)
			}
		case <-c.entered:
			t.Error("a third check ran while both slots were taken")
		}
		close(c.hold)
		for range 2 {
			if a := <-held; a.status != http.StatusUnauthorized {
				t.Errorf("held check: %+v", a)
			}
		}
		if n := rateRows(t, st, "client:"+webClientID); n != 2 {
			t.Errorf("%d failure rows, want 2 (the refused check must not count)", n)
		}
	})
}

// A burst of requests with the right secret on a replica that has not
// verified it yet (just started) runs one check, which the others wait
// for, instead of one each: they would otherwise queue behind the check
// slots, and their reservations fill the per-address limit (5 here, 12
// requests) so that a relying party's own right secret is answered 429.
// Identical wrong secrets sent at once are one guess: one comparison, one
// failure counted.
func TestConcurrentFirstSecretChecksShareOneComparison(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		const burst, slots = 12, 2
		for _, tc := range []struct {
			secret string
			want   int
		}{{webSecret, http.StatusOK}, {wrongSecret, http.StatusUnauthorized}} {
			st := storagetest.New(t, flavor)
			e := newEnvOn(t, st, throttle(100, 5, slots))
			c := &checkCounter{hold: make(chan struct{}), entered: make(chan struct{}, burst)}
			op.SetSecretCheckHook(e.p, c.hook)
			joined := make(chan struct{}, burst)
			op.SetSecretCheckJoined(e.p, func() { joined <- struct{}{} })

			answers := make(chan oauthAnswer, burst)
			for range burst {
				go func() { answers <- e.introspectAs(webClientID, tc.secret, nil) }()
			}
			<-c.entered // the first comparison, held
			for range burst - 1 {
				select {
				case <-joined:
				case <-c.entered:
					close(c.hold)
					t.Fatalf("secret %q: a second comparison ran while the first was in progress", tc.secret)
				case a := <-answers:
					close(c.hold)
					t.Fatalf("secret %q: answered %+v while the first check was in progress, want it to wait", tc.secret, a)
				}
			}
			close(c.hold)
			for range burst {
				if a := <-answers; a.status != tc.want {
					t.Errorf("secret %q: %+v, want %d", tc.secret, a, tc.want)
				}
			}
			if n := c.total.Load(); n != 1 {
				t.Errorf("secret %q: %d bcrypt comparisons for the burst, want 1", tc.secret, n)
			}
			wantRows := 0
			if tc.want != http.StatusOK {
				wantRows = 1
			}
			if n := rateRows(t, st, "client:"+webClientID); n != wantRows {
				t.Errorf("secret %q: %d failure rows after the burst, want %d", tc.secret, n, wantRows)
			}
		}
	})
}

// A wrong secret for a real client and any secret for an unknown client
// cost the same, so client IDs do not show by timing: interleaved medians
// at the token endpoint (refresh grant, posted secret) and at introspection
// (Basic), compared by ratio.
func TestClientSecretTimingHidesClientIDs(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *op.Config) {
			throttle(1000, 1000, 4)(c)
			// A cost where bcrypt clearly dominates a request, as in
			// production, without making the test slow.
			hash, err := bcrypt.GenerateFromPassword([]byte(webSecret), 8)
			if err != nil {
				t.Fatal(err)
			}
			c.Clients[0].SecretHash = string(hash)
		})
		refresh := func(id string) func() int {
			return func() int {
				form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"garbage"}, "client_id": {id}, "client_secret": {wrongSecret}}
				return decodeToken(t, e.postForm("/oauth/token", form, "", "")).status
			}
		}
		introspect := func(id string) func() int {
			return func() int { return e.introspectAs(id, wrongSecret, nil).status }
		}
		for name, pair := range map[string][2]func() int{
			"token endpoint": {refresh(webClientID), refresh("nobody")},
			"introspection":  {introspect(webClientID), introspect("nobody")},
		} {
			var known, unknown []time.Duration
			for i := range 22 {
				order := []int{0, 1}
				if i%2 == 1 {
					order = []int{1, 0}
				}
				for _, j := range order {
					start := time.Now()
					status := pair[j]()
					d := time.Since(start)
					if status != http.StatusUnauthorized {
						t.Fatalf("%s: status %d, want 401", name, status)
					}
					if i < 2 {
						continue // warm-up
					}
					if j == 0 {
						known = append(known, d)
					} else {
						unknown = append(unknown, d)
					}
				}
			}
			ratio := float64(median(unknown)) / float64(median(known))
			t.Logf("%s: median known %v, unknown %v, ratio %.2f", name, median(known), median(unknown), ratio)
			if ratio < 0.5 || ratio > 2 {
				t.Errorf("%s: unknown/known median ratio %.2f, want within [0.5, 2]", name, ratio)
			}
		}
	})
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// Refused token requests of the public client are limited per address in
// the database, also when they arrive at once; a successful one gives its
// slot back. A confidential client whose secret was right is not counted:
// its back-end sends every token request from one address, and neither its
// refusals nor its successes touch the limit.
func TestTokenRequestsThrottledPerAddress(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		const limit = 3
		e := newEnv(t, flavor, func(c *op.Config) { c.Throttle.MaxTokenFailuresPerAddress = limit })
		garbage := url.Values{"grant_type": {"authorization_code"}, "client_id": {spaClientID}, "code": {"garbage"},
			"redirect_uri": {spaRedirect}, "code_verifier": {newPKCE().verifier}}
		if tr := e.token(garbage); tr.status != http.StatusBadRequest {
			t.Fatalf("first refused request: %d %q", tr.status, tr.Error)
		}
		if tr := e.spaExchange(); tr.status != http.StatusOK {
			t.Fatalf("public exchange: %d %q", tr.status, tr.Error)
		}
		// The confidential client's refusals and successes are not counted.
		webGarbage := url.Values{"grant_type": {"authorization_code"}, "code": {"garbage"},
			"redirect_uri": {webRedirect}, "code_verifier": {newPKCE().verifier}}
		for i := range limit + 2 {
			if tr := e.token(webGarbage); tr.status != http.StatusBadRequest {
				t.Fatalf("confidential refused request %d: %d %q, want 400 (not counted)", i+1, tr.status, tr.Error)
			}
		}
		e.login("openid")
		if n := tokenFailureRows(t, e); n != 1 {
			t.Fatalf("%d token-failure rows after one public refusal, want 1 (a success, and a verified client, must not count)", n)
		}

		// The rest of the limit, taken by concurrent requests: exactly
		// limit-1 reach zitadel, the others are answered 429.
		const attackers = 40
		answers := make(chan int, attackers)
		var wg sync.WaitGroup
		for range attackers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp := e.postForm("/oauth/token", garbage, "", "")
				tr := decodeToken(t, resp)
				if tr.status == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				answers <- tr.status
			}()
		}
		wg.Wait()
		close(answers)
		counts := map[int]int{}
		for s := range answers {
			counts[s]++
		}
		if counts[http.StatusBadRequest] != limit-1 || counts[http.StatusTooManyRequests] != attackers-(limit-1) {
			t.Errorf("concurrent refused requests: %v, want %d × 400 and the rest 429", counts, limit-1)
		}
		if tr := e.spaExchange(); tr.status != http.StatusTooManyRequests {
			t.Errorf("public exchange from a throttled address: %d, want 429", tr.status)
		}
		// The relying party's back-end keeps working from that address.
		e.login("openid")
	})
}

// spaExchange runs a code flow for the public client.
func (e *env) spaExchange() tokenResponse {
	e.t.Helper()
	pk := newPKCE()
	loc := e.authorize(authParams(spaClientID, spaRedirect, "openid", pk))
	return e.token(url.Values{"grant_type": {"authorization_code"}, "client_id": {spaClientID},
		"code": {loc.Query().Get("code")}, "redirect_uri": {spaRedirect}, "code_verifier": {pk.verifier}})
}

func tokenFailureRows(t *testing.T, e *env) int {
	t.Helper()
	var n int
	db := e.store.(*sqlstore.Store).DB()
	if err := db.Get(&n, `SELECT COUNT(*) FROM rate_events WHERE kind = 'token_failure'`); err != nil {
		t.Fatal(err)
	}
	return n
}
