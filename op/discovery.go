package op

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// discoveryDocument is zitadel's document plus the RFC 9207 flag its
// struct does not have.
type discoveryDocument struct {
	*oidc.DiscoveryConfiguration
	AuthorizationResponseISSParameterSupported bool `json:"authorization_response_iss_parameter_supported"`
}

// serveDiscovery answers with what this provider really offers: zitadel's
// document describes everything the library can do (implicit flows, plain
// PKCE, device codes, JWT client assertions), most of which the guard
// refuses. zitadel's typed server could override Discovery too, but it
// would replace the request parsing and error answers of every endpoint
// the guard and the tests rely on, for this one document.
func (p *Provider) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	// Browser relying parties read the document cross-origin: the same
	// CORS answer zitadel's router gives its own endpoints.
	p.discoveryCORS.ServeHTTP(w, r, p.writeDiscovery)
}

func (p *Provider) writeDiscovery(w http.ResponseWriter, r *http.Request) {
	doc := zop.CreateDiscoveryConfig(zop.ContextWithIssuer(r.Context(), p.cfg.Issuer), p.zop, p.zop.Storage())
	doc.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	doc.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
	doc.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	doc.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	// zitadel takes a client_secret from the form body wherever it takes
	// Basic, except at introspection; advertising it is the compatible
	// choice (RFC 6749 section 2.3.1 allows it, relying-party libraries
	// pick it from this list) and it goes through the same secret check
	// and throttles as Basic.
	tokenAuth := []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodNone}
	doc.TokenEndpointAuthMethodsSupported = tokenAuth
	doc.RevocationEndpointAuthMethodsSupported = tokenAuth
	doc.IntrospectionEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic}
	doc.ScopesSupported = knownScopes
	doc.ClaimsSupported = supportedClaims
	doc.DeviceAuthorizationEndpoint, doc.CheckSessionIframe = "", ""
	doc.RequestObjectSigningAlgValuesSupported = nil
	doc.TokenEndpointAuthSigningAlgValuesSupported = nil
	doc.RevocationEndpointAuthSigningAlgValuesSupported = nil
	doc.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
	body, err := json.Marshal(discoveryDocument{DiscoveryConfiguration: doc, AuthorizationResponseISSParameterSupported: true})
	if err != nil {
		p.log.ErrorContext(r.Context(), "discovery: encode", "err", err)
		http.Error(w, "discovery unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
