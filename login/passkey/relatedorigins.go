package passkey

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
)

// PathRelatedOrigins is where WebAuthn Level 3 browsers look for the
// origins that may use an RP ID's passkeys: https://RP_ID/.well-known/webauthn.
// A page on a listed origin may then ask for passkeys of this RP ID, so a
// move of the website to another domain of the group keeps them.
const PathRelatedOrigins = "/.well-known/webauthn"

// relatedOriginsDoc is the document's JSON ({"origins": [...]}).
type relatedOriginsDoc struct {
	Origins []string `json:"origins"`
}

// RelatedOrigins serves the related origins document of cfg, or is nil
// when none are configured (the path then stays unknown).
func RelatedOrigins(cfg Config) (http.Handler, error) {
	if len(cfg.RelatedOrigins) == 0 {
		return nil, nil
	}
	body, err := json.Marshal(relatedOriginsDoc{Origins: slices.Clone(cfg.RelatedOrigins)})
	if err != nil {
		return nil, fmt.Errorf("passkey: encode related origins: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(body)
	}), nil
}
