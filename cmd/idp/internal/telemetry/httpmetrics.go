package telemetry

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RouteOther names requests no route claimed (the label must never be the
// raw path: every scanner's guess would become a time series).
const RouteOther = "other"

// HTTPMetrics measures every request's latency by route template, method
// and status class.
type HTTPMetrics struct {
	duration *prometheus.HistogramVec
}

// NewHTTPMetrics registers idp_http_request_duration_seconds on reg.
func NewHTTPMetrics(reg prometheus.Registerer) (*HTTPMetrics, error) {
	m := &HTTPMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "idp_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route template, method and status class (2xx, 3xx, 4xx, 5xx).",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "status"})}
	if err := reg.Register(m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

type routeKey struct{}

// routeSlot is filled in by NameRoute from inside the router, where the
// matched route is known, and read by Middleware outside it.
type routeSlot struct{ name string }

// NameRoute records which route template serves r; the router calls it
// once it has matched. Outside Middleware it does nothing.
func NameRoute(r *http.Request, route string) {
	if s, ok := r.Context().Value(routeKey{}).(*routeSlot); ok {
		s.name = route
	}
}

// Middleware times next. Put it outside everything that can answer (the
// panic handler included), so that every answer is counted.
func (m *HTTPMetrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		slot := &routeSlot{name: RouteOther}
		sw := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey{}, slot)))
		m.duration.WithLabelValues(slot.name, methodLabel(r.Method), statusClass(sw.status)).
			Observe(time.Since(start).Seconds())
	})
}

// methodLabel keeps the label set bounded: a client may send any token
// as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

func statusClass(status int) string {
	if status == 0 {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status/100) + "xx"
}

// statusRecorder remembers the status sent; Unwrap lets
// http.ResponseController reach the connection's Flush and deadlines.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(status int) {
	if w.status == 0 && status >= 200 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
