package op

import (
	"log/slog"
	"testing"
	"time"
)

// An RP's logout carries an old ID token as id_token_hint; its key must
// still be published for as long as a refresh token can keep that RP
// session going, or logout fails with "id_token_hint invalid".
func TestRetiredKeyOutlivesEveryTokenLifetime(t *testing.T) {
	cfg := Config{
		Issuer: "https://idp.example", CryptoKey: [32]byte{1}, SigningAlgorithm: "ES256",
		Clients: []ClientConfig{{ID: "web", Public: true, RedirectURIs: []string{"https://rp.example/cb"},
			RefreshTokenLifetime: 90 * 24 * time.Hour}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := newKeyManager(cfg, nil, slog.New(slog.DiscardHandler), func() time.Time { return now })
	k, err := m.generate(now, now)
	if err != nil {
		t.Fatal(err)
	}
	if kept := k.ExpiresAt.Sub(k.RetireAt); kept < 90*24*time.Hour {
		t.Errorf("retired key published for %v after retirement, want at least the 90-day refresh lifetime", kept)
	}
}
