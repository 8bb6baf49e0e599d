package telemetry

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The latency histogram is labelled by the route the router named and the
// status class; a request no route named is "other", and a method nobody
// defined is "OTHER", so a scanner cannot create time series.
func TestHTTPMetricsLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			NameRoute(r, "/login")
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		if r.URL.Path == "/silent" {
			NameRoute(r, "/silent")
			return // writes nothing: net/http answers 200
		}
		http.NotFound(w, r)
	}))
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/login", nil),
		httptest.NewRequest(http.MethodGet, "/silent", nil),
		httptest.NewRequest(http.MethodGet, "/wp-admin/"+strings.Repeat("x", 50), nil),
		httptest.NewRequest("BREW", "/login", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	want := map[string]bool{
		"POST /login 3xx":  true,
		"GET /silent 2xx":  true,
		"GET other 4xx":    true,
		"OTHER /login 3xx": true,
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range metric.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			key := l["method"] + " " + l["route"] + " " + l["status"]
			if !want[key] {
				t.Errorf("unexpected series %s", key)
			}
			delete(want, key)
		}
	}
	for k := range want {
		t.Errorf("missing series %s", k)
	}
}
