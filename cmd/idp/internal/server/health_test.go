package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// /healthz is the process, /readyz (and its old name /ready) the database:
// while PostgreSQL refuses connections or never answers, /readyz says 503
// (after at most its ping timeout, not the client's) and /healthz stays
// 200, so the orchestrator takes the replica out of the load balancer
// without restarting it; when the database is back, /readyz is 200 again.
// The change is logged once, not at every probe.
func TestReadyzFollowsTheDatabase(t *testing.T) {
	dsn, proxy := storagetest.PostgresBehindProxy(t)
	_, srv, logs := openTestServer(t, dsn)
	// Cut before the server closes: a probe hung in the driver would
	// otherwise keep Close waiting, and a failure would look like a hang.
	t.Cleanup(proxy.Cut)
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
	proxy.Cut()
	expect("database refusing", http.StatusOK, http.StatusServiceUnavailable)
	expect("database still refusing", http.StatusOK, http.StatusServiceUnavailable)
	proxy.Hang()
	expect("database not answering", http.StatusOK, http.StatusServiceUnavailable)
	proxy.Resume()
	// The ping that hung may still be in flight (one at a time, the
	// others answer 503 meanwhile) until the driver gives up on it: the
	// probe comes back once it has, not necessarily on the first call.
	for deadline := time.Now().Add(15 * time.Second); probe("/readyz") != http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
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
