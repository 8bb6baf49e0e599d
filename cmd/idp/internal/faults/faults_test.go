// Package faults runs three `idp serve` processes on one PostgreSQL behind a
// round-robin proxy and breaks things while customers sign in: a replica
// is killed and restarted, PostgreSQL is restarted, a replica is drained
// with SIGTERM. It checks what production needs from that: no enrolment
// is lost, a live replica answers 5xx only while the database is away and
// then only 503, never a 4xx that blames the customer for the database,
// every replica recovers without a restart, and start-up work (migration,
// signing keys) is done once however many replicas start at once.
package faults

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

// customer is a seeded user.
type customer struct {
	id, loginID, email, password string
}

// cheapHash keeps the load's password checks light on a 2-core machine;
// the replicas verify with the parameters stored in the hash.
var cheapHash = password.Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func seedCustomer(t *testing.T, db *sqlstore.Store, loginID string, p password.Params) *customer {
	t.Helper()
	c := &customer{id: rand.Text(), loginID: loginID, email: loginID + "@example.com", password: "pass-" + loginID + "-2026"}
	hash, err := password.Hash(p, c.password)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	// Declined the passkey offer just now: an F4 login goes straight to
	// the bank, as the flows below plan it (the offer is tested in login).
	u := &storage.User{ID: c.id, LoginID: loginID, Email: c.email, PasswordHash: hash, PasskeyOfferSkippedAt: &now, CreatedAt: now, UpdatedAt: now}
	if err := db.CreateUser(context.Background(), u); err != nil {
		t.Fatalf("seed %s: %v", loginID, err)
	}
	return c
}

// window is a time when answers of one replica (or of all, -1) are
// excused: it was dead, draining, or the database was away.
type window struct {
	name     string
	replica  int
	from, to time.Time
}

func (w window) covers(a attempt) bool {
	return (w.replica < 0 || w.replica == a.replica) && a.start.Before(w.to) && a.end.After(w.from)
}

// timeline is what the fault schedule did, shared with the checks.
type timeline struct {
	mu      sync.Mutex
	windows []window
}

func (tl *timeline) add(w window) {
	tl.mu.Lock()
	tl.windows = append(tl.windows, w)
	tl.mu.Unlock()
}

// since reports whether a window of kind ended before a began, at most d
// earlier.
func (tl *timeline) since(a attempt, kind string, d time.Duration) bool {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, w := range tl.windows {
		if w.name == kind && !w.to.After(a.start) && a.start.Sub(w.to) <= d {
			return true
		}
	}
	return false
}

func (tl *timeline) covering(a attempt, kinds ...string) (window, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, w := range tl.windows {
		if slices.Contains(kinds, w.name) && w.covers(a) {
			return w, true
		}
	}
	return window{}, false
}

const (
	winKill     = "kill -9"
	winTerm     = "SIGTERM"
	winPostgres = "PostgreSQL restart"
)

// outcomes of the customers' enrolments, by user ID.
type outcomes struct {
	mu        sync.Mutex
	enrolled  map[string][]byte // every step answered success: the passkey's ID
	late      map[string]bool   // a step's answer was lost, but the passkey is stored
	notDone   map[string]string // never enrolled although retried: why
	logins    int               // F4 logins that completed
	loginFail []string          // F4 customers whose every retry failed
}

func TestReplicasSurviveKillAndDatabaseRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and three replicas for about half a minute")
	}
	pg := startCluster(t)
	bin := buildIdP(t)
	dir := t.TempDir()

	sink, err := mailsink.Start(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })

	proxyLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := fmt.Sprintf("http://localhost:%d", proxyLn.Addr().(*net.TCPAddr).Port)
	secretHash, err := bcrypt.GenerateFromPassword([]byte(bankSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := deployment{issuer: issuer, database: pg.DSN(), smtpAddr: sink.Addr(), secretHash: string(secretHash)}

	replicas := make([]*replica, 3)
	var addrs []string
	for i := range replicas {
		replicas[i] = newReplica(t, "r"+strconv.Itoa(i), bin, dir, d)
		addrs = append(addrs, replicas[i].addr)
	}
	// All three at once on the empty database: migration and the first
	// signing key must be done once, not three times.
	for _, r := range replicas {
		r.start()
	}
	// /readyz is the production name; /ready is zitadel's, served today.
	readyPath := "/ready"
	for _, r := range replicas {
		took := r.waitReady([]string{"/readyz", "/ready"}, 30*time.Second)
		t.Logf("%s ready %s after start", r.name, took.Round(time.Millisecond))
	}
	if replicas[0].probe("/readyz") == http.StatusOK {
		readyPath = "/readyz"
	}
	t.Logf("readiness endpoint: %s", readyPath)

	proxy := newRoundRobin(addrs)
	proxySrv := &http.Server{Handler: proxy}
	go proxySrv.Serve(proxyLn)
	t.Cleanup(func() { proxySrv.Close() })

	db, err := sqlstore.Open(context.Background(), pg.DSN(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	const workers = 4
	const enrolPerWorker = 80
	rec := &recorder{}
	res := &outcomes{enrolled: map[string][]byte{}, late: map[string]bool{}, notDone: map[string]string{}}
	tl := &timeline{}
	stop := make(chan struct{})
	// Customers whose flow stopped keep trying until then, well after the
	// last fault.
	hardStop := time.Now().Add(35 * time.Second)
	var wg sync.WaitGroup
	for w := range workers {
		var enrolUsers []*customer
		for i := range enrolPerWorker {
			enrolUsers = append(enrolUsers, seedCustomer(t, db, fmt.Sprintf("enrol-%d-%02d", w, i), cheapHash))
		}
		pwUser := seedCustomer(t, db, fmt.Sprintf("pw-%d", w), cheapHash)
		c := &client{
			issuer:     issuer,
			browserRT:  transportFrom(fmt.Sprintf("127.0.0.%d", 10+w), proxyLn.Addr().String()),
			serverRT:   transportFrom(fmt.Sprintf("127.0.0.%d", 50+w), proxyLn.Addr().String()),
			rec:        rec,
			sink:       sink,
			stepBudget: 12 * time.Second,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runWorker(c, db, enrolUsers, pwUser, res, stop, hardStop)
		}()
	}

	slow := seedCustomer(t, db, "slow", password.Params{MemoryKiB: 64 * 1024, Iterations: 4, Parallelism: 1})
	var parkUsers []*customer
	for k := range 16 {
		parkUsers = append(parkUsers, seedCustomer(t, db, fmt.Sprintf("parked-%02d", k), cheapHash))
	}
	parkPW := seedCustomer(t, db, "parked-pw", cheapHash)
	parkClient := &client{issuer: issuer, browserRT: transportFrom("127.0.0.80", proxyLn.Addr().String()),
		serverRT: transportFrom("127.0.0.81", proxyLn.Addr().String()), rec: rec, sink: sink, stepBudget: 12 * time.Second}
	// Expired rows for the housekeeping of the replicas restarted below.
	for range 5 {
		past := time.Now().Add(-time.Hour).UTC()
		if err := db.CreateAuthRequest(context.Background(), &storage.AuthRequest{ID: "expired-" + rand.Text(), ClientID: bankClientID,
			RedirectURI: bankRedirect, ResponseType: "code", Scopes: []string{"openid"}, CreatedAt: past, ExpiresAt: past}); err != nil {
			t.Fatal(err)
		}
	}
	sched := &schedule{t: t, pg: pg, replicas: replicas, readyPath: readyPath, tl: tl}
	loadStart := time.Now()
	time.Sleep(3 * time.Second)
	sched.killAndRestart(1)
	time.Sleep(2 * time.Second)
	sched.restartPostgres(park(t, parkClient, parkUsers, parkPW))
	time.Sleep(2 * time.Second)
	sched.drain(2, issuer, proxyLn.Addr().String(), slow, rec)
	faultsOver := time.Now()
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("load ran %s; faults over %s after start", time.Since(loadStart).Round(time.Millisecond), faultsOver.Sub(loadStart).Round(time.Millisecond))

	attempts := rec.all()
	judge(t, attempts, tl)
	checkEnrolments(t, db, res)
	checkKeys(t, db, replicas)
	checkSwept(t, db, replicas)
	reportLoad(t, attempts, proxy, replicas, res)
}

// runWorker alternates F1 enrolments and F4 logins until stop, then
// finishes the customer it is on.
func runWorker(c *client, db *sqlstore.Store, enrolUsers []*customer, pwUser *customer, res *outcomes, stop <-chan struct{}, hardStop time.Time) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if i%2 == 1 || len(enrolUsers) == 0 {
			login(c, pwUser, res, hardStop)
			continue
		}
		u := enrolUsers[0]
		enrolUsers = enrolUsers[1:]
		enrolCustomer(c, db, u, res, hardStop)
	}
}

// enrolCustomer runs F1 for u until it succeeds, starting over when a
// flow stops, as a customer would, until hardStop.
func enrolCustomer(c *client, db *sqlstore.Store, u *customer, res *outcomes, hardStop time.Time) {
	var why string
	for {
		f := c.newFlow("enrol").enrolment(u)
		if f.runUntil("") {
			res.mu.Lock()
			res.enrolled[u.id] = f.credID
			res.mu.Unlock()
			return
		}
		why = fmt.Sprintf("flow %d stopped at %q", f.id, f.current())
		// The answer that would have said so may be what was lost.
		if n, err := countPasskeys(db, u.id); err == nil && n > 0 {
			res.mu.Lock()
			res.late[u.id] = true
			res.mu.Unlock()
			return
		} else if err != nil {
			why += "; " + err.Error()
		}
		if time.Now().After(hardStop) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.mu.Lock()
	res.notDone[u.loginID] = why
	res.mu.Unlock()
}

func login(c *client, u *customer, res *outcomes, hardStop time.Time) {
	for {
		if c.newFlow("password").passwordLogin(u).runUntil("") {
			res.mu.Lock()
			res.logins++
			res.mu.Unlock()
			return
		}
		if time.Now().After(hardStop) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.mu.Lock()
	res.loginFail = append(res.loginFail, u.loginID)
	res.mu.Unlock()
}

// countPasskeys asks the database, waiting out its restart.
func countPasskeys(db *sqlstore.Store, userID string) (int, error) {
	var err error
	for range 30 {
		var n int
		if n, err = db.CountCredentials(context.Background(), userID); err == nil {
			return n, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return 0, fmt.Errorf("count passkeys: %w", err)
}

// schedule performs the faults and records their windows.
type schedule struct {
	t         *testing.T
	pg        *cluster
	replicas  []*replica
	readyPath string
	tl        *timeline
}

// killAndRestart is kill -9 of replica i, then a restart on its address.
func (s *schedule) killAndRestart(i int) {
	r := s.replicas[i]
	from := time.Now()
	r.kill()
	s.t.Logf("fault: kill -9 %s", r.name)
	time.Sleep(1500 * time.Millisecond)
	r.start()
	took := r.waitReady([]string{s.readyPath}, 30*time.Second)
	s.tl.add(window{name: winKill, replica: i, from: from, to: time.Now()})
	s.t.Logf("FIGURE: %s restarted after kill -9: ready %s after exec (down %s in all)", r.name,
		took.Round(time.Millisecond), time.Since(from).Round(time.Millisecond))
}

// restartPostgres stops the server, checks every replica reports itself
// not ready while it is down, starts it again and measures how long the
// replicas take to serve again by themselves.
func (s *schedule) restartPostgres(parked []*flow) {
	t := s.t
	from := time.Now()
	notReady := make([]time.Duration, len(s.replicas))
	down := make(chan struct{})
	var watch sync.WaitGroup
	for i, r := range s.replicas {
		watch.Add(1)
		go func() {
			defer watch.Done()
			notReady[i] = -1
			for {
				select {
				case <-down:
					return
				default:
				}
				if st := r.probe(s.readyPath); st != http.StatusOK && notReady[i] < 0 {
					notReady[i] = time.Since(from)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}
	s.pg.stop()
	t.Logf("fault: PostgreSQL stopped (%s)", time.Since(from).Round(time.Millisecond))
	// Every step of both flows once while the database is away.
	probes := make([]attempt, len(parked))
	for k, f := range parked {
		probes[k] = f.probe()
	}
	time.Sleep(time.Until(from.Add(2 * time.Second)))
	close(down)
	watch.Wait()
	s.pg.start()
	up := time.Now()
	s.tl.add(window{name: winPostgres, replica: -1, from: from, to: up})
	t.Logf("fault: PostgreSQL started again, down %s", up.Sub(from).Round(time.Millisecond))
	for i, r := range s.replicas {
		if notReady[i] < 0 {
			t.Errorf("%s: %s answered 200 all the time PostgreSQL was down", r.name, s.readyPath)
		} else {
			t.Logf("FIGURE: %s %s non-200 %s after the stop began", r.name, s.readyPath, notReady[i].Round(time.Millisecond))
		}
	}
	// Every replica recovers by itself: ready, and able to write (an
	// authorization request is a row).
	var worst time.Duration
	for _, r := range s.replicas {
		ready, serves := time.Duration(-1), time.Duration(-1)
		for time.Since(up) < 30*time.Second && (ready < 0 || serves < 0) {
			if ready < 0 && r.probe(s.readyPath) == http.StatusOK {
				ready = time.Since(up)
			}
			if serves < 0 && r.probe(authorizePath()) == http.StatusFound {
				serves = time.Since(up)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ready < 0 || serves < 0 {
			t.Errorf("%s did not recover within 30s of PostgreSQL's restart without being restarted (ready %v, serves %v)", r.name, ready, serves)
			continue
		}
		worst = max(worst, ready, serves)
		t.Logf("FIGURE: %s after PostgreSQL's restart: %s 200 after %s, writes again after %s", r.name, s.readyPath,
			ready.Round(time.Millisecond), serves.Round(time.Millisecond))
	}
	t.Logf("FIGURE: every replica serves again %s after PostgreSQL accepted connections", worst.Round(time.Millisecond))

	// The parked flows go on from the step that failed, as a customer
	// pressing the button again would: nothing of them may be lost.
	var resume sync.WaitGroup
	for k, f := range parked {
		p := probes[k]
		t.Logf("FIGURE: with PostgreSQL down, %s step %q: %s", f.kind, p.step, p.summary())
		if p.rpError != "" {
			continue // the bank was told; the customer starts again
		}
		resume.Add(1)
		go func() {
			defer resume.Done()
			if !f.runUntil("") {
				t.Errorf("a %s flow parked at %q while PostgreSQL was down did not complete after it came back (stopped at %q)",
					f.kind, p.step, f.current())
			}
		}()
	}
	resume.Wait()
}

// park prepares one flow before each step of F1 and of F4, to be sent
// while the database is down.
func park(t *testing.T, c *client, enrolUsers []*customer, pwUser *customer) []*flow {
	t.Helper()
	var parked []*flow
	plan := c.newFlow("enrol").enrolment(enrolUsers[0])
	for k, st := range plan.steps {
		f := c.newFlow("enrol").enrolment(enrolUsers[k])
		if !f.runUntil(st.name) {
			t.Fatalf("park an enrolment before %q: it stopped at %q", st.name, f.current())
		}
		parked = append(parked, f)
	}
	for _, name := range []string{"S1 password", "token", "refresh"} {
		f := c.newFlow("password").passwordLogin(pwUser)
		if !f.runUntil(name) {
			t.Fatalf("park a password login before %q: it stopped at %q", name, f.current())
		}
		parked = append(parked, f)
	}
	return parked
}

// authorizePath is an authorization request straight to one replica; it
// answers 302 to the login page once the request is stored.
func authorizePath() string {
	pk := newPKCE()
	q := url.Values{"client_id": {bankClientID}, "redirect_uri": {bankRedirect}, "response_type": {"code"},
		"scope": {"openid"}, "code_challenge": {pk.challenge}, "code_challenge_method": {"S256"}}
	return "/authorize?" + q.Encode()
}

// drain sends slow password logins to replica i, SIGTERMs it while they
// are in flight, and checks each gets its complete answer before the
// process exits 0. Then the replica is started again.
func (s *schedule) drain(i int, issuer, proxyAddr string, slow *customer, rec *recorder) {
	t := s.t
	r := s.replicas[i]
	c := &client{issuer: issuer, browserRT: transportFrom("127.0.0.90", proxyAddr), serverRT: transportFrom("127.0.0.91", proxyAddr),
		rec: rec, stepBudget: 12 * time.Second}
	const inFlight = 3
	type result struct {
		f   *flow
		a   attempt
		ans answer
	}
	results := make(chan result, inFlight)
	pinned := pinTo(i, c.browserRT)
	for range inFlight {
		f := c.newFlow("drain").passwordLogin(slow)
		if !f.runUntil("S1 password") {
			t.Fatalf("drain: could not reach S1 for a slow login")
		}
		go func() {
			s := f.steps[f.next]
			req, _ := s.req(1)
			req.hc = &http.Client{Jar: f.browser.Jar, Transport: pinned, Timeout: 30 * time.Second, CheckRedirect: f.browser.CheckRedirect}
			ans, a := f.once(s.name+" (pinned)", 1, req, s.want)
			if a.ok && f.apply(s, ans) {
				f.next++
			}
			results <- result{f, a, ans}
		}()
	}
	// Each check takes the replica's only hashing slot for a good while on
	// this machine, so the later ones are still queued when the signal
	// comes; that they were in flight is checked below, not assumed.
	time.Sleep(150 * time.Millisecond)
	from := time.Now()
	exited := r.terminate()
	t.Logf("fault: SIGTERM %s with %d slow logins sent", r.name, inFlight)
	var answered []result
	for range inFlight {
		answered = append(answered, <-results)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM; log:\n%s", r.name, r.logTail(30))
	}
	exitAt := time.Since(from)
	overlapped := 0
	for _, res := range answered {
		if !res.a.ok {
			t.Errorf("SIGTERM drain: an in-flight login got no complete answer: %s", res.a)
			continue
		}
		if res.a.end.After(from) {
			overlapped++
		}
		if !res.f.runUntil("") {
			t.Errorf("SIGTERM drain: the login answered during the drain does not complete at the bank")
		}
	}
	if overlapped == 0 {
		t.Fatal("SIGTERM drain: every slow login finished before the signal; nothing was in flight (make the hash slower)")
	}
	if code := exitCode(r.exitErr()); code != 0 {
		t.Errorf("SIGTERM drain: %s exited with status %d (%v), want 0; log:\n%s", r.name, code, r.exitErr(), r.logTail(20))
	}
	t.Logf("FIGURE: SIGTERM %s: %d/%d in-flight logins answered after the signal, process exited %s after it",
		r.name, overlapped, inFlight, exitAt.Round(time.Millisecond))
	r.start()
	took := r.waitReady([]string{s.readyPath}, 30*time.Second)
	s.tl.add(window{name: winTerm, replica: i, from: from, to: time.Now()})
	t.Logf("FIGURE: %s started again after the drain: ready %s after exec", r.name, took.Round(time.Millisecond))
}

// pinTo sends every request to replica i through the proxy.
func pinTo(i int, rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.Header.Set(pinHeader, strconv.Itoa(i))
		return rt.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// judge sorts every answer the flows got against the fault windows.
func judge(t *testing.T, attempts []attempt, tl *timeline) {
	t.Helper()
	type key struct {
		replica int
		window  string
	}
	fiveXX := map[key]int{}
	var wrong findings
	ambiguous, toldRP := 0, 0
	for _, a := range attempts {
		if a.ok {
			continue
		}
		pgWin, duringPG := tl.covering(a, winPostgres)
		_, replicaAway := tl.covering(a, winKill, winTerm)
		switch {
		case strings.HasSuffix(a.step, "(after)"):
			wrong.add(a, "a step answered success but its effect is missing")
		case a.status == 0 || a.proxyError != "":
			// No answer from the replica: only while it was dead or draining.
			k := key{a.replica, "replica away"}
			if !replicaAway {
				k.window = "replica up"
				wrong.add(a, "no answer from a live replica")
			}
			fiveXX[k]++
		case a.rpError == "server_error" || a.rpError == "temporarily_unavailable":
			// The OAuth way to say 5xx to the bank through the browser.
			if !duringPG {
				wrong.add(a, "the bank was told "+a.rpError+" outside the outage window")
			}
			toldRP++
		case a.status >= 500:
			if !duringPG {
				fiveXX[key{a.replica, "outside outage"}]++
				wrong.add(a, "5xx outside the outage window")
				continue
			}
			fiveXX[key{a.replica, "PostgreSQL down"}]++
			if a.status != http.StatusServiceUnavailable {
				wrong.add(a, fmt.Sprintf("database failure answered %d, want 503", a.status))
			} else if a.step == "token" || a.step == "refresh" {
				if !strings.Contains(a.body, "temporarily_unavailable") && !strings.Contains(a.body, "server_error") {
					wrong.add(a, "token endpoint 503 without temporarily_unavailable/server_error")
				}
			}
		case a.step == "S5 options" && a.status == http.StatusConflict && strings.Contains(a.body, `"has_passkey"`) &&
			(duringPG || tl.since(a, winPostgres, 30*time.Second)):
			// The retry of an S5 finish that stored the passkey and then
			// failed (the database went away before the login completed;
			// the window ends when pg_ctl returns, PostgreSQL serves a
			// little earlier):
			// rule 1 forbids password + OTP a second passkey, so the
			// customer is sent to 「パスキー認証」 with the one just stored
			// (the run checks it is stored: "late" enrolments).
			ambiguous++
			t.Logf("retry after a stored passkey sent to passkey login: %s", a)
		case duringPG:
			// With the database away, a 4xx (or an unexpected page)
			// blames the customer or the bank for our outage.
			wrong.add(a, fmt.Sprintf("an answer that blames the client while PostgreSQL was down (%s–%s)",
				pgWin.from.Format("15:04:05.000"), pgWin.to.Format("15:04:05.000")))
		case a.afterLost:
			// An earlier attempt got no answer and may have done the work
			// (a used OTP, a used challenge); the flow starts over.
			ambiguous++
			t.Logf("retry refused after a lost answer (flow restarted): %s", a)
		default:
			// Also a refusal of a retry after a 5xx: a server that said it
			// failed must have left the step retryable.
			wrong.add(a, "wrong answer")
		}
	}
	var keys []key
	for k := range fiveXX {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].replica != keys[j].replica {
			return keys[i].replica < keys[j].replica
		}
		return keys[i].window < keys[j].window
	})
	for _, k := range keys {
		t.Logf("FIGURE: 5xx/no answer from replica %d while %s: %d", k.replica, k.window, fiveXX[k])
	}
	t.Logf("FIGURE: %d retries refused after a lost answer; %d times the bank was told server_error/temporarily_unavailable", ambiguous, toldRP)
	for _, w := range wrong {
		if w.repeats > 0 {
			t.Errorf("%s (and %d more retries of this step answered alike)", w.first, w.repeats)
		} else {
			t.Error(w.first)
		}
	}
}

// findings collects wrong answers, one per flow step and kind of wrong:
// a step retried twenty times through an outage is one finding.
type findings []*finding

type finding struct {
	key     string
	first   string
	repeats int
}

func (fs *findings) add(a attempt, what string) {
	key := fmt.Sprintf("%d/%s/%d/%s", a.flow, a.step, a.status, what)
	for _, f := range *fs {
		if f.key == key {
			f.repeats++
			return
		}
	}
	*fs = append(*fs, &finding{key: key, first: what + ": " + a.String()})
}

// checkEnrolments: every enrolment that answered success has its passkey
// in the database, and every customer could enrol in the end.
func checkEnrolments(t *testing.T, db *sqlstore.Store, res *outcomes) {
	t.Helper()
	lost := 0
	for userID, credID := range res.enrolled {
		c, err := db.CredentialByID(context.Background(), credID)
		if err != nil || c.UserID != userID {
			lost++
			t.Errorf("lost enrolment: user %s saw every step succeed, but passkey %x is not stored (%v)", userID, credID, err)
		}
	}
	for loginID, why := range res.notDone {
		lost++
		t.Errorf("lost enrolment: %s could not enrol although retried after the faults: %s", loginID, why)
	}
	for _, loginID := range res.loginFail {
		t.Errorf("F4 login of %s failed on every retry", loginID)
	}
	t.Logf("FIGURE: enrolments completed %d (+%d whose last answer was lost but the passkey is stored), lost %d; F4 logins completed %d",
		len(res.enrolled), len(res.late), lost, res.logins)
	if len(res.enrolled) == 0 || res.logins == 0 {
		t.Error("the load completed no enrolment or no login: the test proves nothing")
	}
}

// checkKeys: three replicas starting at once, one restarted twice, left
// the key table as one replica alone would (the first key and the
// successor its start-up rotation published), and every replica
// publishes the same set.
func checkKeys(t *testing.T, db *sqlstore.Store, replicas []*replica) {
	t.Helper()
	keys, err := db.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range keys {
		kids = append(kids, k.ID)
	}
	sort.Strings(kids)
	if len(keys) != 2 {
		t.Errorf("signing keys after the run: %d (%v), want 2 (start-up work done once, not per replica)", len(keys), kids)
	}
	for _, r := range replicas {
		res, err := probeClient.Get("http://" + r.addr + "/keys")
		if err != nil {
			t.Errorf("%s /keys: %v", r.name, err)
			continue
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, kid := range kids {
			if !strings.Contains(string(body), kid) {
				t.Errorf("%s /keys does not publish %s", r.name, kid)
			}
		}
	}
	for _, r := range replicas {
		if lines := r.logLines("key rotation failed"); len(lines) > 0 {
			t.Logf("%s: %d key rotation errors, first: %s", r.name, len(lines), lines[0])
		}
	}
	t.Logf("FIGURE: signing keys in the database after the run: %d", len(keys))
}

// checkSwept: the restarted replicas' housekeeping removed the expired
// rows, and no replica's sweep failed (deleting expired rows is one
// statement per table, so replicas sweeping at once cannot do a row's
// work twice; they can only get in each other's way, which would show
// here as a failed sweep).
func checkSwept(t *testing.T, db *sqlstore.Store, replicas []*replica) {
	t.Helper()
	var n int
	if err := db.DB().GetContext(context.Background(), &n, `SELECT count(*) FROM auth_requests WHERE id LIKE 'expired-%'`); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d expired authorization requests are still in the database after replicas restarted", n)
	}
	for _, r := range replicas {
		for _, l := range r.logLines("sweep expired rows") {
			if !strings.Contains(l, "connection refused") && !strings.Contains(l, "shutting down") {
				t.Errorf("%s: a sweep failed with the database up: %s", r.name, l)
			}
		}
	}
}

func reportLoad(t *testing.T, attempts []attempt, proxy *roundRobin, replicas []*replica, res *outcomes) {
	t.Helper()
	byFlow := map[int][]attempt{}
	for _, a := range attempts {
		byFlow[a.flow] = append(byFlow[a.flow], a)
	}
	// Each browser's and each bank server's requests rotate over the
	// replicas; a browser step and the bank's token call may meet.
	steps, moved := 0, 0
	for _, as := range byFlow {
		sort.Slice(as, func(i, j int) bool { return as[i].start.Before(as[j].start) })
		for k := 1; k < len(as); k++ {
			if as[k-1].replica >= 0 && as[k].replica >= 0 {
				steps++
				if as[k-1].replica != as[k].replica {
					moved++
				}
			}
		}
	}
	t.Logf("FIGURE: %d requests in %d flows; %d of %d consecutive steps landed on another replica; answers by replica: %v",
		len(attempts), len(byFlow), moved, steps, proxy.answered())
	for _, r := range replicas {
		n, kinds := r.errorSummary(8)
		t.Logf("%s: %d ERROR log lines", r.name, n)
		for _, k := range kinds {
			t.Logf("  %s", k)
		}
	}
}
