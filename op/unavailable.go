package op

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// zitadel turns every storage error into an answer of its own: a callback
// whose auth request cannot be loaded is a 400, a code that cannot be
// looked up is invalid_grant. While the database is restarting or failing
// over, that blames the client for our outage and makes relying parties
// drop good codes. So an error answer on the endpoints below becomes a 503
// with Retry-After (temporarily_unavailable for the OAuth endpoints) when a
// store call of the request found the database away (outageNoting), or
// when it cannot serve now (one ping).

// outagePaths answer a database outage with 503 (the authorization
// endpoint already sends server_error to the client's redirect URI).
var outagePaths = map[string]bool{
	pathCallback: true, pathToken: true, pathIntrospec: true, pathUserinfo: true, pathRevoke: true, pathKeys: true,
}

// unavailableRetry is the Retry-After of such a 503.
const unavailableRetry = 5 * time.Second

// unavailablePing bounds the check: an outage answers fast or not at all.
const unavailablePing = time.Second

// outageWriter holds back an error status until the database has been
// asked; a successful answer passes through untouched.
type outageWriter struct {
	http.ResponseWriter
	ctx     context.Context
	p       *Provider
	oauth   bool // JSON OAuth error bodies; else a plain page
	decided bool
	// replaced: zitadel's body is dropped, ours was written instead.
	replaced bool
}

func (w *outageWriter) WriteHeader(status int) {
	if w.decided {
		if !w.replaced {
			w.ResponseWriter.WriteHeader(status)
		}
		return
	}
	w.decided = true
	if status < 400 {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	if !requestInfoFrom(w.ctx).unavailable.Load() && w.p.databaseServes(w.ctx) {
		if status == http.StatusInternalServerError && w.oauth {
			// zitadel puts the wrapped Go error into error_description
			// (store messages, user IDs); the log has it, the client gets
			// the code.
			w.replaced = true
			w.ResponseWriter.Header().Del("Content-Length")
			writeOAuthError(w.ResponseWriter, status, oidc.ErrServerError().WithDescription("internal error"))
			return
		}
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	w.p.log.WarnContext(w.ctx, "op: database unavailable, answering 503 instead", "status", status)
	h := w.ResponseWriter.Header()
	h.Del("Content-Length")
	h.Set("Retry-After", strconv.Itoa(int(unavailableRetry/time.Second)))
	if w.oauth {
		// RFC 6749 names temporarily_unavailable for the authorization
		// endpoint only; it is still the most telling code here, and
		// clients that do not know it treat the 503 as a server error.
		writeOAuthError(w.ResponseWriter, http.StatusServiceUnavailable, &oidc.Error{
			ErrorType: "temporarily_unavailable", Description: "the service is temporarily unavailable; try again shortly",
		})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.ResponseWriter.Write([]byte("一時的なエラーが発生しました。しばらくしてからもう一度お試しください。\n" +
		"A temporary error occurred. Please try again in a moment.\n"))
}

func (w *outageWriter) Write(b []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil // zitadel's own error body is replaced
	}
	return w.ResponseWriter.Write(b)
}

// databaseServes pings the store within unavailablePing.
func (p *Provider) databaseServes(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unavailablePing)
	defer cancel()
	return p.store.Ping(ctx) == nil
}
