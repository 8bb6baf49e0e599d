package op

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// client is a configured relying party as zitadel sees it.
type client struct {
	cfg             ClientConfig
	idTokenLifetime time.Duration
	// verified holds the SHA-256 of the secret that last passed bcrypt, so
	// a confidential client pays the bcrypt cost (~60-100 ms on 2 cores,
	// measured by BenchmarkCodeExchange) once per process instead of at
	// every token, refresh, introspection and revocation call. Only the
	// exact right secret takes the fast path, so it tells a guesser nothing
	// the success itself would not; the config, and so the hash, never
	// changes while the process runs.
	verified atomic.Pointer[[sha256.Size]byte]
}

// remembers reports whether sum is the SHA-256 of the secret verified last.
func (c *client) remembers(sum [sha256.Size]byte) bool {
	v := c.verified.Load()
	return v != nil && subtle.ConstantTimeCompare(v[:], sum[:]) == 1
}

// remember keeps the SHA-256 of a secret that has just passed bcrypt.
func (c *client) remember(sum [sha256.Size]byte) { c.verified.Store(&sum) }

var _ zop.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.cfg.ID }
func (c *client) RedirectURIs() []string           { return slices.Clone(c.cfg.RedirectURIs) }
func (c *client) PostLogoutRedirectURIs() []string { return slices.Clone(c.cfg.PostLogoutRedirectURIs) }

// ApplicationType is never native: native clients get loopback redirect
// URIs matched without their port, and we promise exact matching.
func (c *client) ApplicationType() zop.ApplicationType {
	if c.cfg.Public {
		return zop.ApplicationTypeUserAgent
	}
	return zop.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.cfg.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	grants := []oidc.GrantType{oidc.GrantTypeCode}
	if slices.Contains(c.cfg.Scopes, oidc.ScopeOfflineAccess) {
		grants = append(grants, oidc.GrantTypeRefreshToken)
	}
	return grants
}

// Where /authorize sends the browser: the hosted login pages of package
// login, with the request ID as this query parameter.
const (
	loginPath         = "/login"
	loginRequestParam = "authRequestID"
)

// LoginURL points at the hosted login pages of package login.
func (c *client) LoginURL(authRequestID string) string {
	return loginPath + "?" + loginRequestParam + "=" + url.QueryEscape(authRequestID)
}

// AccessTokenType is opaque bearer: every use is checked against the
// database, so revocation and locked users take effect at once.
func (c *client) AccessTokenType() zop.AccessTokenType { return zop.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return c.idTokenLifetime }

// DevMode lets a public client use an http://localhost redirect URI; Config
// validation already refuses http for any other host.
func (c *client) DevMode() bool { return c.cfg.Public }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) IsScopeAllowed(scope string) bool { return slices.Contains(c.cfg.Scopes, scope) }

// IDTokenUserinfoClaimsAssertion puts profile and email claims in the ID
// token too: the loan website reads them from there.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
