package server

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// serveMetrics runs s's metrics listener on a free loopback port.
func serveMetrics(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeMetrics(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// /metrics is served on its own listener only: the public one answers it
// like any unknown path, without a line of the exposition.
func TestMetricsAreNotOnThePublicListener(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s, srv, _ := openTestServer(t, storagetest.DSN(t, flavor))
		if status, body := get(t, srv.URL+"/metrics"); status == http.StatusOK || strings.Contains(body, "go_goroutines") {
			t.Errorf("public /metrics = %d:\n%.300s", status, body)
		}
		status, body := get(t, serveMetrics(t, s)+"/metrics")
		if status != http.StatusOK {
			t.Fatalf("metrics listener /metrics = %d", status)
		}
		for _, name := range []string{
			"go_goroutines", "process_resident_memory_bytes",
			`go_sql_open_connections{db_name="idp"}`, `go_sql_wait_count_total{db_name="idp"}`,
			"idp_password_hash_slots", "idp_password_hash_queue_depth", "idp_otp_sent_total",
		} {
			if !strings.Contains(body, "\n"+name) {
				t.Errorf("/metrics has no %s", name)
			}
		}
	})
}

var routeLabel = regexp.MustCompile(`idp_http_request_duration_seconds_count\{method="([^"]*)",route="([^"]*)",status="([^"]*)"\}`)

// Latency is labelled by route template, never by the raw path: forty
// scanner paths and forty authorization request IDs in URLs make no new
// time series, while the login pages, the provider's endpoints, the
// probes and /static/ each have theirs, with the status class.
func TestLatencyIsLabelledByRouteTemplate(t *testing.T) {
	s, srv, _ := openTestServer(t, storagetest.DSN(t, "sqlite"))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	for range 40 {
		send(http.MethodGet, "/scan-"+rand.Text())
		send(http.MethodGet, "/login?authRequestID="+url.QueryEscape(rand.Text()))
	}
	send(http.MethodGet, "/.well-known/openid-configuration")
	send(http.MethodPost, "/oauth/token")
	send(http.MethodGet, "/authorize?client_id="+testClientID)
	send(http.MethodGet, "/readyz")
	send(http.MethodGet, "/static/passkey.js")

	// A handler records its latency after the client may already have the
	// whole answer (a large file is flushed before the handler returns):
	// scrape until every request is in.
	metricsURL := serveMetrics(t, s)
	want := []string{
		"GET other 4xx", "GET /login 4xx", "GET /.well-known/openid-configuration 2xx",
		"POST /oauth/token 4xx", "GET /authorize 4xx", "GET /readyz 2xx", "GET /static/ 2xx",
	}
	var (
		body    string
		got     map[string]bool
		missing []string
	)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body = get(t, metricsURL+"/metrics")
		got = map[string]bool{}
		for _, m := range routeLabel.FindAllStringSubmatch(body, -1) {
			got[m[1]+" "+m[2]+" "+m[3]] = true
		}
		missing = slices.DeleteFunc(slices.Clone(want), func(w string) bool { return got[w] })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("no series %q; have %v", missing, got)
	}
	if len(got) > 8 {
		t.Errorf("%d series for 7 routes: %v", len(got), got)
	}
	if strings.Contains(body, "scan-") {
		t.Error("a scanned path became a label value")
	}
}
