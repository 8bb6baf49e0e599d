package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validYAML = `
issuer: https://id.example.com
database: postgres://idp@db/idp
crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
smtp: {host: smtp.example.com, username: u, password: p}
clients:
  - id: web
    secret_hash: $2a$10$abcdefghijklmnopqrstuu5W1eTu8C9cZp5M9aQxQ6mP1lWcE4b6y
    redirect_uris: [https://www.example.com/cb]
`

func TestParseValidAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.WebAuthn.RPID != "id.example.com" || c.WebAuthn.Origins[0] != "https://id.example.com" {
		t.Errorf("webauthn defaults from issuer: %+v", c.WebAuthn)
	}
	if c.SMTP.From != "info@jsfnet.com" || c.SMTP.Subject != "【コムストックローン】ワンタイムパスワードのお知らせ" || c.SMTP.Port != 587 {
		t.Errorf("smtp defaults: %+v", c.SMTP)
	}
	if c.Password.MemoryKiB != 19456 || c.OTP.MaxAttempts != 5 || c.Clients[0].Scopes[0] != "openid" {
		t.Errorf("defaults not applied: %+v %+v %+v", c.Password, c.OTP, c.Clients[0])
	}
	if _, err := c.CryptoKeyBytes(); err != nil {
		t.Errorf("crypto key: %v", err)
	}
	// As the customer manual writes them.
	if c.Support.Hours != "平日 9:00 – 17:00" {
		t.Errorf("support.hours default %q, want the manual's 「平日 9:00 – 17:00」", c.Support.Hours)
	}
	if c.Audit.SealInterval != 10*time.Second || c.Audit.CheckpointInterval != 5*time.Minute {
		t.Errorf("audit defaults: %+v", c.Audit)
	}
	// The new sign-in mail is off unless the operator turns it on.
	if c.Devices.NewDeviceMail || c.Devices.Remember != 20 || c.SMTP.NewDeviceSubject != "【コムストックローン】新しい端末からのログインのお知らせ" {
		t.Errorf("devices defaults: %+v, subject %q", c.Devices, c.SMTP.NewDeviceSubject)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := map[string]struct{ from, to, want string }{
		"unknown key":       {"issuer:", "isuer: x\nissuer:", "field isuer not found"},
		"http issuer":       {"https://id.example.com", "http://id.example.com", "issuer: must use https"},
		"bad database":      {"postgres://idp@db/idp", "mysql://x", "database: must start with"},
		"short crypto key":  {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "abcd", "crypto_key: must decode to exactly 32 bytes"},
		"bad redirect":      {"https://www.example.com/cb", "http://www.example.com/cb", "clients[0].redirect_uris[0]: must use https"},
		"fragment redirect": {"https://www.example.com/cb", "https://www.example.com/cb#x", "clients[0].redirect_uris[0]: must not have a fragment"},
		"plain secret":      {"$2a$10$abcdefghijklmnopqrstuu5W1eTu8C9cZp5M9aQxQ6mP1lWcE4b6y", "hunter2", "clients[0].secret_hash: must be a bcrypt hash"},
		"smtp tls":          {"host: smtp.example.com,", "host: smtp.example.com, tls: ssl,", `smtp.tls: must be "starttls"`},
		"ip rp id":          {"smtp:", "webauthn: {rp_id: 10.0.0.1}\nsmtp:", "webauthn.rp_id: must be a domain"},
		"audit intervals":   {"smtp:", "audit: {seal_interval: 1m, checkpoint_interval: 30s}\nsmtp:", "audit.checkpoint_interval: must be at least audit.seal_interval"},
		"metrics address":   {"smtp:", "metrics_listen: localhost\nsmtp:", "metrics_listen: must be host:port"},
		"metrics public":    {"smtp:", "metrics_listen: \":8080\"\nsmtp:", "metrics_listen: must differ from listen"},
		"devices remember":  {"smtp:", "devices: {remember: -1}\nsmtp:", "devices.remember: must be positive"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			y := strings.Replace(validYAML, tc.from, tc.to, 1)
			if y == validYAML {
				t.Fatalf("replacement %q not applied", tc.from)
			}
			_, err := Parse([]byte(y))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSecretsFromEnvironmentAndFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(validYAML, "crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "crypto_key_file: "+keyFile, 1)
	t.Setenv(EnvDatabase, "sqlite:/tmp/x.db")
	t.Setenv(EnvSMTPPassword, "from-env")
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	k, _ := c.CryptoKeyBytes()
	if k[0] != 0x1f || c.Database != "sqlite:/tmp/x.db" || c.SMTP.Password != "from-env" {
		t.Errorf("secrets not resolved: key[0]=%x db=%q smtp=%q", k[0], c.Database, c.SMTP.Password)
	}
}

func TestExampleConfigIsValidOnceSecretsAreGiven(t *testing.T) {
	raw, err := os.ReadFile("../../../../deploy/idp.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(raw), "crypto_key_file: /run/secrets/idp-crypto-key", "", 1)
	y = strings.Replace(y, "password_file: /run/secrets/idp-smtp-password", "", 1)
	t.Setenv(EnvCryptoKey, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	t.Setenv(EnvSMTPPassword, "x")
	if _, err := Parse([]byte(y)); err != nil {
		t.Fatalf("deploy/idp.example.yaml: %v", err)
	}
}
