package op_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/op"
)

func TestConfigValidate(t *testing.T) {
	good := func() op.Config { return testConfig("https://id.example.jp/") }

	c := good()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if c.AccessTokenLifetime != 15*time.Minute || c.SigningAlgorithm != "RS256" || c.KeyRotationPeriod != 30*24*time.Hour ||
		c.AuthRequestLifetime != 30*time.Minute || c.CodeLifetime != time.Minute || len(c.Clients[0].Scopes) != 4 ||
		c.Throttle != (op.Throttle{Window: 15 * time.Minute, MaxSecretFailuresPerClient: 100, MaxSecretFailuresPerAddress: 20,
			MaxTokenFailuresPerAddress: 100, MaxConcurrentSecretChecks: 4}) {
		t.Errorf("defaults not applied: %+v", c)
	}

	cases := map[string]struct {
		mutate func(*op.Config)
		want   string
	}{
		"http issuer":      {func(c *op.Config) { c.Issuer = "http://id.example.jp"; c.AllowInsecure = false }, "issuer: must use https"},
		"relative issuer":  {func(c *op.Config) { c.Issuer = "/idp" }, "issuer: must be an absolute URL"},
		"no crypto key":    {func(c *op.Config) { c.CryptoKey = [32]byte{} }, "crypto_key: must be set"},
		"bad algorithm":    {func(c *op.Config) { c.SigningAlgorithm = "HS256" }, "signing_algorithm: must be RS256 or ES256"},
		"publish too late": {func(c *op.Config) { c.KeyPublishDelay = 40 * 24 * time.Hour }, "key_publish_delay: must be shorter"},
		"http redirect": {func(c *op.Config) {
			c.Clients[1].RedirectURIs = []string{"https://ok.example/cb", "http://rp.example/cb"}
		}, "clients[1].redirect_uris[1]: must be an absolute https URL (http only for localhost)"},
		"glob redirect":      {func(c *op.Config) { c.Clients[0].RedirectURIs = []string{"https://*.example/cb#x"} }, "clients[0].redirect_uris[0]:"},
		"bad logout uri":     {func(c *op.Config) { c.Clients[0].PostLogoutRedirectURIs = []string{"javascript:alert(1)"} }, "clients[0].post_logout_redirect_uris[0]:"},
		"no secret":          {func(c *op.Config) { c.Clients[0].SecretHash = "" }, "clients[0].secret_hash: required"},
		"plaintext secret":   {func(c *op.Config) { c.Clients[0].SecretHash = "hunter2" }, "clients[0].secret_hash: must be a bcrypt hash"},
		"public with secret": {func(c *op.Config) { c.Clients[1].SecretHash = c.Clients[0].SecretHash }, "clients[1].secret_hash: must be empty"},
		"duplicate id":       {func(c *op.Config) { c.Clients[1].ID = c.Clients[0].ID }, "clients[1].id: duplicate"},
		"unknown scope":      {func(c *op.Config) { c.Clients[1].Scopes = []string{"openid", "phone"} }, "clients[1].scopes[1]: unknown scope"},
		"no openid":          {func(c *op.Config) { c.Clients[1].Scopes = []string{"profile"} }, "clients[1].scopes: must contain openid"},
		"no clients":         {func(c *op.Config) { c.Clients = nil }, "clients: at least one"},
		"code too short":     {func(c *op.Config) { c.CodeLifetime = 9 * time.Second }, "code_lifetime: must be between 10s and 10m0s"},
		"code too long":      {func(c *op.Config) { c.CodeLifetime = 11 * time.Minute }, "code_lifetime: must be between 10s and 10m0s"},
		"negative code":      {func(c *op.Config) { c.CodeLifetime = -time.Minute }, "code_lifetime: must be between"},
		"throttle window beyond the sweep": {func(c *op.Config) { c.Throttle.Window = 25 * time.Hour },
			"throttle.window: must be between 0 and 24h0m0s"},
		"negative token limit": {func(c *op.Config) { c.Throttle.MaxTokenFailuresPerAddress = -1 },
			"throttle.max_token_failures_per_address: must not be negative"},
		"negative check slots": {func(c *op.Config) { c.Throttle.MaxConcurrentSecretChecks = -1 },
			"throttle.max_concurrent_secret_checks: must not be negative"},
	}
	for name, tc := range cases {
		c := good()
		tc.mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, tc.want)
		}
	}
}

func TestHashClientSecret(t *testing.T) {
	h, err := op.HashClientSecret("a-long-enough-secret")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("a-long-enough-secret")) != nil || !strings.HasPrefix(h, "$2a$") {
		t.Errorf("hash %q does not verify", h)
	}
	if _, err := op.HashClientSecret("short"); err == nil {
		t.Error("short secret accepted")
	}
}
