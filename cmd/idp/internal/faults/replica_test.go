package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildIdP compiles the real binary once, so that replicas are processes
// that kill -9 and SIGTERM reach like in production.
func buildIdP(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "idp")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/comstockloan/idp/cmd/idp")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// deployment is what every replica's config file shares.
type deployment struct {
	issuer     string
	database   string
	smtpAddr   string
	secretHash string
}

// configFor writes the config of one replica: the shared deployment plus
// its own listen address.
func (d deployment) configFor(t *testing.T, dir, listen string) string {
	t.Helper()
	smtpHost, smtpPort, err := net.SplitHostPort(d.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	// webauthn: four workers enrol far faster than customers do, from
	// few addresses; the per-address ceremony limit is not under test.
	// keys: a rotation period only a hair longer than the publish delay
	// makes the first replica's start-up rotation publish a successor at
	// once, so the key table shows whether start-up work was done once
	// (two keys) or by every replica.
	body := fmt.Sprintf(`issuer: %s
listen: %s
database: %q
crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
trust_proxy_headers: true
smtp: {host: %s, port: %s, tls: none}
webauthn: {max_calls_per_address: 100000}
otp: {resend_interval: 1s, max_sends_per_hour: 50}
password: {hash_queue: 32, hash_max_wait: 10s}
keys: {rotation_period: 1h, publish_delay: 59m59.999999s}
clients:
  - id: %s
    secret_hash: %q
    redirect_uris: [%s]
`, d.issuer, listen, d.database, smtpHost, smtpPort, bankClientID, d.secretHash, bankRedirect)
	path := filepath.Join(dir, "idp-"+strings.ReplaceAll(listen, ":", "-")+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// replica is one `idp serve` process, restartable on the same address.
type replica struct {
	t      *testing.T
	name   string
	addr   string
	bin    string
	config string
	log    string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

func newReplica(t *testing.T, name, bin, dir string, d deployment) *replica {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := &replica{t: t, name: name, addr: addr, bin: bin, config: d.configFor(t, dir, addr), log: filepath.Join(dir, name+".log")}
	t.Cleanup(func() {
		r.mu.Lock()
		cmd, exited := r.cmd, r.exited
		r.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return r
}

// start runs the process; its log is appended to r.log across restarts.
func (r *replica) start() {
	r.t.Helper()
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	fmt.Fprintf(f, "%s%s at %s\n", startMarker, r.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, "serve", "--config", r.config)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		r.t.Fatalf("start %s: %v", r.name, err)
	}
	exited := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.exited, r.waitErr = cmd, exited, nil
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		f.Close()
		r.mu.Lock()
		r.waitErr = err
		if r.cmd == cmd {
			r.cmd = nil
		}
		r.mu.Unlock()
		close(exited)
	}()
}

// kill is kill -9: no drain, no deferred cleanup in the process.
func (r *replica) kill() {
	r.t.Helper()
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatalf("%s is not running", r.name)
	}
	_ = cmd.Process.Kill()
	<-exited
}

// terminate sends SIGTERM and returns the channel closed at exit.
func (r *replica) terminate() <-chan struct{} {
	r.t.Helper()
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		r.t.Fatalf("%s is not running", r.name)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM %s: %v", r.name, err)
	}
	return exited
}

// exitErr is the result of the last process's Wait.
func (r *replica) exitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waitErr
}

func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

var probeClient = &http.Client{Timeout: 2 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// probe answers the status of GET path on this replica directly (not
// through the proxy), 0 when it does not answer at all.
func (r *replica) probe(path string) int {
	res, err := probeClient.Get("http://" + r.addr + path)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// waitReady polls the readiness endpoints until one answers 200 and
// returns how long that took, failing the test after limit.
func (r *replica) waitReady(paths []string, limit time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	ready := func() bool {
		for _, p := range paths {
			if r.probe(p) == http.StatusOK {
				return true
			}
		}
		return false
	}
	for !ready() {
		if time.Since(start) > limit {
			r.t.Fatalf("%s not ready after %s; log:\n%s", r.name, limit, r.logTail(40))
		}
		if !r.running() {
			r.t.Fatalf("%s exited while starting (%v); log:\n%s", r.name, r.exitErr(), r.logTail(40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// logTail is the end of the replica's log, for failure messages.
func (r *replica) logTail(lines int) string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return err.Error()
	}
	all := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// logLines are the lines of the replica's log that contain every one of
// the words.
func (r *replica) logLines(words ...string) []string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
next:
	for _, l := range strings.Split(string(b), "\n") {
		for _, w := range words {
			if !strings.Contains(l, w) {
				continue next
			}
		}
		out = append(out, l)
	}
	return out
}

// startMarker begins the line the test writes into a replica's log at
// each start; the summary skips it.
const startMarker = "=== faults test: start "

// errorSummary is errorLogSummary of the replica's log.
func (r *replica) errorSummary(max int) (n int, kinds []string) {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return 1, []string{err.Error()}
	}
	return errorLogSummary(b, max)
}

// errorLogSummary counts the ERROR records of a replica's log (serve logs
// one JSON object a line) and returns up to max distinct "msg: err" texts
// of them. A line that is not a JSON record (a panic's trace, the exit
// message the command prints) counts as an error too: it is what a reader
// of the summary must see first.
func errorLogSummary(log []byte, max int) (n int, kinds []string) {
	seen := map[string]bool{}
	for _, l := range bytes.Split(log, []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 || bytes.HasPrefix(l, []byte(startMarker)) {
			continue
		}
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Err   string `json:"err"`
		}
		text := ""
		switch err := json.Unmarshal(l, &rec); {
		case err != nil:
			text = "not a JSON record: " + string(l)
		case rec.Level == slog.LevelError.String():
			text = rec.Msg
			if rec.Err != "" {
				text += ": " + rec.Err
			}
		default:
			continue
		}
		n++
		text = truncate(text, 200)
		if !seen[text] && len(kinds) < max {
			seen[text] = true
			kinds = append(kinds, text)
		}
	}
	return n, kinds
}

// exitCode is the status the last process exited with (-1 for a signal).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
