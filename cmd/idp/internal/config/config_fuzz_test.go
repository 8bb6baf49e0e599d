package config

import (
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds the loader arbitrary files. Whatever it accepts must be a
// configuration the server can run with: complete (Defaults has nothing left
// to fill), valid on a second look, with a usable crypto key, an https (or
// loopback) issuer and client URIs, and no limit or lifetime that is zero or
// negative (a negative OTP lifetime would expire every code at birth, a
// negative send limit would throttle every customer).
func FuzzParse(f *testing.F) {
	for _, env := range []string{EnvDatabase, EnvCryptoKey, EnvSMTPPassword} {
		if os.Getenv(env) != "" {
			f.Skipf("%s is set: the loader would read it instead of the fuzzed file", env)
		}
	}
	f.Add([]byte(validYAML))
	f.Fuzz(func(t *testing.T, raw []byte) {
		// *_file keys make the loader read a path; a path into /dev or
		// /proc may never end. The operator writes this file, so that is
		// not an attack, only a way to hang the fuzzer.
		if strings.Contains(string(raw), "/dev") || strings.Contains(string(raw), "/proc") || strings.Contains(string(raw), "/sys") {
			return // not an input worth judging
		}
		c, err := Parse(raw)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			return
		}
		again := *c
		again.Defaults()
		if !reflect.DeepEqual(&again, c) {
			t.Fatalf("Defaults still changes an accepted config:\n%+v\n%+v", c, &again)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate again: %v", err)
		}
		if _, err := c.CryptoKeyBytes(); err != nil {
			t.Fatalf("accepted config has no crypto key: %v", err)
		}
		mustBeSecureURL(t, "issuer", c.Issuer)
		if c.WebAuthn.RPID == "" || len(c.WebAuthn.Origins) == 0 {
			t.Fatalf("accepted config has no WebAuthn relying party: %+v", c.WebAuthn)
		}
		if len(c.Clients) == 0 {
			t.Fatal("accepted config has no client")
		}
		for _, cl := range c.Clients {
			if cl.ID == "" || len(cl.RedirectURIs) == 0 || len(cl.Scopes) == 0 {
				t.Fatalf("accepted client is incomplete: %+v", cl)
			}
			for _, u := range append(append([]string{}, cl.RedirectURIs...), cl.PostLogoutRedirectURIs...) {
				mustBeSecureURL(t, "client "+cl.ID+" URI", u)
			}
		}
		for name, d := range map[string]time.Duration{
			"password.throttle_window": c.Password.ThrottleWindow, "otp.lifetime": c.OTP.Lifetime,
			"otp.resend_interval": c.OTP.ResendInterval, "lifetimes.session": c.Lifetimes.Session,
			"lifetimes.login_flow": c.Lifetimes.LoginFlow, "lifetimes.recent_auth": c.Lifetimes.RecentAuth,
			"lifetimes.auth_request": c.Lifetimes.AuthRequest, "lifetimes.code": c.Lifetimes.Code,
			"lifetimes.access_token": c.Lifetimes.AccessToken, "lifetimes.id_token": c.Lifetimes.IDToken,
			"lifetimes.refresh_token": c.Lifetimes.RefreshToken, "keys.rotation_period": c.Keys.RotationPeriod,
			"keys.publish_delay": c.Keys.PublishDelay,
		} {
			if d <= 0 {
				t.Fatalf("accepted config has %s = %v", name, d)
			}
		}
		for name, n := range map[string]int{
			"password.max_failures_per_login_id": c.Password.MaxFailuresPerLoginID,
			"password.max_failures_per_address":  c.Password.MaxFailuresPerAddress,
			"otp.max_attempts":                   c.OTP.MaxAttempts, "otp.max_sends_per_hour": c.OTP.MaxSendsPerHour,
		} {
			if n <= 0 {
				t.Fatalf("accepted config has %s = %d", name, n)
			}
		}
	})
}

// mustBeSecureURL fails unless raw is an absolute https URL, or http on a
// loopback host.
func mustBeSecureURL(t *testing.T, what, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Fatalf("accepted %s %q is not an absolute URL (%v)", what, raw, err)
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		t.Fatalf("accepted %s %q is neither https nor loopback http", what, raw)
	}
}
