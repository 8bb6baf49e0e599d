package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/cmd/idp/internal/telemetry"
	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/storagetest"
)

const (
	benchSecret   = "bench-secret-0123456789"
	benchRedirect = "https://bench.invalid/callback"
)

// benchStack is the dev stack with a confidential client for the bench,
// and the import CLI on its database.
func benchStack(t *testing.T, flavor string) (*devstack.Stack, *cli) {
	t.Helper()
	hash, err := op.HashClientSecret(benchSecret)
	if err != nil {
		t.Fatal(err)
	}
	dsn := storagetest.DSN(t, flavor)
	st, err := devstack.Start(context.Background(), devstack.Options{
		DataDir: t.TempDir(), Database: dsn, IdPAddr: "127.0.0.1:0", RPAddr: "127.0.0.1:0", FastHashes: true,
		ExtraClients: []config.Client{{ID: "bench", SecretHash: hash, RedirectURIs: []string{benchRedirect}}},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(st.Close)
	return st, &cli{t: t, config: writeConfig(t, dsn), store: storagetest.Open(t, dsn)}
}

// benchUsersFor writes n users with the stack's fast hashes and imports
// them through the support CLI, the documented path.
func benchUsersFor(t *testing.T, c *cli, prefix string, n int) string {
	t.Helper()
	dir := t.TempDir()
	users, imp := filepath.Join(dir, "users.csv"), filepath.Join(dir, "import.csv")
	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"bench", "users", "--count", strconv.Itoa(n), "--prefix", prefix,
		"--out", users, "--import", imp, "--memory-kib", "64", "--iterations", "1", "--parallelism", "1"}, nil, &out, &errOut)
	if err != nil {
		t.Fatalf("bench users: %v\n%s", err, errOut.String())
	}
	if fi, err := os.Stat(users); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users file %v (%v), want mode 0600: it holds passwords", fi, err)
	}
	got := c.ok("users", "import", imp)
	if !strings.Contains(got, "created "+strconv.Itoa(n)) {
		t.Fatalf("import: %s", got)
	}
	return users
}

// benchRun runs one bench command against st and returns its output.
func benchRun(t *testing.T, st *devstack.Stack, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	base := []string{"bench", args[0], "--issuer", st.IdPURL, "--client-id", "bench", "--client-secret", benchSecret,
		"--redirect-uri", benchRedirect, "--timeout", "20s", "--crypto-time", "30ms", "--crypto-cpus", "1", "--argon2id", "m=64,t=1,p=1"}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err = run(ctx, append(base, args[1:]...), nil, &out, &errOut)
	return out.String(), errOut.String(), err
}

var (
	runLine    = regexp.MustCompile(`(?m)^(\w+) c=(\d+): (\d+) flows in \S+ = ([\d.]+) flows/s; latency p50 (\S+) p95 \S+ p99 \S+ max \S+; errors (\d+); load average [\d. ]+$`)
	cryptoLine = regexp.MustCompile(`RS256 sign (\d+)/s, ES256 sign (\d+)/s, P-256 verify (\d+)/s, argon2id \(m=64,t=1,p=1\) ([\d.]+)/s`)
	shareLine  = regexp.MustCompile(`(?m)^  [\d.]+ flows/s is [\d.]+% of the crypto limit [\d.]+/s \(`)

	serverLine    = regexp.MustCompile(`(?m)^  server CPU ([\d.]+) ms per flow \(summed over (\d+) replica\(s\), [\d.]+ cores busy\); server capacity ([\d.]+) flows per server CPU-second$`)
	generatorLine = regexp.MustCompile(`(?m)^  generator CPU [\d.]+ ms per flow \(this bench process, [\d.]+ cores busy\)$`)
	otherLine     = regexp.MustCompile(`(?m)^  other processes \(([^)]*)\)(?: CPU [\d.]+ ms per flow; the machine's total [\d.]+ ms per flow \([\d.]+ cores busy\)|: none measured, .*)$`)
)

// checkRuns asserts that every run of the output measured flows without
// an error, and that the crypto limits and shares were printed.
func checkRuns(t *testing.T, scenario, out string, runs int) {
	t.Helper()
	t.Log("\n" + out)
	m := cryptoLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no crypto limits in:\n%s", out)
	}
	for _, v := range m[1:] {
		if f, _ := strconv.ParseFloat(v, 64); f <= 0 {
			t.Errorf("a crypto limit is %s: %s", v, m[0])
		}
	}
	got := runLine.FindAllStringSubmatch(out, -1)
	if len(got) != runs {
		t.Fatalf("%d run lines, want %d:\n%s", len(got), runs, out)
	}
	for _, r := range got {
		flows, _ := strconv.Atoi(r[3])
		rate, _ := strconv.ParseFloat(r[4], 64)
		p50, err := time.ParseDuration(r[5])
		if r[1] != scenario || flows == 0 || rate <= 0 || err != nil || p50 <= 0 || r[6] != "0" {
			t.Errorf("run %q: want %s with flows, a rate, a median and no errors\n%s", r[0], scenario, out)
		}
	}
	if n := len(shareLine.FindAllString(out, -1)); n != runs {
		t.Errorf("%d crypto-share lines, want %d:\n%s", n, runs, out)
	}
	if _, ok := selfCPU(); ok {
		if n := len(generatorLine.FindAllString(out, -1)); n != runs {
			t.Errorf("%d generator CPU lines, want %d:\n%s", n, runs, out)
		}
	}
}

func TestBenchScenariosOnDevStack(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := benchStack(t, flavor)
		pwUsers := benchUsersFor(t, c, "bpw-", 2)
		pkUsers := benchUsersFor(t, c, "bpk-", 2)
		// A count, not a duration: on a loaded machine a password flow can take
		// longer than a second, and the test is about the counting, not speed.
		timed := []string{"--concurrency", "2", "--flows", "6", "--warmup", "0s"}

		for _, sc := range []string{"password", "sso", "refresh"} {
			t.Run(sc, func(t *testing.T) {
				out, errOut, err := benchRun(t, st, append([]string{sc, "--users", pwUsers}, timed...)...)
				if err != nil {
					t.Fatalf("bench %s: %v\n%s\n%s", sc, err, out, errOut)
				}
				checkRuns(t, sc, out, 1)
			})
		}

		// The passkey scenario enrols its users through F1 first, reading
		// the OTP from the dev mailbox page, and keeps the keys. The
		// ceremony limit per address (120 a minute) bounds this run.
		keys := filepath.Join(t.TempDir(), "passkeys.json")
		out, errOut, err := benchRun(t, st, "passkey", "--users", pkUsers, "--keys", keys,
			"--concurrency", "1,2", "--flows", "8", "--duration", "0", "--warmup", "0")
		if err != nil {
			t.Fatalf("bench passkey: %v\n%s\n%s", err, out, errOut)
		}
		if !strings.Contains(errOut, "enrolled 2 passkeys") {
			t.Errorf("no enrolment reported:\n%s", errOut)
		}
		checkRuns(t, "passkey", out, 2)
		if !regexp.MustCompile(`passkey c=2 vs c=1: flows/s ratio [\d.]+ \(goal ≥ 0.9\); p99/p50 at c=2 [\d.]+ \(goal ≤ 5\)`).MatchString(out) {
			t.Errorf("no comparison of the two concurrencies:\n%s", out)
		}
		for _, u := range []string{"bpk-0001", "bpk-0002"} {
			usr, err := c.store.UserByLoginID(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := c.store.CountCredentials(t.Context(), usr.ID); n != 1 {
				t.Errorf("%s has %d passkeys, want the 1 enrolled", u, n)
			}
		}
		if fi, err := os.Stat(keys); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("keys file %v (%v), want mode 0600", fi, err)
		}
		before, _ := os.ReadFile(keys)

		// A later run reuses the passkeys: no enrolment, the file unchanged.
		out, errOut, err = benchRun(t, st, "passkey", "--keys", keys, "--concurrency", "2", "--flows", "6", "--duration", "0", "--warmup", "0")
		if err != nil {
			t.Fatalf("bench passkey again: %v\n%s\n%s", err, out, errOut)
		}
		checkRuns(t, "passkey", out, 1)
		if strings.Contains(errOut, "enrol") {
			t.Errorf("second run enrolled again:\n%s", errOut)
		}
		if after, _ := os.ReadFile(keys); !bytes.Equal(before, after) {
			t.Error("second run rewrote the keys file")
		}
	})
}

// A failing step is counted by its request and status, and the run fails:
// a bench that hid errors would report flows/s of nothing.
func TestBenchCountsErrorsByStep(t *testing.T) {
	st, c := benchStack(t, "sqlite")
	users := benchUsersFor(t, c, "bpw-", 1)
	out, errOut, err := benchRun(t, st, "password", "--users", users, "--client-secret", "not-the-secret",
		"--concurrency", "1", "--duration", "300ms", "--warmup", "0")
	if err == nil {
		t.Fatalf("a run whose every code exchange failed succeeded:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^password c=1: 0 flows .* errors [1-9]\d*;`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^  error POST token HTTP 40[01]: [1-9]`).MatchString(out) {
		t.Errorf("want the failed token step counted:\n%s\n%s", out, errOut)
	}
}

// The bench's own SMTP sink decodes what the IdP's sender writes.
func TestBenchSMTPSinkReadsTheOTP(t *testing.T) {
	mb, err := listenSMTP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mb.close()
	host, port, _ := net.SplitHostPort(mb.addr)
	p, _ := strconv.Atoi(port)
	s := &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: "info@jsfnet.com"}
	if n, _ := mb.count(t.Context(), "A@example.com"); n != 0 {
		t.Fatalf("count before any mail = %d", n)
	}
	for _, code := range []string{"123456", "654321"} {
		body := "ワンタイムパスワード: " + code + "\n有効期限は10分です。"
		if err := s.Send(t.Context(), mail.Message{To: "a@example.com", Subject: "【コムストックローン】ワンタイムパスワードのお知らせ", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := mb.wait(t.Context(), "A@example.com", 1)
	if err != nil || got != "654321" {
		t.Errorf("second code = %q, %v; want 654321", got, err)
	}
}

// benchMetrics serves the stack's metrics listener, as metrics_listen
// does, and returns its /metrics URL.
func benchMetrics(t *testing.T, st *devstack.Stack) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Server.ServeMetrics(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

// gatheredCPU is the process collector's figure, read without the text
// format in between.
func gatheredCPU(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == cpuMetric && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("the telemetry registry gathers no %s", cpuMetric)
	return 0
}

// The parser reads what the server's own registry serves: the figure lies
// between the registry's counter gathered just before and just after.
func TestBenchReadsProcessCPUFromTheTelemetryRegistry(t *testing.T) {
	// Move the counter off zero (its unit is a clock tick).
	for sum := sha256.Sum256(nil); ; sum = sha256.Sum256(sum[:]) {
		if d, ok := selfCPU(); !ok || d > 50*time.Millisecond {
			break
		}
	}
	reg := telemetry.NewRegistry()
	srv := httptest.NewServer(telemetry.Handler(reg, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	m, err := newCPUMeter(t.Context(), srv.URL+"/metrics", 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	lo := gatheredCPU(t, reg)
	got, err := m.scrape(t.Context(), srv.URL+"/metrics")
	hi := gatheredCPU(t, reg)
	if err != nil || got <= 0 || got < lo || got > hi {
		t.Errorf("scraped %s = %v, %v; want a positive figure between %v and %v", cpuMetric, got, err, lo, hi)
	}
	if !m.replicas[0].local {
		t.Errorf("%s is not seen as on this machine", srv.URL)
	}

	// And it refuses what it cannot sum honestly.
	for name, text := range map[string]string{
		"missing":     "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_totals 3\ngo_goroutines 7\n",
		"two":         "process_cpu_seconds_total{pod=\"a\"} 1\nprocess_cpu_seconds_total{pod=\"b\"} 2\n",
		"negative":    "process_cpu_seconds_total -1\n",
		"not finite":  "process_cpu_seconds_total +Inf\n",
		"not number":  "process_cpu_seconds_total 1,5\n",
		"extra field": "process_cpu_seconds_total 1 2 3\n",
		"labels open": "process_cpu_seconds_total{pod=\"a\" 1\n",
	} {
		if v, err := processCPUSeconds(strings.NewReader(text)); err == nil {
			t.Errorf("%s: read %v from %q", name, v, text)
		}
	}
	if v, err := processCPUSeconds(strings.NewReader("# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total{a=\"}\"} 12.5 1700000000000\n")); err != nil || v != 12.5 {
		t.Errorf("labelled sample with a timestamp = %v, %v; want 12.5", v, err)
	}
}

// With the replica's metrics, each run charges the server's CPU to its
// flows. The stack runs in this test's process, so the figure includes the
// generator's; it is only asserted positive.
func TestBenchReportsServerCPUPerFlow(t *testing.T) {
	st, c := benchStack(t, "sqlite")
	users := benchUsersFor(t, c, "bpw-", 2)
	// 30 flows are 30 signatures at least: the counter moves by ticks.
	out, errOut, err := benchRun(t, st, "password", "--users", users, "--metrics", benchMetrics(t, st),
		"--concurrency", "2", "--flows", "30", "--warmup", "0s")
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out, errOut)
	}
	checkRuns(t, "password", out, 1)
	m := serverLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no server CPU line:\n%s\n%s", out, errOut)
	}
	ms, _ := strconv.ParseFloat(m[1], 64)
	capacity, _ := strconv.ParseFloat(m[3], 64)
	if ms <= 0 || capacity <= 0 || m[2] != "1" {
		t.Errorf("server CPU %v ms per flow over %s replicas, capacity %v: want positive figures of 1 replica", ms, m[2], capacity)
	}
	if _, ok := machineCPU(); ok {
		if o := otherLine.FindStringSubmatch(out); o == nil || o[1] != "e.g. the database, when on this machine" {
			t.Errorf("no other-processes line for a fully read server:\n%s", out)
		}
	}
	if errOut != "" {
		t.Errorf("stderr with every scrape answered:\n%s", errOut)
	}
}

// A replica that cannot be read is one line on stderr per run, and the
// run still reports; the server's figure is left out, since a sum over
// fewer replicas would flatter it.
func TestBenchMetricsScrapeFailureIsOneLine(t *testing.T) {
	st, c := benchStack(t, "sqlite")
	users := benchUsersFor(t, c, "bpw-", 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/metrics"
	ln.Close()
	public := st.IdPURL + "/metrics" // answers, but not with metrics
	out, errOut, err := benchRun(t, st, "password", "--users", users, "--metrics", benchMetrics(t, st)+","+down+","+public,
		"--concurrency", "1,2", "--flows", "4", "--duration", "0", "--warmup", "0s")
	if err != nil {
		t.Fatalf("a failed scrape failed the bench: %v\n%s\n%s", err, out, errOut)
	}
	checkRuns(t, "password", out, 2)
	for _, u := range []string{down, public} {
		re := regexp.MustCompile(`(?m)^bench c=\d: --metrics ` + regexp.QuoteMeta(u) + `: .+; no server CPU for this run$`)
		if n := len(re.FindAllString(errOut, -1)); n != 2 {
			t.Errorf("%d lines about %s, want one per run:\n%s", n, u, errOut)
		}
		for _, line := range re.FindAllString(errOut, -1) {
			if strings.Count(line, u) != 1 {
				t.Errorf("the URL more than once: %s", line)
			}
		}
	}
	if n := strings.Count(errOut, "\n"); n != 4 {
		t.Errorf("%d stderr lines, want 4:\n%s", n, errOut)
	}
	if serverLine.MatchString(out) {
		t.Errorf("a server CPU figure from some of the replicas:\n%s", out)
	}
	if _, ok := machineCPU(); ok {
		for _, o := range otherLine.FindAllStringSubmatch(out, -1) {
			if !strings.HasPrefix(o[1], "the server too") {
				t.Errorf("the remainder claims the server was subtracted: %s", o[0])
			}
		}
	}
}
