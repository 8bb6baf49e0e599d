package op

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/storage"
)

// Config configures the OpenID provider. The idp command fills it from its
// configuration file (cmd/idp/internal/config); zero fields take the
// Default… values below.
type Config struct {
	// Issuer is compared byte for byte by relying parties.
	Issuer string
	// CryptoKey encrypts codes and opaque access tokens and the stored
	// private signing keys; it must be identical on every replica.
	CryptoKey            [32]byte
	SigningAlgorithm     string        // RS256 (default) or ES256
	KeyRotationPeriod    time.Duration // default 30 days
	KeyPublishDelay      time.Duration // default 24h
	AccessTokenLifetime  time.Duration // default 15m
	IDTokenLifetime      time.Duration // default 1h
	RefreshTokenLifetime time.Duration // default 30 days
	AuthRequestLifetime  time.Duration // default 30m
	// CodeLifetime is how long an authorization code can be exchanged:
	// default 1m, allowed 10s to 10m (RFC 6749 section 4.1.2 recommends at
	// most 10 minutes; a relying party exchanges at once).
	CodeLifetime time.Duration
	// AllowInsecure permits an http:// issuer; development only.
	AllowInsecure bool
	// LogoutLandingURL is where end_session sends the browser when the
	// request names no client with a registered post_logout_redirect_uri.
	// Default: the issuer followed by "/logged-out".
	LogoutLandingURL string
	// TrustProxyHeaders: the IdP runs behind a load balancer that appends
	// the client address to X-Forwarded-For; the throttles then key on
	// that last entry, as package login's do.
	TrustProxyHeaders bool
	// Throttle bounds guessing at the OAuth endpoints (zero fields take
	// the defaults).
	Throttle Throttle
	// BackchannelLogout paces the delivery of logout tokens (zero fields
	// take the defaults).
	BackchannelLogout BackchannelLogout
	Clients           []ClientConfig
	// Clock is the time of every expiry, key rotation and throttle window
	// the provider computes (default time.Now); zitadel still stamps the
	// iat and exp of the JWTs it signs with the system clock. Give the
	// store the same clock (sqlstore's WithClock) so both agree on what
	// has expired; tests move a fake one instead of sleeping.
	Clock func() time.Time
	// Metrics receives the token counters (metrics.go); nil keeps them
	// unexported.
	Metrics prometheus.Registerer
	// ErrorPage renders the refusals a browser must not be redirected
	// with (errorpage.go); nil answers them in plain text.
	ErrorPage ErrorPage
	// SessionAnswer may answer a new authorization request at /authorize
	// from the browser's SSO session (completing it with Complete), as the
	// login page would one redirect later; it returns false, having
	// written nothing, when a login is needed, and the browser goes to the
	// login page. nil: every request goes to the login page.
	SessionAnswer func(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool
}

// ClientConfig registers one relying party.
type ClientConfig struct {
	ID                     string
	Name                   string
	SecretHash             string // bcrypt; empty with Public for a public client
	Public                 bool
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Scopes                 []string // allowed; default DefaultScopes()
	// Per-client lifetimes; zero takes the provider's.
	AccessTokenLifetime  time.Duration
	IDTokenLifetime      time.Duration
	RefreshTokenLifetime time.Duration
	// BackchannelLogoutURI receives a logout token (OpenID Connect
	// Back-Channel Logout 1.0) whenever a session that signed in to this
	// client ends; empty: the client is not told.
	BackchannelLogoutURI string
	// BackchannelLogoutSessionRequired: the client needs the sid claim in
	// logout tokens. Ours always carry it; the flag is accepted so a
	// client's registration can say so.
	BackchannelLogoutSessionRequired bool
}

// BackchannelLogout paces the delivery worker (backchannel.go).
type BackchannelLogout struct {
	// Timeout bounds one POST to a relying party (default 5s).
	Timeout time.Duration
	// Deadline is how long after the session ended delivery is retried
	// before it is given up (default 24h).
	Deadline time.Duration
	// PollInterval is how often each replica looks for due logouts
	// (default 2s): a logout reaches the relying party that much later.
	PollInterval time.Duration
}

// Provider defaults.
const (
	DefaultSigningAlgorithm     = "RS256"
	DefaultKeyRotationPeriod    = 30 * 24 * time.Hour
	DefaultKeyPublishDelay      = 24 * time.Hour
	DefaultAccessTokenLifetime  = 15 * time.Minute
	DefaultIDTokenLifetime      = time.Hour
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
	DefaultAuthRequestLifetime  = 30 * time.Minute
	DefaultCodeLifetime         = time.Minute
	MinCodeLifetime             = 10 * time.Second
	MaxCodeLifetime             = 10 * time.Minute

	DefaultBackchannelTimeout      = 5 * time.Second
	DefaultBackchannelDeadline     = 24 * time.Hour
	DefaultBackchannelPollInterval = 2 * time.Second
	// MaxBackchannelTimeout keeps a POST well inside a claim's lease.
	MaxBackchannelTimeout = time.Minute
)

// knownScopes are the scopes this provider understands; a client may be
// allowed a subset.
var knownScopes = []string{"openid", "profile", "email", "offline_access"}

// DefaultScopes are the scopes a client is allowed when its configuration
// names none: all of knownScopes.
func DefaultScopes() []string { return slices.Clone(knownScopes) }

// applyDefaults fills zero values; Validate calls it so a validated config
// is also a complete one.
func (c *Config) applyDefaults() {
	if c.SigningAlgorithm == "" {
		c.SigningAlgorithm = DefaultSigningAlgorithm
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDefault(&c.KeyRotationPeriod, DefaultKeyRotationPeriod)
	setDefault(&c.KeyPublishDelay, DefaultKeyPublishDelay)
	setDefault(&c.AccessTokenLifetime, DefaultAccessTokenLifetime)
	setDefault(&c.IDTokenLifetime, DefaultIDTokenLifetime)
	setDefault(&c.RefreshTokenLifetime, DefaultRefreshTokenLifetime)
	setDefault(&c.AuthRequestLifetime, DefaultAuthRequestLifetime)
	setDefault(&c.CodeLifetime, DefaultCodeLifetime)
	setDefault(&c.BackchannelLogout.Timeout, DefaultBackchannelTimeout)
	setDefault(&c.BackchannelLogout.Deadline, DefaultBackchannelDeadline)
	setDefault(&c.BackchannelLogout.PollInterval, DefaultBackchannelPollInterval)
	t := &c.Throttle
	setDefault(&t.Window, DefaultThrottleWindow)
	for _, d := range []struct {
		v   *int
		def int
	}{{&t.MaxSecretFailuresPerClient, DefaultMaxSecretFailuresPerClient}, {&t.MaxSecretFailuresPerAddress, DefaultMaxSecretFailuresPerAddress},
		{&t.MaxTokenFailuresPerAddress, DefaultMaxTokenFailuresPerAddress}, {&t.MaxConcurrentSecretChecks, DefaultMaxConcurrentSecretChecks}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.LogoutLandingURL == "" {
		c.LogoutLandingURL = strings.TrimSuffix(c.Issuer, "/") + "/logged-out"
	}
	for i := range c.Clients {
		if len(c.Clients[i].Scopes) == 0 {
			c.Clients[i].Scopes = DefaultScopes()
		}
	}
}

// Validate fills defaults and reports every problem, each naming its field.
func (c *Config) Validate() error {
	c.applyDefaults()
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}

	if iss, err := url.Parse(c.Issuer); c.Issuer == "" || err != nil || !iss.IsAbs() || iss.Host == "" ||
		iss.RawQuery != "" || iss.Fragment != "" {
		fail("issuer", "must be an absolute URL without query or fragment")
	} else if iss.Scheme != "https" && !(iss.Scheme == "http" && c.AllowInsecure) {
		fail("issuer", "must use https (http only with allow_insecure)")
	}
	if c.CryptoKey == ([32]byte{}) {
		fail("crypto_key", "must be set (32 random bytes, the same on every replica)")
	}
	if c.SigningAlgorithm != "RS256" && c.SigningAlgorithm != "ES256" {
		fail("signing_algorithm", "must be RS256 or ES256, not %q", c.SigningAlgorithm)
	}
	positive := map[string]time.Duration{
		"key_rotation_period":    c.KeyRotationPeriod,
		"key_publish_delay":      c.KeyPublishDelay,
		"access_token_lifetime":  c.AccessTokenLifetime,
		"id_token_lifetime":      c.IDTokenLifetime,
		"refresh_token_lifetime": c.RefreshTokenLifetime,
		"auth_request_lifetime":  c.AuthRequestLifetime,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] < 0 {
			fail(name, "must not be negative")
		}
	}
	if c.CodeLifetime < MinCodeLifetime || c.CodeLifetime > MaxCodeLifetime {
		fail("code_lifetime", "must be between %s and %s, not %s", MinCodeLifetime, MaxCodeLifetime, c.CodeLifetime)
	}
	if t := c.Throttle; t.Window < 0 || t.Window > maxThrottleWindow {
		fail("throttle.window", "must be between 0 and %s, not %s", maxThrottleWindow, t.Window)
	}
	counts := map[string]int{
		"throttle.max_secret_failures_per_client":  c.Throttle.MaxSecretFailuresPerClient,
		"throttle.max_secret_failures_per_address": c.Throttle.MaxSecretFailuresPerAddress,
		"throttle.max_token_failures_per_address":  c.Throttle.MaxTokenFailuresPerAddress,
		"throttle.max_concurrent_secret_checks":    c.Throttle.MaxConcurrentSecretChecks,
	}
	for _, name := range slices.Sorted(maps.Keys(counts)) {
		if counts[name] < 0 {
			fail(name, "must not be negative")
		}
	}
	if b := c.BackchannelLogout; b.Timeout < 0 || b.Timeout > MaxBackchannelTimeout {
		fail("backchannel_logout.timeout", "must be between 0 and %s, not %s", MaxBackchannelTimeout, b.Timeout)
	}
	if c.BackchannelLogout.Deadline < 0 {
		fail("backchannel_logout.deadline", "must not be negative")
	}
	if c.BackchannelLogout.PollInterval < 0 {
		fail("backchannel_logout.poll_interval", "must not be negative")
	}
	if c.KeyPublishDelay >= c.KeyRotationPeriod {
		fail("key_publish_delay", "must be shorter than key_rotation_period")
	}
	if len(c.Clients) == 0 {
		fail("clients", "at least one client is required")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		errs = append(errs, cl.validate(fmt.Sprintf("clients[%d]", i), seen)...)
	}
	return errors.Join(errs...)
}

func (cl ClientConfig) validate(prefix string, seen map[string]bool) []error {
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{prefix, field}, args...)...))
	}
	switch {
	case cl.ID == "":
		fail("id", "must not be empty")
	case seen[cl.ID]:
		fail("id", "duplicate client id %q", cl.ID)
	}
	seen[cl.ID] = true
	if cl.Public && cl.SecretHash != "" {
		fail("secret_hash", "must be empty for a public client")
	}
	if !cl.Public {
		if cl.SecretHash == "" {
			fail("secret_hash", "required for a confidential client (or set public: true)")
		} else if _, err := bcrypt.Cost([]byte(cl.SecretHash)); err != nil ||
			!(strings.HasPrefix(cl.SecretHash, "$2a$") || strings.HasPrefix(cl.SecretHash, "$2b$")) {
			fail("secret_hash", "must be a bcrypt hash ($2a$ or $2b$); create one with `idp clients hash-secret`")
		}
	}
	if len(cl.RedirectURIs) == 0 {
		fail("redirect_uris", "at least one redirect URI is required")
	}
	for j, u := range cl.RedirectURIs {
		if !isSafeRedirectURI(u) {
			fail(fmt.Sprintf("redirect_uris[%d]", j), "must be an absolute https URL (http only for localhost) without fragment")
		}
	}
	for j, u := range cl.PostLogoutRedirectURIs {
		if !isSafeRedirectURI(u) {
			fail(fmt.Sprintf("post_logout_redirect_uris[%d]", j), "must be an absolute https URL (http only for localhost) without fragment")
		}
	}
	// The URI is the operator's, not a user's; still only https (http on
	// a loopback host for development) and no fragment (the spec's rule).
	if cl.BackchannelLogoutURI != "" && !isSafeRedirectURI(cl.BackchannelLogoutURI) {
		fail("backchannel_logout_uri", "must be an absolute https URL (http only for localhost) without fragment")
	}
	if cl.BackchannelLogoutSessionRequired && cl.BackchannelLogoutURI == "" {
		fail("backchannel_logout_session_required", "needs a backchannel_logout_uri")
	}
	if !slices.Contains(cl.Scopes, "openid") {
		fail("scopes", "must contain openid")
	}
	for j, s := range cl.Scopes {
		if !slices.Contains(knownScopes, s) {
			fail(fmt.Sprintf("scopes[%d]", j), "unknown scope %q (known: %s)", s, strings.Join(knownScopes, " "))
		}
	}
	lifetimes := map[string]time.Duration{
		"access_token_lifetime": cl.AccessTokenLifetime, "id_token_lifetime": cl.IDTokenLifetime,
		"refresh_token_lifetime": cl.RefreshTokenLifetime,
	}
	for _, name := range slices.Sorted(maps.Keys(lifetimes)) {
		if lifetimes[name] < 0 {
			fail(name, "must not be negative")
		}
	}
	return errs
}

// isSafeRedirectURI accepts https URLs and http ones on a loopback host.
func isSafeRedirectURI(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(raw, "#") {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		return h == "localhost" || h == "127.0.0.1" || h == "::1"
	}
	return false
}

// HashClientSecret returns the bcrypt hash to put in secret_hash.
func HashClientSecret(secret string) (string, error) {
	if len(secret) < 16 {
		return "", errors.New("client secret must be at least 16 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash client secret: %w", err)
	}
	return string(h), nil
}
