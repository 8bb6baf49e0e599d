package config

import (
	"slices"
	"strings"
	"testing"
)

// webauthn.related_origins must be origins exactly as a browser serialises
// them: anything else would be served but never match, or would let a
// page on a plain-http or IP origin ask for the passkeys.
func TestRelatedOriginsAreValidatedHTTPSOrigins(t *testing.T) {
	good := []string{"https://www.example.net", "https://loan.example.org:8443"}
	c, err := Parse([]byte(strings.Replace(validYAML, "smtp:", "webauthn: {related_origins: ["+strings.Join(good, ", ")+"]}\nsmtp:", 1)))
	if err != nil {
		t.Fatalf("valid related origins refused: %v", err)
	}
	if !slices.Equal(c.WebAuthn.RelatedOrigins, good) {
		t.Fatalf("related origins %v, want %v", c.WebAuthn.RelatedOrigins, good)
	}
	for _, bad := range []string{
		"http://www.example.net", "https://www.example.net/", "https://www.example.net/login",
		"https://www.example.net?x=1", "https://user@www.example.net", "https://10.0.0.1",
		"https://WWW.example.net", "www.example.net", "https://", "https://www.example.net#f",
	} {
		t.Run(bad, func(t *testing.T) {
			y := strings.Replace(validYAML, "smtp:", `webauthn: {related_origins: ["`+bad+`"]}`+"\nsmtp:", 1)
			_, err := Parse([]byte(y))
			if err == nil || !strings.Contains(err.Error(), "webauthn.related_origins[0]") {
				t.Fatalf("related origin %q: error = %v, want one naming webauthn.related_origins[0]", bad, err)
			}
		})
	}
	y := strings.Replace(validYAML, "smtp:", "webauthn: {related_origins: [https://a.example.net, https://a.example.net]}\nsmtp:", 1)
	if _, err := Parse([]byte(y)); err == nil || !strings.Contains(err.Error(), "webauthn.related_origins[1]") {
		t.Fatalf("duplicate related origin: error = %v", err)
	}
}
