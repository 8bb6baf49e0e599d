package server

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/telemetry"
	"github.com/comstockloan/idp/op"
)

const (
	testClientID     = "web"
	testClientSecret = "web-secret-0123456789"
	testRedirect     = "http://localhost:3000/cb"
)

// logBuffer collects the server's log lines while it serves.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openTestServer assembles the whole IdP on dsn, logging JSON at debug
// level through the request-ID handler into the returned buffer, and
// serves its public handler on an httptest server.
func openTestServer(t *testing.T, dsn string) (*Server, *httptest.Server, *logBuffer) {
	t.Helper()
	return openTestServerWith(t, dsn, func(*config.Config) {})
}

// openTestServerWith is openTestServer with the configuration changed by
// edit before its defaults and validation.
func openTestServerWith(t *testing.T, dsn string, edit func(*config.Config)) (*Server, *httptest.Server, *logBuffer) {
	t.Helper()
	hash, err := op.HashClientSecret(testClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Issuer:    "http://localhost:8080",
		Database:  dsn,
		CryptoKey: "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		SMTP:      config.SMTP{Host: "127.0.0.1", Port: 25, TLS: "none"},
		Clients:   []config.Client{{ID: testClientID, SecretHash: hash, RedirectURIs: []string{testRedirect}}},
	}
	edit(cfg)
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := slog.New(telemetry.LogHandler(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s, err := Open(context.Background(), cfg, logger, Options{})
	if err != nil {
		t.Fatalf("open server: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	return s, srv, logs
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}
