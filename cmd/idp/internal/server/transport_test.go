package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// An https issuer answers everything with HSTS; a development issuer on
// plain http must not (the browser would then refuse http://localhost).
func TestStrictTransportOnlyForHTTPSIssuers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for issuer, want := range map[string]string{
		"https://id.comstock-loan.example/": "max-age=31536000",
		"http://localhost:8080/":            "",
	} {
		srv := httptest.NewServer(strictTransport(issuer, ok))
		res, err := http.Get(srv.URL + "/.well-known/openid-configuration")
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Strict-Transport-Security"); got != want {
			t.Errorf("issuer %s: Strict-Transport-Security %q, want %q", issuer, got, want)
		}
	}
}
