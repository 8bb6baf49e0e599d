package server

import (
	"reflect"
	"slices"
	"testing"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/login"
	"github.com/comstockloan/idp/op"
)

// fileWithOnlyRequiredKeys is a configuration file that leaves every
// default to the program.
const fileWithOnlyRequiredKeys = `
issuer: https://id.example.com
database: postgres://idp@db/idp
crypto_key: 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
smtp: {host: smtp.example.com}
clients:
  - id: web
    secret_hash: $2a$10$abcdefghijklmnopqrstuu5W1eTu8C9cZp5M9aQxQ6mP1lWcE4b6y
    redirect_uris: [https://www.example.com/cb]
`

func parseDefaults(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fileWithOnlyRequiredKeys))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

// The login pages a file without optional keys configures are the pages'
// own defaults: the file's defaults and package login's cannot drift (the
// support hours once read 「9:00 – 17:00」 in one and 「9:00–17:00」 in the
// other).
func TestFileDefaultsAreTheLoginPagesDefaults(t *testing.T) {
	got := LoginConfig(parseDefaults(t), "")
	want := login.DefaultConfig()
	// What only the deployment knows, or derives from other keys.
	want.SecureCookies, want.HomeURL, want.Issuer = true, "https://www.example.com/", "https://id.example.com"
	// No file key (webauthn.max_calls_per_address is 0 unless set): the
	// pages fill these themselves.
	want.CeremonyLimit = login.CeremonyLimit{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the file's defaults map onto\n%+v\nbut the login pages' defaults are\n%+v", got, want)
	}
	if got.Support.Hours != "平日 9:00 – 17:00" {
		t.Errorf("support hours %q, want the customer manual's 「平日 9:00 – 17:00」", got.Support.Hours)
	}
}

// Likewise the OpenID provider: the file's defaults leave nothing for
// op's own defaults to change.
func TestFileDefaultsAreTheProvidersDefaults(t *testing.T) {
	got, err := OPConfig(parseDefaults(t))
	if err != nil {
		t.Fatal(err)
	}
	want := op.Config{Issuer: got.Issuer, CryptoKey: got.CryptoKey}
	for _, c := range got.Clients {
		c.Scopes = nil
		want.Clients = append(want.Clients, c)
	}
	if err := want.Validate(); err != nil {
		t.Fatalf("op defaults: %v", err)
	}
	if !slices.Equal(got.Clients[0].Scopes, op.DefaultScopes()) {
		t.Errorf("client scopes %v, want op's default %v", got.Clients[0].Scopes, op.DefaultScopes())
	}
	// The file leaves the clock to op and the logout landing page to its
	// default; zero them so the rest compares as values.
	want.Clock, want.LogoutLandingURL = nil, ""
	want.Throttle = op.Throttle{} // oauth_throttle's zeros take op's defaults in op.New
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the file's defaults map onto\n%+v\nbut op's defaults are\n%+v", got, want)
	}
}
