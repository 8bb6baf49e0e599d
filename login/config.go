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
	// PasskeyOfferInterval is how long a declined passkey offer after a
	// password login stays declined (passkeyoffer.go).
	PasskeyOfferInterval time.Duration
	Password             PasswordParams
	OTP                  OTPConfig
	ACR                  ACRConfig
	DevMailURL           string // development only: link to the mail sink on S4
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
	// EnrolmentLinkLifetime is how long a staff enrolment link works;
	// EnrolmentMailSubject is the subject of the mail that carries it
	// (both are the CLI's, which issues links; the pages only read them).
	EnrolmentLinkLifetime time.Duration
	EnrolmentMailSubject  string
	// Issuer is the IdP's own URL, for the S8 link in mails (never the
	// request's Host, which the client chooses).
	Issuer string
	// NewDeviceMail mails address 1 when a session starts on a browser
	// the customer never signed in on, with NewDeviceMailSubject; off by
	// default. KnownDevices is how many browsers are remembered per
	// customer, with the mail on or off, so turning it on later does not
	// mail every customer at their next sign-in.
	NewDeviceMail        bool
	NewDeviceMailSubject string
	KnownDevices         int
}

// DefaultConfig is the production configuration of the pages, less what
// only a deployment knows (cookies' Secure flag, OTPKey, URLs, proxies,
// the hashing limiter, which sizes itself from the machine). It is the one
// home of these values: Defaults fills zero fields from it, and the idp
// command's configuration file takes its defaults from it.
func DefaultConfig() Config {
	return Config{
		SiteName: "コムストックローン",
		// As the customer manual's section 7 writes the contact.
		Support: SupportContact{
			Name:  "日証金コムストックローンセンター",
			Email: "comstock@jsf.co.jp",
			Phone: "03-6264-9738",
			Hours: "平日 9:00 – 17:00",
		},
		SessionLifetime: 8 * time.Hour,
		FlowLifetime:    15 * time.Minute,
		RecentAuth:      5 * time.Minute,
		// The customer said no: ask again in a month, not at every login.
		PasskeyOfferInterval: 30 * 24 * time.Hour,
		Password:             password.DefaultParams,
		OTP: OTPConfig{
			Lifetime:        10 * time.Minute,
			MaxAttempts:     5,
			ResendInterval:  time.Minute,
			MaxSendsPerHour: 5,
			From:            "info@jsfnet.com",
			Subject:         "【コムストックローン】ワンタイムパスワードのお知らせ",
		},
		ACR: ACRConfig{
			Passkey:     "phr",
			PasswordOTP: "urn:comstockloan:acr:mfa",
			Password:    "urn:comstockloan:acr:pwd",
		},
		// 100 per address: a shop's or office's NAT.
		PasswordThrottle: PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 10, MaxPerAddress: 100},
		// A login needs 2–4 calls, and carriers' NAT puts many customers
		// behind one address.
		CeremonyLimit:         CeremonyLimit{Window: time.Minute, MaxPerAddress: 120},
		PasskeyMailSubject:    "【コムストックローン】パスキー登録のお知らせ",
		EnrolmentLinkLifetime: 24 * time.Hour,
		EnrolmentMailSubject:  "【コムストックローン】パスキー登録用リンクのお知らせ",
		NewDeviceMailSubject:  "【コムストックローン】新しい端末からのログインのお知らせ",
		// A phone, a tablet, a home and an office computer, each with a
		// browser or two, and room for a reinstall or a cleared browser.
		KnownDevices: 20,
	}
}

// Defaults fills zero fields from DefaultConfig. The support contact is
// taken whole or not at all, so a deployment's contact is never mixed
// with the default one.
func (c *Config) Defaults() {
	d := DefaultConfig()
	setDefault(&c.SiteName, d.SiteName)
	setDefault(&c.Support, d.Support)
	setDefault(&c.SessionLifetime, d.SessionLifetime)
	setDefault(&c.FlowLifetime, d.FlowLifetime)
	setDefault(&c.RecentAuth, d.RecentAuth)
	setDefault(&c.PasskeyOfferInterval, d.PasskeyOfferInterval)
	setDefault(&c.Password, d.Password)
	setDefault(&c.OTP.Lifetime, d.OTP.Lifetime)
	setDefault(&c.OTP.ResendInterval, d.OTP.ResendInterval)
	setDefault(&c.OTP.MaxAttempts, d.OTP.MaxAttempts)
	setDefault(&c.OTP.MaxSendsPerHour, d.OTP.MaxSendsPerHour)
	setDefault(&c.OTP.From, d.OTP.From)
	setDefault(&c.OTP.Subject, d.OTP.Subject)
	setDefault(&c.CeremonyLimit.Window, d.CeremonyLimit.Window)
	setDefault(&c.CeremonyLimit.MaxPerAddress, d.CeremonyLimit.MaxPerAddress)
	setDefault(&c.PasswordThrottle.Window, d.PasswordThrottle.Window)
	setDefault(&c.PasswordThrottle.MaxPerLoginID, d.PasswordThrottle.MaxPerLoginID)
	setDefault(&c.PasswordThrottle.MaxPerAddress, d.PasswordThrottle.MaxPerAddress)
	setDefault(&c.PasskeyMailSubject, d.PasskeyMailSubject)
	setDefault(&c.NewDeviceMailSubject, d.NewDeviceMailSubject)
	setDefault(&c.KnownDevices, d.KnownDevices)
	setDefault(&c.ACR.Passkey, d.ACR.Passkey)
	setDefault(&c.ACR.PasswordOTP, d.ACR.PasswordOTP)
	setDefault(&c.ACR.Password, d.ACR.Password)
}

// setDefault sets *v to def when *v is the zero value.
func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// CeremonyLimit bounds the WebAuthn JSON calls (options and finish) per
// client address: each one writes a challenge or verifies a signature, so
// an unbounded loop of them fills the database or the CPU.
type CeremonyLimit struct {
	Window        time.Duration
	MaxPerAddress int
}

// PasswordThrottle: after MaxPerLoginID failed password checks for one login
// ID, or MaxPerAddress from one client address, within Window, further
// attempts are refused until old failures leave the window.
type PasswordThrottle struct {
	Window        time.Duration
	MaxPerLoginID int
	MaxPerAddress int
}
