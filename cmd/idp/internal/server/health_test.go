package server

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// dbProxy forwards TCP to the database until cut (connections refused and
// dropped, as in a restart or failover) or hung (connections accepted and
// never answered, as behind a black-holing network).
type dbProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	hang   bool
	conns  []net.Conn
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	p := &dbProxy{t: t, target: target}
	p.listen("127.0.0.1:0", false)
	t.Cleanup(p.cut)
	return p
}

func (p *dbProxy) listen(addr string, hang bool) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.hang = ln, ln.Addr().String(), hang
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if hang {
				continue // held open, never answered, closed by cut
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// /healthz is the process, /readyz (and its old name /ready) the database:
// while PostgreSQL refuses connections or never answers, /readyz says 503
// (after at most its ping timeout, not the client's) and /healthz stays
// 200, so the orchestrator takes the replica out of the load balancer
// without restarting it; when the database is back, /readyz is 200 again.
// The change is logged once, not at every probe.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	dsn := storagetest.DSN(t, "postgres")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newDBProxy(t, u.Host)
	u.Host = proxy.addr
	_, srv, logs := openTestServer(t, u.String())
	// Cut before the server closes: a probe hung in the driver would
	// otherwise keep Close waiting, and a failure would look like a hang.
	t.Cleanup(proxy.cut)
	client := &http.Client{Timeout: 10 * time.Second}
	probe := func(path string) int {
		t.Helper()
		res, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v (a probe must answer, not hang)", path, err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	expect := func(when string, healthz, readyz int) {
		t.Helper()
		for path, want := range map[string]int{"/healthz": healthz, "/readyz": readyz, "/ready": readyz} {
			if got := probe(path); got != want {
				t.Errorf("%s: %s = %d, want %d", when, path, got, want)
			}
		}
	}

	expect("database up", http.StatusOK, http.StatusOK)
	proxy.cut()
	expect("database refusing", http.StatusOK, http.StatusServiceUnavailable)
	expect("database still refusing", http.StatusOK, http.StatusServiceUnavailable)
	proxy.listen(proxy.addr, true)
	expect("database not answering", http.StatusOK, http.StatusServiceUnavailable)
	proxy.cut()
	proxy.listen(proxy.addr, false)
	expect("database back", http.StatusOK, http.StatusOK)

	log := logs.String()
	if n := strings.Count(log, `"msg":"not ready: database unreachable"`); n != 1 {
		t.Errorf("%d not-ready lines for one outage, want 1:\n%s", n, log)
	}
	if n := strings.Count(log, `"msg":"ready: database reachable"`); n != 2 {
		t.Errorf("%d ready lines (start, recovery), want 2:\n%s", n, log)
	}
}

// On SQLite the probes answer too, with the JSON body zitadel's /ready
// had, and refuse methods a probe never sends.
func TestProbesOnSQLite(t *testing.T) {
	_, srv, _ := openTestServer(t, storagetest.DSN(t, "sqlite"))
	for _, path := range []string{"/healthz", "/readyz", "/ready"} {
		if status, body := get(t, srv.URL+path); status != http.StatusOK || body != `{"status":"ok"}`+"\n" {
			t.Errorf("GET %s = %d %q", path, status, body)
		}
		res, err := http.Post(srv.URL+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("POST %s = %d Allow %q, want 405", path, res.StatusCode, res.Header.Get("Allow"))
		}
	}
}
