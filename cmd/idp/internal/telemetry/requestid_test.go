package telemetry

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A request ID a client sends is taken only when it cannot forge or bloat
// log lines; anything else is replaced by a fresh one, and the response
// says which ID the request got.
func TestRequestIDAcceptsOnlySaneIDs(t *testing.T) {
	var seen string
	h := RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestIDFrom(r.Context())
	}))
	generated := func(id string) bool {
		return len(id) == 32 && strings.Trim(id, "0123456789abcdef") == ""
	}
	for _, tc := range []struct {
		sent string
		keep bool
	}{
		{"", false},
		{"lb-7f3a.2_x", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"abc\ndef", false},
		{`abc" level=ERROR msg="forged`, false},
		{"id with spaces", false},
		{"ütf8", false},
		{"a=b", false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.sent != "" {
			req.Header.Set(HeaderRequestID, tc.sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get(HeaderRequestID)
		if got != seen {
			t.Errorf("sent %q: header %q but context %q", tc.sent, got, seen)
		}
		if tc.keep && got != tc.sent {
			t.Errorf("sent %q: got %q, want it kept", tc.sent, got)
		}
		if !tc.keep && !generated(got) {
			t.Errorf("sent %q: got %q, want a generated 32-hex-digit ID", tc.sent, got)
		}
	}
	a, b := httptest.NewRecorder(), httptest.NewRecorder()
	h.ServeHTTP(a, httptest.NewRequest(http.MethodGet, "/", nil))
	h.ServeHTTP(b, httptest.NewRequest(http.MethodGet, "/", nil))
	if a.Header().Get(HeaderRequestID) == b.Header().Get(HeaderRequestID) {
		t.Error("two requests got the same generated ID")
	}
}

// Every line logged with the request's context carries request_id, through
// a logger derived with With as well as through slog's default logger
// (zitadel's); a line without a request context has none.
func TestLogHandlerAddsTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil)))
	ctx := WithRequestID(t.Context(), "req-1")
	logger.InfoContext(ctx, "direct")
	logger.With("component", "op").WarnContext(ctx, "derived", "k", "v")
	slog.New(logger.Handler()).Log(ctx, slog.LevelError, "zitadel style")
	logger.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		want := "req-1"
		if i == 3 {
			want = ""
		}
		if got, _ := rec["request_id"].(string); got != want {
			t.Errorf("line %q: request_id %q, want %q", line, got, want)
		}
	}
}
