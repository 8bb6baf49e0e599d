package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Probe paths. /ready is zitadel's name for readiness, kept so that
// probes written against it keep working.
const (
	pathHealthz    = "/healthz"
	pathReadyz     = "/readyz"
	pathReadyAlias = "/ready"
)

// readyTimeout bounds the database ping of /readyz: a probe must answer
// before the kubelet's own timeout (1 s by default), and a database that
// takes longer than this to answer a ping cannot serve a login either.
const readyTimeout = time.Second

// healthz answers 200 while the process serves HTTP at all; it checks
// nothing else, so a database outage never makes the orchestrator restart
// replicas that would recover by themselves.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeProbe(w, r, http.StatusOK, "ok")
}

// readyz answers 200 when the database answers a ping within
// readyTimeout, else 503, so the load balancer stops sending customers to
// a replica that cannot sign them in. Only changes are logged: a probe
// every few seconds during an outage would bury everything else.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.pingDatabase(r.Context()); err != nil {
		if s.readiness.Swap(notReady) != notReady {
			s.logger.WarnContext(r.Context(), "not ready: database unreachable", "err", err)
		}
		writeProbe(w, r, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	if s.readiness.Swap(ready) != ready {
		s.logger.InfoContext(r.Context(), "ready: database reachable")
	}
	writeProbe(w, r, http.StatusOK, "ok")
}

// errPingInFlight: the previous probe's ping has not returned yet.
var errPingInFlight = errors.New("previous database ping still waiting")

// pingDatabase pings the store, answering within readyTimeout even when
// the driver does not: lib/pq ignores the context while it sets up a
// connection, bounded only by the DSN's connect_timeout (by default
// sqlstore.DefaultConnectTimeout, longer than a probe may take), so
// against a database that accepts TCP and never answers, Ping would hold
// the probe, and with it the orchestrator's view of the replica. At most one ping runs at a
// time: probes during such an outage answer 503 at once instead of piling
// up goroutines and connection attempts.
func (s *Server) pingDatabase(ctx context.Context) error {
	if !s.pinging.CompareAndSwap(false, true) {
		return errPingInFlight
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer s.pinging.Store(false)
		// Detached from the probe: it may outlive it, and ends when the
		// driver gives up.
		pingCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
		defer cancel()
		done <- s.Store.Ping(pingCtx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("database ping: %w", ctx.Err())
	}
}

// Readiness as last probed; the zero value is "not probed yet".
const (
	ready    int32 = 1
	notReady int32 = 2
)

// probe refuses what a probe never sends, before any work.
func probe(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h(w, r)
	})
}

func writeProbe(w http.ResponseWriter, r *http.Request, status int, text string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte(`{"status":"` + text + `"}` + "\n"))
	}
}
