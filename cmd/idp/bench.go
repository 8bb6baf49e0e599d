package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const benchUsage = `usage: idp bench <scenario> --issuer URL [flags]

Loads an IdP you operate (never someone else's: it is an attack tool) with
complete flows, and measures this machine's crypto limits in the same run so
that each figure is a fraction of its limit. See "Measuring" in README.md.

scenarios:
  password  authorize (PKCE) → S1 「ログイン >」 → code exchange (→ refresh with --refresh)
  sso       each worker signs in once with the password (not counted), then
            authorize → token on its SSO session
  passkey   usernameless passkey login in a fresh browser each flow: authorize → S1 → S2 →
            options → assertion (pure-Go authenticator) → finish → token.
            Users of --users without a passkey in --keys are enrolled first through F1
            (S2 → S3 password → S4 OTP from the mail → S5 create passkey)
  refresh   each worker signs in once (not counted), then rotates its refresh token chain
  users     write a --users file and a CSV for "idp users import" that creates them
  crypto    only measure this machine's crypto limits
  spray     a password spray with passkey calls beside it

Run "idp bench <scenario> -h" for the flags.
`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, benchUsage)
		return usagef("bench: want a scenario (password, sso, passkey, refresh, users, crypto, spray)")
	}
	name, rest := args[0], args[1:]
	switch name {
	case "spray":
		return benchSpray(ctx, rest, stdout, stderr)
	case "users":
		return benchUsers(rest, stdout, stderr)
	case "crypto":
		return benchCrypto(ctx, rest, stdout, stderr)
	case "password", "sso", "passkey", "refresh":
		return benchFlows(ctx, name, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, benchUsage)
		return nil
	default:
		fmt.Fprint(stderr, benchUsage)
		return usagef("bench: unknown scenario %q", name)
	}
}

// flowOptions are the flags of the flow scenarios.
type flowOptions struct {
	target
	concurrency  []int
	duration     time.Duration
	flows        int
	warmup       time.Duration
	usersFile    string
	keysFile     string
	mailURL      string
	smtpListen   string
	refreshAfter bool
	metrics      string
	crypto       cryptoOptions
}

func benchFlows(ctx context.Context, scenario string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("idp bench "+scenario, stderr)
	var o flowOptions
	o.target.register(fs)
	conc := fs.String("concurrency", "4", "flows in flight at once; a comma-separated list (4,64) runs once per value and compares them")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each run measures (after the warm-up)")
	fs.IntVar(&o.flows, "flows", 0, "stop a run after this many measured flows (0: only --duration)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "flows during this first part of a run are not counted")
	fs.StringVar(&o.usersFile, "users", "", `CSV of login_id,email,password (as "idp bench users" writes); required except for passkey with --keys`)
	if scenario == "passkey" {
		fs.StringVar(&o.keysFile, "keys", "bench-passkeys.json", "the authenticator's passkeys, kept between runs (created 0600)")
		fs.StringVar(&o.mailURL, "mail", "", "the dev stack's mailbox page for enrolment OTPs (default ISSUER/dev/mail)")
		fs.StringVar(&o.smtpListen, "smtp-listen", "", "instead of --mail, receive the OTP mails on this loopback SMTP address (point the IdP's smtp at it, tls: none)")
	}
	if scenario == "password" {
		fs.BoolVar(&o.refreshAfter, "refresh", false, "end each flow with one refresh of its token (requests offline_access)")
	}
	o.crypto.register(fs)
	metrics := registerCPU(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	o.metrics = *metrics
	var err error
	if o.concurrency, err = parseConcurrency(*conc); err != nil {
		return usagef("bench %s: %v", scenario, err)
	}
	if o.duration <= 0 && o.flows <= 0 {
		return usagef("bench %s: want a positive --duration or --flows", scenario)
	}
	if o.refreshAfter || scenario == "refresh" {
		o.scope = "openid offline_access"
	}
	b, err := newBench(ctx, scenario, &o, stderr)
	if err != nil {
		return err
	}
	limits, err := o.crypto.measure(ctx)
	if err != nil {
		return err
	}
	limits.print(stdout)
	var results []*runResult
	for _, c := range o.concurrency {
		r, err := b.run(ctx, c, o.warmup, o.duration, o.flows)
		if err != nil {
			return err
		}
		r.print(stdout, scenario, b.limit(limits))
		results = append(results, r)
	}
	compareRuns(stdout, scenario, results)
	if failed := totalErrors(results); failed > 0 {
		return fmt.Errorf("bench %s: %d flows failed", scenario, failed)
	}
	return nil
}

func parseConcurrency(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 4096 {
			return nil, fmt.Errorf("--concurrency %q: want numbers from 1 to 4096, separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench is one scenario ready to run: its workers' setup (not measured)
// and its flow (measured).
type bench struct {
	t *target
	// setup prepares worker n before the clock starts (SSO sign-in, first
	// refresh token); flow is one measured flow.
	setup func(ctx context.Context, w *worker) error
	flow  func(ctx context.Context, w *worker) error
	// perFlow is the crypto one flow costs the server.
	perFlow func(l cryptoLimits, alg string) (limit float64, what string)
	users   []benchUser
	creds   []*benchCredential
	cpu     *cpuMeter
}

// worker is one simulated customer: a browser of its own, a user and,
// for passkey flows, a passkey.
type worker struct {
	n       int
	user    benchUser
	cred    *benchCredential
	browser *browser
	refresh string
}

func newBench(ctx context.Context, scenario string, o *flowOptions, stderr io.Writer) (*bench, error) {
	if err := o.target.discover(ctx); err != nil {
		return nil, err
	}
	cpu, err := newCPUMeter(ctx, o.metrics, o.timeout, stderr)
	if err != nil {
		return nil, err
	}
	b := &bench{t: &o.target, cpu: cpu}
	if o.usersFile != "" {
		users, err := readBenchUsers(o.usersFile)
		if err != nil {
			return nil, err
		}
		b.users = users
	}
	if b.users == nil && scenario != "passkey" {
		return nil, usagef("bench %s: --users FILE is required (see idp bench users)", scenario)
	}
	signIn := func(ctx context.Context, w *worker) error {
		w.browser = b.t.newBrowser(w.n)
		tok, err := passwordFlow(ctx, w.browser, w.user)
		if err != nil {
			return err
		}
		w.refresh = tok.RefreshToken
		return nil
	}
	switch scenario {
	case "password":
		b.flow = func(ctx context.Context, w *worker) error {
			tok, err := passwordFlow(ctx, b.t.newBrowser(w.n), w.user)
			if err == nil && o.refreshAfter {
				_, err = b.t.refresh(ctx, w.n, tok.RefreshToken)
			}
			return err
		}
		b.perFlow = func(l cryptoLimits, alg string) (float64, string) {
			signs := 1
			if o.refreshAfter {
				signs = 2
			}
			return serial(l.argon2id, l.sign(alg)/float64(signs)),
				fmt.Sprintf("one argon2id hash and %d %s signature(s) per flow", signs, alg)
		}
	case "sso":
		b.setup = signIn
		b.flow = func(ctx context.Context, w *worker) error { return ssoFlow(ctx, w.browser) }
		b.perFlow = func(l cryptoLimits, alg string) (float64, string) {
			return l.sign(alg), "one " + alg + " signature per flow"
		}
	case "refresh":
		b.setup = func(ctx context.Context, w *worker) error {
			if err := signIn(ctx, w); err != nil {
				return err
			}
			if w.refresh == "" {
				return &flowError{step: "POST token", kind: "protocol", detail: "no refresh_token: is offline_access among the client's scopes?"}
			}
			return nil
		}
		b.flow = func(ctx context.Context, w *worker) error {
			tok, err := b.t.refresh(ctx, w.n, w.refresh)
			if err != nil {
				return err
			}
			w.refresh = tok.RefreshToken
			return nil
		}
		b.perFlow = func(l cryptoLimits, alg string) (float64, string) {
			return l.sign(alg), "one " + alg + " signature per flow"
		}
	case "passkey":
		creds, err := preparePasskeys(ctx, b.t, o, b.users, stderr)
		if err != nil {
			return nil, err
		}
		b.creds = creds
		b.flow = func(ctx context.Context, w *worker) error {
			return passkeyFlow(ctx, b.t.newBrowser(w.n), w.cred)
		}
		b.perFlow = func(l cryptoLimits, alg string) (float64, string) {
			return serial(l.p256Verify, l.sign(alg)), "one P-256 verification and one " + alg + " signature per flow"
		}
	}
	return b, nil
}

// serial is the rate of a flow that needs both operations, one after the
// other, on the same CPUs.
func serial(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}

// limit binds the scenario's crypto cost to the measured limits and the
// algorithm the IdP actually signs with.
func (b *bench) limit(l *cryptoLimits) func() (float64, string) {
	return func() (float64, string) {
		if l == nil {
			return 0, ""
		}
		return b.perFlow(*l, b.t.signingAlg())
	}
}

// runResult is one run at one concurrency.
type runResult struct {
	concurrency int
	flows       int
	elapsed     time.Duration
	latency     []time.Duration
	errors      map[string]int
	examples    map[string]string
	load        string
	cpu         *cpuUse // nil when the window's CPU was not sampled
}

// run starts c workers, each doing its setup and then flows back to back
// until the warm-up plus duration are over (or flows were measured).
// Flows that start during the warm-up are not counted.
func (b *bench) run(ctx context.Context, c int, warmup, duration time.Duration, maxFlows int) (*runResult, error) {
	if b.users == nil && b.creds == nil {
		return nil, errors.New("bench: no users")
	}
	r := &runResult{concurrency: c, errors: map[string]int{}, examples: map[string]string{}}
	var mu sync.Mutex
	fail := func(err error) {
		k, detail := errorKind(err)
		mu.Lock()
		r.errors[k]++
		if _, ok := r.examples[k]; !ok && detail != "" {
			r.examples[k] = detail
		}
		mu.Unlock()
	}
	workers := make([]*worker, c)
	for i := range workers {
		w := &worker{n: i}
		if len(b.users) > 0 {
			w.user = b.users[i%len(b.users)]
		}
		if len(b.creds) > 0 {
			w.cred = b.creds[i%len(b.creds)]
		}
		workers[i] = w
	}
	// Setup runs in parallel too, but before the clock starts.
	ready := make([]bool, c)
	var wg sync.WaitGroup
	sem := make(chan struct{}, min(c, 4))
	for i, w := range workers {
		if b.setup == nil {
			ready[i] = true
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Setup is not measured, so it waits out a busy server.
			for try := 0; ; try++ {
				err := b.setup(ctx, w)
				if err == nil {
					ready[i] = true
					return
				}
				var fe *flowError
				if try == 30 || !errors.As(err, &fe) || fe.retryAfter == 0 || !sleepCtx(ctx, fe.retryAfter) {
					fail(fmt.Errorf("setup: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	start := time.Now()
	measureFrom := start.Add(warmup)
	stopAt := measureFrom.Add(duration)
	if duration <= 0 {
		stopAt = time.Now().Add(24 * time.Hour) // --flows alone
	}
	// The CPU counters are read when the measured window opens and once
	// every flow has ended, so warm-up flows are not charged to the run.
	label := fmt.Sprintf("c=%d", c)
	var before *cpuSample
	sampled := make(chan struct{})
	if warmup <= 0 {
		before = b.cpu.sample(ctx, label, nil)
		close(sampled)
	} else {
		go func() {
			defer close(sampled)
			if sleepCtx(ctx, time.Until(measureFrom)) {
				before = b.cpu.sample(ctx, label, nil)
			}
		}()
	}
	var last time.Time
	for i, w := range workers {
		if !ready[i] {
			continue
		}
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stopAt) {
				if maxFlows > 0 {
					mu.Lock()
					done := r.flows >= maxFlows
					mu.Unlock()
					if done {
						return
					}
				}
				t0 := time.Now()
				err := b.flow(ctx, w)
				end := time.Now()
				if t0.Before(measureFrom) {
					var fe *flowError
					if errors.As(err, &fe) && fe.retryAfter > 0 {
						sleepCtx(ctx, min(fe.retryAfter, 5*time.Second))
					}
					continue
				}
				if err != nil {
					fail(err)
					// A worker told to wait does, as a customer would;
					// retrying at once would measure the bench's own loop.
					var fe *flowError
					if errors.As(err, &fe) && fe.retryAfter > 0 {
						sleepCtx(ctx, min(fe.retryAfter, time.Until(stopAt), 5*time.Second))
					}
					continue
				}
				mu.Lock()
				r.flows++
				r.latency = append(r.latency, end.Sub(t0))
				if end.After(last) {
					last = end
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	<-sampled
	if before != nil && ctx.Err() == nil {
		r.cpu = b.cpu.use(before, b.cpu.sample(ctx, label, before))
	}
	if last.After(measureFrom) {
		r.elapsed = last.Sub(measureFrom)
	}
	r.load = loadAverage()
	return r, ctx.Err()
}

// sleepCtx waits d unless ctx ends first; it reports whether it waited.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.flows) / r.elapsed.Seconds()
}

func (r *runResult) failed() int {
	n := 0
	for _, v := range r.errors {
		n += v
	}
	return n
}

func (r *runResult) print(w io.Writer, scenario string, limit func() (float64, string)) {
	ms := func(p float64) string { return fmtDuration(percentile(r.latency, p)) }
	fmt.Fprintf(w, "%s c=%d: %d flows in %v = %.1f flows/s; latency p50 %s p95 %s p99 %s max %s; errors %d; load average %s\n",
		scenario, r.concurrency, r.flows, r.elapsed.Round(time.Millisecond), r.rate(),
		ms(0.50), ms(0.95), ms(0.99), ms(1), r.failed(), r.load)
	kinds := make([]string, 0, len(r.errors))
	for k := range r.errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		line := fmt.Sprintf("  error %s: %d", k, r.errors[k])
		if ex := r.examples[k]; ex != "" {
			line += " (e.g. " + ex + ")"
		}
		fmt.Fprintln(w, line)
	}
	if lim, what := limit(); lim > 0 {
		fmt.Fprintf(w, "  %.1f flows/s is %.1f%% of the crypto limit %.1f/s (%s)\n", r.rate(), 100*r.rate()/lim, lim, what)
	}
	r.cpu.print(w, r.flows)
}

// compareRuns prints the no-collapse figures: the throughput of the
// highest concurrency against the lowest, and its tail against its median.
func compareRuns(w io.Writer, scenario string, rs []*runResult) {
	if len(rs) < 2 {
		return
	}
	lo, hi := rs[0], rs[0]
	for _, r := range rs {
		if r.concurrency < lo.concurrency {
			lo = r
		}
		if r.concurrency > hi.concurrency {
			hi = r
		}
	}
	if lo == hi || lo.rate() == 0 {
		return
	}
	p50, p99 := percentile(hi.latency, 0.5), percentile(hi.latency, 0.99)
	tail := 0.0
	if p50 > 0 {
		tail = float64(p99) / float64(p50)
	}
	fmt.Fprintf(w, "%s c=%d vs c=%d: flows/s ratio %.2f (goal ≥ 0.9); p99/p50 at c=%d %.1f (goal ≤ 5)\n",
		scenario, hi.concurrency, lo.concurrency, hi.rate()/lo.rate(), hi.concurrency, tail)
}

func totalErrors(rs []*runResult) int {
	n := 0
	for _, r := range rs {
		n += r.failed()
	}
	return n
}

// loadAverage is the 1, 5 and 15 minute load of this machine, since the
// figures mean little on a machine busy with something else.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// rssKiB reads a memory line of /proc/PID/status; 0 without a PID.
func rssKiB(pid int, field string) int64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
