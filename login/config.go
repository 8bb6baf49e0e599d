package login

import (
	"time"

	"github.com/comstockloan/idp/login/password"
)

// SupportContact is the loan centre customers are sent to when the pages
// cannot help (locked account, lost device).
type SupportContact struct {
	Name  string
	Email string
	Phone string
	Hours string
}

// PasswordParams are the argon2id costs of newly hashed passwords.
type PasswordParams = password.Params

// OTPConfig governs the e-mail one-time password of F1 (rule 3, docs/rules.md).
type OTPConfig struct {
	Lifetime        time.Duration
	MaxAttempts     int           // wrong tries before the code is dead
	ResendInterval  time.Duration // per flow
	MaxSendsPerHour int           // per user, across flows and replicas
	From            string
	Subject         string
}

// ACRConfig names the acr values the pages assert; Passkey is the only
// phishing-resistant one.
type ACRConfig struct {
	Passkey     string
	PasswordOTP string
	Password    string
}

// Config of the hosted login pages.
type Config struct {
	SiteName        string
	Support         SupportContact
	SecureCookies   bool          // true when the issuer is https
	SessionLifetime time.Duration // SSO session
	FlowLifetime    time.Duration // one pass through the pages
	RecentAuth      time.Duration // rule 4: a new passkey needs an auth this recent
	Password        PasswordParams
	OTP             OTPConfig
	ACR             ACRConfig
	DevMailURL      string // development only: link to the mail sink on S4
	// PasswordThrottle pauses password guessing.
	PasswordThrottle PasswordThrottle
	// PasswordHashing bounds the memory concurrent password hashes use;
	// zero fields are sized from the machine (password.NewLimiter).
	PasswordHashing password.LimiterConfig
	// OTPKey keys the stored form of e-mail codes (OTPKey derives it from
	// crypto_key); replicas must share it. Empty: a random key per process,
	// for tests and single-process use.
	OTPKey []byte
	// CeremonyLimit bounds the passkey JSON endpoints per address.
	CeremonyLimit CeremonyLimit
	// TrustProxyHeaders: the IdP runs behind a load balancer that appends
	// the client address to X-Forwarded-For.
	TrustProxyHeaders bool
	// PasskeyMailSubject is the subject of the mail that tells the customer
	// a passkey was added to their account.
	PasskeyMailSubject string
	// HomeURL is the loan website's top page, linked from /logged-out
	// (no link when empty).
	HomeURL string
}

// Defaults fills zero fields with the production values.
func (c *Config) Defaults() {
	if c.SiteName == "" {
		c.SiteName = "コムストックローン"
	}
	if c.Support == (SupportContact{}) {
		c.Support = SupportContact{
			Name:  "日証金コムストックローンセンター",
			Email: "comstock@jsf.co.jp",
			Phone: "03-6264-9738",
			Hours: "平日 9:00–17:00",
		}
	}
	setDuration(&c.SessionLifetime, 8*time.Hour)
	setDuration(&c.FlowLifetime, 15*time.Minute)
	setDuration(&c.RecentAuth, 5*time.Minute)
	if c.Password == (PasswordParams{}) {
		c.Password = password.DefaultParams
	}
	setDuration(&c.OTP.Lifetime, 10*time.Minute)
	setDuration(&c.OTP.ResendInterval, time.Minute)
	if c.OTP.MaxAttempts == 0 {
		c.OTP.MaxAttempts = 5
	}
	if c.OTP.MaxSendsPerHour == 0 {
		c.OTP.MaxSendsPerHour = 5
	}
	if c.OTP.From == "" {
		c.OTP.From = "info@jsfnet.com"
	}
	if c.OTP.Subject == "" {
		c.OTP.Subject = "【コムストックローン】ワンタイムパスワードのお知らせ"
	}
	setDuration(&c.CeremonyLimit.Window, time.Minute)
	if c.CeremonyLimit.MaxPerAddress == 0 {
		c.CeremonyLimit.MaxPerAddress = 120
	}
	if c.PasswordThrottle.Window == 0 {
		c.PasswordThrottle.Window = 15 * time.Minute
	}
	if c.PasswordThrottle.MaxPerLoginID == 0 {
		c.PasswordThrottle.MaxPerLoginID = 10
	}
	if c.PasswordThrottle.MaxPerAddress == 0 {
		c.PasswordThrottle.MaxPerAddress = 100
	}
	if c.PasskeyMailSubject == "" {
		c.PasskeyMailSubject = "【コムストックローン】パスキー登録のお知らせ"
	}
	if c.ACR.Passkey == "" {
		c.ACR.Passkey = "phr"
	}
	if c.ACR.PasswordOTP == "" {
		c.ACR.PasswordOTP = "urn:comstockloan:acr:mfa"
	}
	if c.ACR.Password == "" {
		c.ACR.Password = "urn:comstockloan:acr:pwd"
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// PasswordThrottle: after MaxPerLoginID failed password checks for one login
// ID, or MaxPerAddress from one client address, within Window, further
// attempts are refused until old failures leave the window.
// CeremonyLimit bounds the WebAuthn JSON calls (options and finish) per
// client address: each one writes a challenge or verifies a signature, so
// an unbounded loop of them fills the database or the CPU.
type CeremonyLimit struct {
	Window        time.Duration // default 1m
	MaxPerAddress int           // default 120: a login needs 2–4, and carriers' NAT puts many customers behind one address
}

type PasswordThrottle struct {
	Window        time.Duration // default 15m
	MaxPerLoginID int           // default 10
	MaxPerAddress int           // default 100 (a shop's or office's NAT)
}
