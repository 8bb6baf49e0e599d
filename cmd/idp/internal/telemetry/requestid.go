package telemetry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// HeaderRequestID carries the request ID in both directions: a proxy in
// front may send one, and every answer says which one this request got.
const HeaderRequestID = "X-Request-ID"

// maxRequestIDLen bounds an accepted ID; a longer one is replaced, not
// truncated, so a log line never carries more of it than we chose to keep.
const maxRequestIDLen = 64

type requestIDKey struct{}

// RequestID gives every request an ID: the caller's X-Request-ID when it
// is short and made of safe characters (a load balancer's own ID keeps
// its traces joinable with ours), else 16 random bytes in hex. The ID goes
// into the request's context, for the log handler, and into the response
// header, so a customer's support call can quote it.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !acceptableRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request ID in ctx, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// acceptableRequestID: 1 to 64 of [A-Za-z0-9._-]. Anything else could
// forge log structure (newlines, quotes) or bloat every line of the
// request.
func acceptableRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
