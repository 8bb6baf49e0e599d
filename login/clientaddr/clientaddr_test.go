package clientaddr

import (
	"net/http/httptest"
	"testing"
)

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		xff   []string
		trust bool
		want  string
	}{
		{"peer without a proxy", nil, false, "192.0.2.7"},
		{"header ignored unless trusted", []string{"203.0.113.9"}, false, "192.0.2.7"},
		{"our proxy's entry is the last", []string{"198.51.100.1, 203.0.113.9"}, true, "203.0.113.9"},
		{"a forged leading entry does not count", []string{"10.0.0.1", "203.0.113.9"}, true, "203.0.113.9"},
		{"garbage falls back to the peer", []string{"not-an-ip"}, true, "192.0.2.7"},
		{"IPv6 is normalised", []string{"2001:DB8::1"}, true, "2001:db8::1"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "192.0.2.7:4711"
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := Of(r, tc.trust); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
