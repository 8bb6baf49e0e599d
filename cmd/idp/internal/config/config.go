// Package config reads the one YAML file an operator writes for `idp serve`.
//
// The file is decoded strictly (an unknown key is an error, so a typo never
// silently falls back to a default), secrets may come from the environment or
// from files, and every validation error names the field it is about.
package config

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/comstockloan/idp/login"
	"github.com/comstockloan/idp/op"
)

// Config is the whole configuration of one IdP process. All replicas of a
// deployment must share the same file (in particular crypto_key).
type Config struct {
	Issuer string `yaml:"issuer"`
	Listen string `yaml:"listen"`
	// MetricsListen is where /metrics is served (e.g. "127.0.0.1:9090",
	// ":9090" in a pod); empty: not served. Never the public listener:
	// the metrics tell an outsider the load, the failure rates and the
	// database pool.
	MetricsListen string `yaml:"metrics_listen"`
	Database      string `yaml:"database"`
	// DatabasePool sizes each replica's connection pool.
	DatabasePool DatabasePool `yaml:"database_pool"`
	CryptoKey    string       `yaml:"crypto_key"`
	// CryptoKeyFile is read when CryptoKey is empty (a mounted secret).
	CryptoKeyFile string `yaml:"crypto_key_file"`
	SiteName      string `yaml:"site_name"`
	// HomeURL is the loan website's top page, linked from the IdP's
	// "logged out" page; default: the origin of the first client's first
	// redirect URI.
	HomeURL   string    `yaml:"home_url"`
	Support   Support   `yaml:"support"`
	SMTP      SMTP      `yaml:"smtp"`
	WebAuthn  WebAuthn  `yaml:"webauthn"`
	Password  Password  `yaml:"password"`
	OTP       OTP       `yaml:"otp"`
	Lifetimes Lifetimes `yaml:"lifetimes"`
	Devices   Devices   `yaml:"devices"`
	Keys      Keys      `yaml:"keys"`
	Audit     Audit     `yaml:"audit"`
	ACR       ACR       `yaml:"acr"`
	// BackchannelLogout paces the delivery of logout tokens to the
	// clients' backchannel_logout_uri.
	BackchannelLogout BackchannelLogout `yaml:"backchannel_logout"`
	Clients           []Client          `yaml:"clients"`
	// TrustProxyHeaders makes the audit log and throttles take the client
	// address from X-Forwarded-For (only behind a proxy that sets it).
	TrustProxyHeaders bool `yaml:"trust_proxy_headers"`
	// OAuthThrottle bounds guessing at the token, introspection and
	// revocation endpoints.
	OAuthThrottle OAuthThrottle `yaml:"oauth_throttle"`
}

// OAuthThrottle pauses client-secret guessing per client and per address
// and refused token requests per address, within Window; zero fields take
// package op's defaults (op.DefaultThrottleWindow and the like).
type OAuthThrottle struct {
	Window                      time.Duration `yaml:"window"`
	MaxSecretFailuresPerClient  int           `yaml:"max_secret_failures_per_client"`
	MaxSecretFailuresPerAddress int           `yaml:"max_secret_failures_per_address"`
	MaxTokenFailuresPerAddress  int           `yaml:"max_token_failures_per_address"`
	MaxConcurrentSecretChecks   int           `yaml:"max_concurrent_secret_checks"`
}

// DatabasePool sizes each replica's pool of database connections; zero
// fields take the store's defaults (PostgreSQL: 24 open, as many idle,
// recycled after 30m, idle ones closed after 5m). Replicas × max_open_conns
// must stay below the server's max_connections.
type DatabasePool struct {
	MaxOpenConns    int           `yaml:"max_open_conns"`
	MaxIdleConns    int           `yaml:"max_idle_conns"`
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime"`
	ConnMaxIdleTime time.Duration `yaml:"conn_max_idle_time"`
}

// Support is the contact shown on help and error pages.
type Support struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
	Phone string `yaml:"phone"`
	Hours string `yaml:"hours"`
}

// SMTP is the relay the IdP sends one-time passwords through.
type SMTP struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// TLS is "starttls" (port 587), "implicit" (port 465) or "none"
	// (a loopback relay only).
	TLS          string `yaml:"tls"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	From         string `yaml:"from"`
	Subject      string `yaml:"subject"`
	// PasskeySubject is the subject of the "a passkey was added" notice.
	PasskeySubject string `yaml:"passkey_subject"`
	// EnrolmentSubject is the subject of the staff enrolment link's mail.
	EnrolmentSubject string `yaml:"enrolment_subject"`
	// NewDeviceSubject is the subject of the new sign-in mail.
	NewDeviceSubject string `yaml:"new_device_subject"`
}

// Devices: each sign-in remembers its browser for the customer by a
// long-lived device cookie.
type Devices struct {
	// NewDeviceMail mails address 1 when a session starts on a browser
	// the customer never signed in on (default off; never at a customer's
	// first sign-in, which has nothing to compare with).
	NewDeviceMail bool `yaml:"new_device_mail"`
	// Remember is how many browsers are kept per customer, the least
	// recently used forgotten first (default: the login pages').
	Remember int `yaml:"remember"`
}

// WebAuthn names the relying party passkeys are bound to.
type WebAuthn struct {
	RPID    string   `yaml:"rp_id"`
	RPName  string   `yaml:"rp_name"`
	Origins []string `yaml:"origins"`
	// RelatedOrigins are https origins of the group's other domains that
	// may use this rp_id's passkeys (WebAuthn Level 3 related origin
	// requests); served at /.well-known/webauthn when set.
	RelatedOrigins []string `yaml:"related_origins"`
	// MaxCallsPerAddress bounds the passkey options and finish calls one
	// client address may make per minute (zero: the login pages' default).
	MaxCallsPerAddress int `yaml:"max_calls_per_address"`
}

// Password holds the argon2id cost of new password hashes and the pause
// on password guessing.
type Password struct {
	MemoryKiB   uint32 `yaml:"memory_kib"`
	Iterations  uint32 `yaml:"iterations"`
	Parallelism uint8  `yaml:"parallelism"`
	// After MaxFailuresPerLoginID failed checks for one login ID, or
	// MaxFailuresPerAddress from one client address, within
	// ThrottleWindow, password checks pause (defaults: the login pages').
	ThrottleWindow        time.Duration `yaml:"throttle_window"`
	MaxFailuresPerLoginID int           `yaml:"max_failures_per_login_id"`
	MaxFailuresPerAddress int           `yaml:"max_failures_per_address"`
	// HashMemoryMiB bounds the memory concurrent hashes may use (each takes
	// memory_kib); 0 sizes it from the machine: an eighth of the memory
	// limit, at most 1 GiB. HashQueue requests wait at most HashMaxWait for
	// a hashing slot, others get a 429 at once (defaults: 4 per slot, 2s).
	HashMemoryMiB int           `yaml:"hash_memory_mib"`
	HashQueue     int           `yaml:"hash_queue"`
	HashMaxWait   time.Duration `yaml:"hash_max_wait"`
}

// OTP limits the e-mail one-time password.
type OTP struct {
	Lifetime        time.Duration `yaml:"lifetime"`
	MaxAttempts     int           `yaml:"max_attempts"`
	ResendInterval  time.Duration `yaml:"resend_interval"`
	MaxSendsPerHour int           `yaml:"max_sends_per_hour"`
}

// Lifetimes of everything the IdP issues.
type Lifetimes struct {
	Session    time.Duration `yaml:"session"`
	LoginFlow  time.Duration `yaml:"login_flow"`
	RecentAuth time.Duration `yaml:"recent_auth"`
	// PasskeyOfferDeclined is how long 「今はしない」 at the passkey offer
	// after a password login keeps the offer away.
	PasskeyOfferDeclined time.Duration `yaml:"passkey_offer_declined"`
	AuthRequest          time.Duration `yaml:"auth_request"`
	Code                 time.Duration `yaml:"code"`
	AccessToken          time.Duration `yaml:"access_token"`
	IDToken              time.Duration `yaml:"id_token"`
	RefreshToken         time.Duration `yaml:"refresh_token"`
	// EnrolmentLink is how long `idp users enrolment-link` links work.
	EnrolmentLink time.Duration `yaml:"enrolment_link"`
}

// Keys configures token signing.
type Keys struct {
	Algorithm      string        `yaml:"algorithm"`
	RotationPeriod time.Duration `yaml:"rotation_period"`
	PublishDelay   time.Duration `yaml:"publish_delay"`
}

// Audit paces the sealing of the audit trail (see storage/sqlstore/audit.go).
type Audit struct {
	// SealInterval is how often each replica links new events into the
	// keyed chain; until then an event can be deleted unnoticed (default 10s).
	SealInterval time.Duration `yaml:"seal_interval"`
	// CheckpointInterval is the most time between two checkpoints, also
	// without events; `idp audit verify` fails when the newest is much
	// older, since a cut-off tail looks like that (default 5m).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// BackchannelLogout paces the delivery worker of `idp serve`; zero fields
// take package op's defaults (op.DefaultBackchannel…).
type BackchannelLogout struct {
	Timeout      time.Duration `yaml:"timeout"`
	Deadline     time.Duration `yaml:"deadline"`
	PollInterval time.Duration `yaml:"poll_interval"`
}

// ACR names the assurance levels put in the acr claim.
type ACR struct {
	Passkey     string `yaml:"passkey"`
	PasswordOTP string `yaml:"password_otp"`
	Password    string `yaml:"password"`
}

// Client is one relying party.
type Client struct {
	ID                     string        `yaml:"id"`
	Name                   string        `yaml:"name"`
	SecretHash             string        `yaml:"secret_hash"`
	Public                 bool          `yaml:"public"`
	RedirectURIs           []string      `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string      `yaml:"post_logout_redirect_uris"`
	Scopes                 []string      `yaml:"scopes"`
	AccessTokenLifetime    time.Duration `yaml:"access_token_lifetime"`
	IDTokenLifetime        time.Duration `yaml:"id_token_lifetime"`
	RefreshTokenLifetime   time.Duration `yaml:"refresh_token_lifetime"`
	// BackchannelLogoutURI receives a logout token when a session that
	// signed in to this client ends (OpenID Connect Back-Channel Logout).
	BackchannelLogoutURI             string `yaml:"backchannel_logout_uri"`
	BackchannelLogoutSessionRequired bool   `yaml:"backchannel_logout_session_required"`
}

// Environment variables that override secrets in the file, so the file can
// be committed to a deployment repository without them.
const (
	EnvDatabase     = "IDP_DATABASE"
	EnvCryptoKey    = "IDP_CRYPTO_KEY"
	EnvSMTPPassword = "IDP_SMTP_PASSWORD"
)

// Load reads, decodes, completes and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML strictly, applies environment overrides and defaults,
// and validates the result.
func Parse(raw []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := c.resolveSecrets(); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadClients reads the clients of a file in the config file's format
// (a top-level clients: list; other keys are refused, so a typo shows), for
// `idp dev --clients`. They are validated with the configuration they join.
func LoadClients(path string) ([]Client, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read clients: %w", err)
	}
	var f struct {
		Clients []Client `yaml:"clients"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("clients %s: decode: %w", path, err)
	}
	if len(f.Clients) == 0 {
		return nil, fmt.Errorf("clients %s: no clients: listed", path)
	}
	return f.Clients, nil
}

func (c *Config) resolveSecrets() error {
	if v := os.Getenv(EnvDatabase); v != "" {
		c.Database = v
	}
	if v := os.Getenv(EnvCryptoKey); v != "" {
		c.CryptoKey = v
	}
	if c.CryptoKey == "" && c.CryptoKeyFile != "" {
		b, err := os.ReadFile(c.CryptoKeyFile)
		if err != nil {
			return fmt.Errorf("crypto_key_file: %w", err)
		}
		c.CryptoKey = strings.TrimSpace(string(b))
	}
	if v := os.Getenv(EnvSMTPPassword); v != "" {
		c.SMTP.Password = v
	}
	if c.SMTP.Password == "" && c.SMTP.PasswordFile != "" {
		b, err := os.ReadFile(c.SMTP.PasswordFile)
		if err != nil {
			return fmt.Errorf("smtp.password_file: %w", err)
		}
		c.SMTP.Password = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

// Defaults fills every optional field left empty. What the login pages
// and the OpenID provider do by default is theirs to say: those values come
// from login.DefaultConfig and op's Default… constants, never restated
// here; this file owns only the process's own settings (listen address,
// relay, audit pacing) and what derives from other fields. Fields whose
// zero the packages fill themselves (oauth_throttle, database_pool,
// webauthn.max_calls_per_address, the hash limiter's) stay zero.
func (c *Config) Defaults() {
	pages := login.DefaultConfig()
	def(&c.Listen, ":8080")
	def(&c.SiteName, pages.SiteName)
	def(&c.Support.Name, pages.Support.Name)
	def(&c.Support.Email, pages.Support.Email)
	def(&c.Support.Phone, pages.Support.Phone)
	def(&c.Support.Hours, pages.Support.Hours)
	def(&c.SMTP.TLS, "starttls")
	def(&c.SMTP.From, pages.OTP.From)
	def(&c.SMTP.Subject, pages.OTP.Subject)
	if c.SMTP.Port == 0 {
		switch c.SMTP.TLS {
		case "implicit":
			c.SMTP.Port = 465
		case "none":
			c.SMTP.Port = 25
		default:
			c.SMTP.Port = 587
		}
	}
	def(&c.SMTP.PasskeySubject, pages.PasskeyMailSubject)
	def(&c.SMTP.EnrolmentSubject, pages.EnrolmentMailSubject)
	def(&c.SMTP.NewDeviceSubject, pages.NewDeviceMailSubject)
	def(&c.Devices.Remember, pages.KnownDevices)
	if c.HomeURL == "" && len(c.Clients) > 0 && len(c.Clients[0].RedirectURIs) > 0 {
		if u, err := url.Parse(c.Clients[0].RedirectURIs[0]); err == nil && u.Host != "" {
			c.HomeURL = u.Scheme + "://" + u.Host + "/"
		}
	}
	def(&c.WebAuthn.RPName, c.SiteName)
	if u, err := url.Parse(c.Issuer); err == nil && u.Host != "" {
		def(&c.WebAuthn.RPID, u.Hostname())
		if len(c.WebAuthn.Origins) == 0 {
			c.WebAuthn.Origins = []string{u.Scheme + "://" + u.Host}
		}
	}
	def(&c.Password.MemoryKiB, pages.Password.MemoryKiB)
	def(&c.Password.Iterations, pages.Password.Iterations)
	def(&c.Password.Parallelism, pages.Password.Parallelism)
	def(&c.Password.ThrottleWindow, pages.PasswordThrottle.Window)
	def(&c.Password.MaxFailuresPerLoginID, pages.PasswordThrottle.MaxPerLoginID)
	def(&c.Password.MaxFailuresPerAddress, pages.PasswordThrottle.MaxPerAddress)
	def(&c.OTP.Lifetime, pages.OTP.Lifetime)
	def(&c.OTP.MaxAttempts, pages.OTP.MaxAttempts)
	def(&c.OTP.ResendInterval, pages.OTP.ResendInterval)
	def(&c.OTP.MaxSendsPerHour, pages.OTP.MaxSendsPerHour)
	def(&c.Lifetimes.Session, pages.SessionLifetime)
	def(&c.Lifetimes.LoginFlow, pages.FlowLifetime)
	def(&c.Lifetimes.RecentAuth, pages.RecentAuth)
	def(&c.Lifetimes.PasskeyOfferDeclined, pages.PasskeyOfferInterval)
	def(&c.Lifetimes.AuthRequest, op.DefaultAuthRequestLifetime)
	def(&c.Lifetimes.Code, op.DefaultCodeLifetime)
	def(&c.Lifetimes.AccessToken, op.DefaultAccessTokenLifetime)
	def(&c.Lifetimes.IDToken, op.DefaultIDTokenLifetime)
	def(&c.Lifetimes.RefreshToken, op.DefaultRefreshTokenLifetime)
	def(&c.Lifetimes.EnrolmentLink, pages.EnrolmentLinkLifetime)
	def(&c.Keys.Algorithm, op.DefaultSigningAlgorithm)
	def(&c.Keys.RotationPeriod, op.DefaultKeyRotationPeriod)
	def(&c.Keys.PublishDelay, op.DefaultKeyPublishDelay)
	def(&c.Audit.SealInterval, 10*time.Second)
	def(&c.Audit.CheckpointInterval, 5*time.Minute)
	def(&c.BackchannelLogout.Timeout, op.DefaultBackchannelTimeout)
	def(&c.BackchannelLogout.Deadline, op.DefaultBackchannelDeadline)
	def(&c.BackchannelLogout.PollInterval, op.DefaultBackchannelPollInterval)
	def(&c.ACR.Passkey, pages.ACR.Passkey)
	def(&c.ACR.PasswordOTP, pages.ACR.PasswordOTP)
	def(&c.ACR.Password, pages.ACR.Password)
	for i := range c.Clients {
		if len(c.Clients[i].Scopes) == 0 {
			c.Clients[i].Scopes = op.DefaultScopes()
		}
	}
}

// def sets *v to d when *v is the zero value.
func def[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports every problem it finds, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	iss, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		bad("issuer", "is required (the exact URL relying parties configure)")
	case err != nil || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "":
		bad("issuer", "must be an absolute URL without query or fragment, got %q", c.Issuer)
	case iss.Scheme != "https" && !(iss.Scheme == "http" && isLoopback(iss.Hostname())):
		bad("issuer", "must use https (http is allowed only for localhost), got %q", c.Issuer)
	}
	if c.HomeURL != "" {
		if err := checkClientURI(c.HomeURL); err != nil {
			bad("home_url", "%v", err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "must be host:port, got %q", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("metrics_listen", "must be host:port or empty, got %q", c.MetricsListen)
		} else if c.MetricsListen == c.Listen {
			bad("metrics_listen", "must differ from listen: /metrics is not for the public listener")
		}
	}
	switch {
	case c.Database == "":
		bad("database", "is required: postgres://… or sqlite:PATH (or set %s)", EnvDatabase)
	case !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") &&
		!strings.HasPrefix(c.Database, "sqlite:"):
		bad("database", "must start with postgres://, postgresql:// or sqlite:")
	}
	if _, err := c.CryptoKeyBytes(); err != nil {
		bad("crypto_key", "%v", err)
	}
	if c.Audit.SealInterval < time.Second {
		bad("audit.seal_interval", "must be at least 1s, got %s", c.Audit.SealInterval)
	}
	if c.Audit.CheckpointInterval < c.Audit.SealInterval {
		bad("audit.checkpoint_interval", "must be at least audit.seal_interval (%s), got %s", c.Audit.SealInterval, c.Audit.CheckpointInterval)
	}
	if c.SMTP.Host == "" {
		bad("smtp.host", "is required")
	}
	if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
		bad("smtp.port", "must be 1..65535")
	}
	switch c.SMTP.TLS {
	case "starttls", "implicit":
	case "none":
		if !isLoopback(c.SMTP.Host) {
			bad("smtp.tls", `"none" is allowed only for a relay on localhost`)
		}
	default:
		bad("smtp.tls", `must be "starttls", "implicit" or "none", got %q`, c.SMTP.TLS)
	}
	if (c.SMTP.Username == "") != (c.SMTP.Password == "") {
		bad("smtp.password", "username and password go together (password may come from %s or smtp.password_file)", EnvSMTPPassword)
	}
	if _, err := mail.ParseAddress(c.SMTP.From); err != nil {
		bad("smtp.from", "is not an e-mail address: %v", err)
	}
	if c.WebAuthn.RPID == "" || net.ParseIP(c.WebAuthn.RPID) != nil {
		bad("webauthn.rp_id", "must be a domain name (not an IP address), got %q", c.WebAuthn.RPID)
	}
	for i, o := range c.WebAuthn.Origins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || u.Path != "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
			bad(fmt.Sprintf("webauthn.origins[%d]", i), "must be an https origin without path (http only for localhost), got %q", o)
			continue
		}
		if h := u.Hostname(); h != c.WebAuthn.RPID && !strings.HasSuffix(h, "."+c.WebAuthn.RPID) {
			bad(fmt.Sprintf("webauthn.origins[%d]", i), "host %q is not rp_id %q or a subdomain of it", h, c.WebAuthn.RPID)
		}
	}
	related := map[string]bool{}
	for i, o := range c.WebAuthn.RelatedOrigins {
		field := fmt.Sprintf("webauthn.related_origins[%d]", i)
		u, err := url.Parse(o)
		switch {
		case err != nil || u.Scheme != "https" || u.Hostname() == "" || o != "https://"+strings.ToLower(u.Host) ||
			net.ParseIP(u.Hostname()) != nil:
			// Exactly what a browser's origin serialises to, or the
			// comparison with it never matches.
			bad(field, "must be an https origin of a lower-case domain name, with nothing after the host (no path, not even /), got %q", o)
		case related[u.Scheme+"://"+u.Host]:
			bad(field, "%q is listed twice", o)
		}
		if err == nil {
			related[u.Scheme+"://"+u.Host] = true
		}
	}
	if c.Password.MemoryKiB < 19*1024 || c.Password.Iterations < 2 {
		bad("password", "argon2id below the OWASP minimum (memory_kib >= 19456 with iterations >= 2)")
	}
	if p := c.DatabasePool; p.MaxOpenConns < 0 || p.MaxIdleConns < 0 || p.ConnMaxLifetime < 0 || p.ConnMaxIdleTime < 0 {
		bad("database_pool", "cannot be negative")
	} else if p.MaxOpenConns > 0 && p.MaxIdleConns > p.MaxOpenConns {
		bad("database_pool.max_idle_conns", "must not exceed max_open_conns (%d)", p.MaxOpenConns)
	}
	if c.WebAuthn.MaxCallsPerAddress < 0 {
		bad("webauthn.max_calls_per_address", "cannot be negative")
	}
	if c.Password.HashMemoryMiB < 0 || c.Password.HashQueue < 0 || c.Password.HashMaxWait < 0 {
		bad("password", "hash_memory_mib, hash_queue and hash_max_wait cannot be negative")
	}
	if c.Password.HashMemoryMiB > 0 && int64(c.Password.HashMemoryMiB)<<10 < int64(c.Password.MemoryKiB) {
		bad("password.hash_memory_mib", "must hold at least one hash of memory_kib (%d KiB)", c.Password.MemoryKiB)
	}
	if c.OTP.MaxAttempts < 1 || c.OTP.MaxAttempts > 10 {
		bad("otp.max_attempts", "must be 1..10")
	}
	if c.OTP.Lifetime > 30*time.Minute {
		bad("otp.lifetime", "must be at most 30m (a one-time password is short-lived)")
	}
	// Defaults fill only zero values: a negative one would be kept and,
	// e.g., expire every code at birth or throttle every customer.
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"password.throttle_window", c.Password.ThrottleWindow}, {"otp.lifetime", c.OTP.Lifetime},
		{"otp.resend_interval", c.OTP.ResendInterval}, {"lifetimes.session", c.Lifetimes.Session},
		{"lifetimes.login_flow", c.Lifetimes.LoginFlow}, {"lifetimes.recent_auth", c.Lifetimes.RecentAuth},
		{"lifetimes.passkey_offer_declined", c.Lifetimes.PasskeyOfferDeclined},
		{"lifetimes.auth_request", c.Lifetimes.AuthRequest}, {"lifetimes.code", c.Lifetimes.Code},
		{"lifetimes.access_token", c.Lifetimes.AccessToken}, {"lifetimes.id_token", c.Lifetimes.IDToken},
		{"lifetimes.refresh_token", c.Lifetimes.RefreshToken}, {"keys.rotation_period", c.Keys.RotationPeriod},
		{"keys.publish_delay", c.Keys.PublishDelay},
		{"backchannel_logout.timeout", c.BackchannelLogout.Timeout}, {"backchannel_logout.deadline", c.BackchannelLogout.Deadline},
		{"backchannel_logout.poll_interval", c.BackchannelLogout.PollInterval},
	} {
		if d.v <= 0 {
			bad(d.field, "must be positive, got %v", d.v)
		}
	}
	for _, n := range []struct {
		field string
		v     int
	}{
		{"password.max_failures_per_login_id", c.Password.MaxFailuresPerLoginID},
		{"password.max_failures_per_address", c.Password.MaxFailuresPerAddress},
		{"otp.max_sends_per_hour", c.OTP.MaxSendsPerHour},
		{"devices.remember", c.Devices.Remember},
	} {
		if n.v <= 0 {
			bad(n.field, "must be positive, got %d", n.v)
		}
	}
	switch c.Keys.Algorithm {
	case "RS256", "ES256":
	default:
		bad("keys.algorithm", `must be "RS256" or "ES256", got %q`, c.Keys.Algorithm)
	}
	if c.Keys.PublishDelay >= c.Keys.RotationPeriod {
		bad("keys.publish_delay", "must be shorter than keys.rotation_period")
	}
	if c.BackchannelLogout.Timeout > op.MaxBackchannelTimeout {
		bad("backchannel_logout.timeout", "must be at most %s", op.MaxBackchannelTimeout)
	}
	if len(c.Clients) == 0 {
		bad("clients", "at least one client is required")
	}
	seen := map[string]bool{}
	for i, cl := range c.Clients {
		field := fmt.Sprintf("clients[%d]", i)
		if cl.ID == "" {
			bad(field+".id", "is required")
		} else if seen[cl.ID] {
			bad(field+".id", "duplicate client id %q", cl.ID)
		}
		seen[cl.ID] = true
		switch {
		case cl.Public && cl.SecretHash != "":
			bad(field+".secret_hash", "a public client has no secret")
		case !cl.Public && !strings.HasPrefix(cl.SecretHash, "$2"):
			bad(field+".secret_hash", "must be a bcrypt hash (make one with `idp clients hash-secret`), or set public: true")
		}
		if len(cl.RedirectURIs) == 0 {
			bad(field+".redirect_uris", "at least one is required")
		}
		for j, u := range cl.RedirectURIs {
			if err := checkClientURI(u); err != nil {
				bad(fmt.Sprintf("%s.redirect_uris[%d]", field, j), "%v", err)
			}
		}
		for j, u := range cl.PostLogoutRedirectURIs {
			if err := checkClientURI(u); err != nil {
				bad(fmt.Sprintf("%s.post_logout_redirect_uris[%d]", field, j), "%v", err)
			}
		}
		if cl.BackchannelLogoutURI != "" {
			if err := checkClientURI(cl.BackchannelLogoutURI); err != nil {
				bad(field+".backchannel_logout_uri", "%v", err)
			}
		} else if cl.BackchannelLogoutSessionRequired {
			bad(field+".backchannel_logout_session_required", "needs a backchannel_logout_uri")
		}
	}
	return errors.Join(errs...)
}

// CryptoKeyBytes decodes crypto_key: 32 bytes as 64 hex digits or base64.
func (c *Config) CryptoKeyBytes() ([32]byte, error) {
	var key [32]byte
	s := strings.TrimSpace(c.CryptoKey)
	if s == "" {
		return key, fmt.Errorf("is required: 32 random bytes as hex or base64 (`openssl rand -hex 32`), or set %s or crypto_key_file", EnvCryptoKey)
	}
	var b []byte
	var err error
	if len(s) == 64 {
		b, err = hex.DecodeString(s)
	} else {
		b, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		}
	}
	if err != nil || len(b) != 32 {
		return key, errors.New("must decode to exactly 32 bytes (64 hex digits or base64)")
	}
	copy(key[:], b)
	return key, nil
}

// checkClientURI accepts absolute https URLs without fragments, and http
// only on a loopback host (development relying parties).
func checkClientURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("must be an absolute URL, got %q", raw)
	}
	if u.Fragment != "" {
		return fmt.Errorf("must not have a fragment, got %q", raw)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return fmt.Errorf("must use https (http only for localhost), got %q", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
