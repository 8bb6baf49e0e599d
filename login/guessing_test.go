package login

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// Attacks on the password check (S1's 「ログイン >」 and S3): guesses that
// hang up early, concurrent guesses, sprays that would exhaust memory, and
// timing that would tell how a password is stored.

// postHalfClosed sends a form post with the browser's cookies over a raw
// connection, half-closes it right after the body (the client "hangs up"),
// and still reads the answer: what an attacker does to have the server's
// request context cancelled mid-check.
func (e *env) postHalfClosed(path string, form url.Values) int {
	e.t.Helper()
	u, _ := url.Parse(e.srv.URL)
	var cookies []string
	for _, c := range e.client.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	body := form.Encode()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: %d\r\nCookie: %s\r\nConnection: close\r\n\r\n%s", path, u.Host, len(body), strings.Join(cookies, "; "), body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0 // no answer at all
	}
	res.Body.Close()
	return res.StatusCode
}

// concurrently runs n requests at once (released together) and returns
// their answers in order: the concurrent version of an attack.
func concurrently(n int, req func(i int) resp) []resp {
	out := make([]resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = req(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// createUserHashed stores a user with a given password hash.
func (e *env) createUserHashed(loginID, hash string) *storage.User {
	e.t.Helper()
	now := time.Now().UTC()
	u := &storage.User{
		ID: "u-" + loginID, LoginID: loginID, Email: loginID + "@example.com", DisplayName: "テスト 花子",
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		e.t.Fatal(err)
	}
	return u
}

func (e *env) auditCount(typ string) int {
	e.t.Helper()
	n := 0
	for _, ev := range e.audit() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func (e *env) failuresCounted(key string) int {
	e.t.Helper()
	n, err := e.store.CountRateEvents(context.Background(), rateLoginFailure, key, e.clock.Now().Add(-time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// A client that hangs up right after sending the password still pays for
// the guess: the failure is counted and audited, the pause applies, and the
// right password completes the login instead of answering a telltale 500.
// The real argon2id cost makes the hang-up land while the hash runs.
func TestRule7GuessThatHangsUpIsCountedAndAudited(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) {
			c.Password = password.DefaultParams
			c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 3, MaxPerAddress: 100}
		})
		hash, err := password.Hash(password.DefaultParams, "s3cret-pass")
		if err != nil {
			t.Fatal(err)
		}
		e.createUserHashed("hana", hash)
		e.createUserHashed("ken", hash)
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		for i := range 3 {
			if got := e.postHalfClosed("/login", url.Values{"loginID": {"hana"}, "password": {fmt.Sprintf("guess-%d", i)}}); got != http.StatusSeeOther {
				t.Fatalf("hung-up guess %d answered %d, want the refusal's 303 (post/redirect/get)", i, got)
			}
		}
		if n := e.failuresCounted("login:hana"); n != 3 {
			t.Fatalf("hung-up guesses counted %d times, want 3", n)
		}
		if n := e.auditCount("login.failure"); n != 3 {
			t.Fatalf("hung-up guesses audited %d times, want 3", n)
		}
		if got := e.postHalfClosed("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}); got != http.StatusTooManyRequests {
			t.Fatalf("right password after the limit, hung up: %d, want 429", got)
		}
		if got := e.postHalfClosed("/login", url.Values{"loginID": {"ken"}, "password": {"s3cret-pass"}}); got != http.StatusSeeOther {
			t.Fatalf("right password, hung up: %d, want the 303 of a completed login", got)
		}
		if !e.storedAuthRequest(ar).Done {
			t.Fatal("the hung-up right password did not complete the login")
		}
		if n := e.failuresCounted("login:ken"); n != 0 {
			t.Fatalf("a right password left %d failure records", n)
		}
	})
}

// 40 concurrent guesses for one login ID with a limit of 10: exactly 10
// are checked (and audited), the rest are paused. Counting first and
// recording after the hash let 28 through.
func TestRule7ConcurrentGuessesCheckAtMostTheLimit(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) {
			c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 10, MaxPerAddress: 1000}
			// Every guess waits for a hashing slot: only the throttle refuses.
			c.PasswordHashing = password.LimiterConfig{Queue: 100, MaxWait: 10 * time.Second}
		})
		e.createUser("hana", "s3cret-pass")
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		const guesses = 40
		results := concurrently(guesses, func(i int) resp {
			return e.post("/login", url.Values{"loginID": {"hana"}, "password": {fmt.Sprintf("guess-%02d", i)}})
		})
		checked, paused := 0, 0
		for _, r := range results {
			switch s := r.status; s {
			case http.StatusSeeOther: // a checked wrong password: post/redirect/get
				if r.location() != pathLogin {
					t.Errorf("checked guess sent to %q", r.location())
				}
				checked++
			case http.StatusTooManyRequests:
				paused++
			default:
				t.Errorf("unexpected status %d", s)
			}
		}
		if checked != 10 || paused != guesses-10 {
			t.Fatalf("%d guesses checked and %d paused, want 10 and %d", checked, paused, guesses-10)
		}
		if n := e.auditCount("login.failure"); n != 10 {
			t.Fatalf("%d failures audited, want 10", n)
		}
	})
}

// A spray of concurrent wrong passwords against a limiter whose memory
// budget holds one hash: every request is answered (the refusal's 303 or a fast 429 with
// Retry-After and the Japanese text), and no two hashes ever ran at once. The
// memory and latency figures of a real spray come from the load test; this
// pins the behaviour.
func TestPasswordSprayIsBoundedAndAnswered(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) {
		c.Password = password.DefaultParams
		c.PasswordHashing = password.LimiterConfig{MemoryBudget: int64(password.DefaultParams.MemoryKiB) * 1024, Queue: 2, MaxWait: time.Second}
		c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 1000, MaxPerAddress: 1000}
	})
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
	const spray = 30
	results := concurrently(spray, func(i int) resp {
		return e.post("/login", url.Values{"loginID": {fmt.Sprintf("user%02d", i)}, "password": {"wrong-pass"}})
	})
	busy := 0
	for _, r := range results {
		switch r.status {
		case http.StatusSeeOther: // checked and refused: post/redirect/get
		case http.StatusTooManyRequests:
			busy++
			if r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "ただいまログインが大変混み合っています") {
				t.Fatalf("429 without Retry-After or the busy text: %v\n%s", r.header, r.body)
			}
		default:
			t.Fatalf("spray answer %d, want the refusal's 303 or 429:\n%s", r.status, r.body)
		}
	}
	lim := e.h.verifier.Limiter()
	if lim.Slots() != 1 || lim.Peak() != 1 {
		t.Fatalf("limiter: %d slots, peak %d concurrent hashes; want 1 and 1", lim.Slots(), lim.Peak())
	}
	if busy == 0 {
		t.Fatal("no request was turned away: the queue bound was never reached")
	}
	// A refused request was not checked, so it is not a failure either.
	if n := e.auditCount("login.failure"); n != spray-busy {
		t.Fatalf("%d failures audited for %d checked requests", n, spray-busy)
	}
}

// An imported bcrypt user, an argon2id user and an unknown login ID cost
// the same (rule 7): interleaved medians of the three kinds of wrong
// password stay within a generous ratio. Before padding, bcrypt users
// answered in about twice the time of unknown IDs. The bcrypt user's first
// right password replaces the hash by argon2id.
func TestRule7BcryptUserTimingMatchesUnknownID(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) {
		c.Password = password.DefaultParams
		c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 1000, MaxPerAddress: 1000}
	})
	bc, err := bcrypt.GenerateFromPassword([]byte("old-system-pass"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	legacy := e.createUserHashed("imported", string(bc))
	argon, err := password.Hash(password.DefaultParams, "s3cret-pass")
	if err != nil {
		t.Fatal(err)
	}
	e.createUserHashed("modern", argon)
	ar := e.authRequest(nil)
	e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
	// Each round times the three kinds back to back (in rotating order) and
	// keeps each kind's ratio to the unknown ID of the same round: a burst
	// of load from other tests then moves both sides of a ratio, not one
	// median.
	kinds := []string{"imported", "modern", "nobody"}
	ratios := map[string][]float64{}
	for round := range 15 {
		took := map[string]time.Duration{}
		for k := range kinds {
			id := kinds[(k+round)%len(kinds)]
			t0 := time.Now()
			// The post alone: the refusal's 303 (post/redirect/get).
			e.expect(e.post("/login", url.Values{"loginID": {id}, "password": {"wrong-pass"}}), http.StatusSeeOther)
			took[id] = time.Since(t0)
		}
		for _, id := range kinds[:2] {
			ratios[id] = append(ratios[id], float64(took[id])/float64(took["nobody"]))
		}
	}
	for _, id := range kinds[:2] {
		r := slices.Clone(ratios[id])
		slices.Sort(r)
		ratio := r[len(r)/2]
		t.Logf("%s: median ratio to an unknown ID %.2f (of %d rounds)", id, ratio, len(r))
		if ratio < 0.6 || ratio > 1.6 {
			t.Errorf("%s user's wrong password takes %.2f× an unknown ID's (median of per-round ratios)", id, ratio)
		}
	}
	e.expectRedirect(e.post("/login", url.Values{"loginID": {"imported"}, "password": {"old-system-pass"}}), "/cb?id="+ar)
	u, err := e.store.UserByID(context.Background(), legacy.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("after the first login the hash is %.10s…, want argon2id", u.PasswordHash)
	}
	if ok, err := password.Verify(u.PasswordHash, "old-system-pass"); err != nil || !ok {
		t.Fatalf("the rehashed password does not verify: %v, %v", ok, err)
	}
	if n := e.auditCount("password.rehashed"); n != 1 {
		t.Fatalf("rehash audited %d times, want 1", n)
	}
}

// Every passkey JSON call of the login flow takes a slot of the address,
// whatever it carries: one without a flow, a forged assertion, a call at
// the wrong step. Once they are spent, even a good options call gets the
// 429 before a challenge is written.
func TestPasskeyCallsAreLimitedPerAddressWhateverTheyCarry(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		e.h.cfg.CeremonyLimit = CeremonyLimit{Window: time.Minute, MaxPerAddress: 4}
		e.expect(e.postJSON(pathPasskeyLoginFin, []byte(`{}`)), http.StatusBadRequest, `"code":"flow_expired"`)
		e.expect(e.get("/login?authRequestID="+e.authRequest(nil)), http.StatusOK)
		e.expect(e.postJSON(pathPasskeyLoginOpt, []byte(`{}`)), http.StatusOK, `"challenge"`)
		e.expect(e.postJSON(pathPasskeyLoginFin, []byte(`{"id":"forged","type":"public-key"}`)), http.StatusUnauthorized, `"code":"verification_failed"`)
		e.expect(e.postJSON(pathPasskeyRegOpt, []byte(`{}`)), http.StatusBadRequest, `"code":"wrong_step"`)
		r := e.postJSON(pathPasskeyLoginOpt, []byte(`{}`))
		e.expect(r, http.StatusTooManyRequests, `"code":"too_many_requests"`)
		if strings.Contains(r.body, "challenge") {
			t.Fatalf("a refused call carries options: %s", r.body)
		}
		if n, err := e.store.CountRateEvents(t.Context(), rateCeremony, "ip:127.0.0.1", e.clock.Now().Add(-time.Minute)); err != nil || n != 4 {
			t.Fatalf("slots stored: %d (%v), want the limit of 4", n, err)
		}
	})
}

// The passkey JSON calls are limited per address, across 40 concurrent
// calls too: exactly the limit gets through, the rest a 429 with
// Retry-After, before any challenge is written or signature checked.
func TestPasskeyCallsAreLimitedPerAddress(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) { c.CeremonyLimit = CeremonyLimit{Window: time.Minute, MaxPerAddress: 5} })
		ar := e.authRequest(nil)
		e.expect(e.get("/login?authRequestID="+ar), http.StatusOK)
		const calls = 40
		results := concurrently(calls, func(int) resp { return e.postJSON(pathPasskeyLoginOpt, []byte(`{}`)) })
		limited := 0
		for _, r := range results {
			if r.status == http.StatusTooManyRequests {
				limited++
				if r.header.Get("Retry-After") != "60" || !strings.Contains(r.body, "too_many_requests") {
					t.Fatalf("429 without Retry-After: 60 or its code: %v %s", r.header, r.body)
				}
			}
		}
		if limited != calls-5 {
			t.Fatalf("%d of %d calls limited, want %d", limited, calls, calls-5)
		}
		e.clock.Advance(61 * time.Second)
		if r := e.postJSON(pathPasskeyLoginOpt, []byte(`{}`)); r.status == http.StatusTooManyRequests {
			t.Fatal("still limited after the window")
		}
	})
}
