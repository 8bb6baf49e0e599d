package server

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// Every line a request logs carries its request ID: the login pages', the
// provider's and zitadel's own (through slog's default logger, which
// `idp serve` makes the server's), and the ID is the one in the response.
func TestEveryLogLineOfARequestCarriesItsID(t *testing.T) {
	s, srv, logs := openTestServer(t, storagetest.DSN(t, "sqlite"))
	prev := slog.Default()
	slog.SetDefault(s.logger)
	t.Cleanup(func() { slog.SetDefault(prev) })

	authorize := url.Values{"client_id": {testClientID}, "redirect_uri": {testRedirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}}
	requests := []struct {
		method, path, body string
		basic              bool
	}{
		{http.MethodGet, "/nope", "", false},
		{http.MethodPost, "/oauth/token", "grant_type=authorization_code&code=abc&redirect_uri=" + url.QueryEscape(testRedirect), true},
		{http.MethodGet, "/authorize?" + authorize.Encode(), "", false}, // no PKCE
		{http.MethodGet, "/authorize?client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F", "", false},
		{http.MethodGet, "/login?authRequestID=unknown", "", false},
		{http.MethodPost, "/login/passkey/login/finish", "{}", false},
		{http.MethodGet, "/userinfo", "", false},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var zitadelLines int
	for i, rq := range requests {
		before := len(logs.String())
		req, err := http.NewRequest(rq.method, srv.URL+rq.path, strings.NewReader(rq.body))
		if err != nil {
			t.Fatal(err)
		}
		if rq.body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if rq.basic {
			req.SetBasicAuth(testClientID, "wrong-secret")
		}
		var sent string
		if i%2 == 0 {
			sent = fmt.Sprintf("lb-req-%d", i)
			req.Header.Set("X-Request-ID", sent)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		id := res.Header.Get("X-Request-ID")
		if id == "" || (sent != "" && id != sent) {
			t.Fatalf("%s %s: X-Request-ID %q, sent %q", rq.method, rq.path, id, sent)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()[before:]), "\n")
		if len(lines) == 0 || lines[0] == "" {
			t.Fatalf("%s %s logged nothing; the test needs requests that log", rq.method, rq.path)
		}
		for _, line := range lines {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("not a JSON line: %q", line)
			}
			if rec["request_id"] != id {
				t.Errorf("%s %s (request %s) logged a line with request_id %v:\n%s", rq.method, rq.path, id, rec["request_id"], line)
			}
			if _, ok := rec["oidc_error"]; ok {
				zitadelLines++
			}
		}
	}
	if zitadelLines == 0 {
		t.Errorf("no line from zitadel among:\n%s", logs.String())
	}
}
