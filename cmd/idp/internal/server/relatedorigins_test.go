package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/storage/storagetest"
)

// The whole server serves the configured related origins at
// /.well-known/webauthn, and nothing there when none are configured.
func TestRelatedOriginsDocument(t *testing.T) {
	want := []string{"https://www.comstock-loan.example", "https://comstock-group.example"}
	_, srv, _ := openTestServerWith(t, storagetest.DSN(t, "sqlite"), func(c *config.Config) { c.WebAuthn.RelatedOrigins = want })
	res, err := http.Get(srv.URL + "/.well-known/webauthn")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /.well-known/webauthn: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var doc struct {
		Origins []string `json:"origins"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		t.Fatalf("decoding the document: %v", err)
	}
	if !slices.Equal(doc.Origins, want) {
		t.Fatalf("origins %v, want %v", doc.Origins, want)
	}

	_, plain, _ := openTestServer(t, storagetest.DSN(t, "sqlite"))
	if code, _ := get(t, plain.URL+"/.well-known/webauthn"); code != http.StatusNotFound {
		t.Fatalf("without related_origins: GET /.well-known/webauthn = %d, want 404", code)
	}
}
