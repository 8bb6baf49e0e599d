// Package passkey runs the WebAuthn ceremonies of the identity provider:
// registering a passkey for a known user and signing a customer in with a
// discoverable (usernameless) passkey.
//
// Nothing of a ceremony is kept in process memory: Begin* stores the
// library's SessionData with storage.Store.SaveWebAuthnSession, keyed by the
// challenge, and Finish* takes it back (read and deleted in one step), so any
// replica can finish what another began and no challenge can be used twice.
package passkey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/comstockloan/idp/storage"
)

// DefaultTimeout is how long a ceremony may take when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Minute

// Ceremony kinds as stored in storage.WebAuthnSession.Ceremony.
const (
	CeremonyRegistration = "registration"
	CeremonyLogin        = "login"
)

// Config describes the relying party the passkeys are bound to.
type Config struct {
	RPID          string   // a domain ("localhost" in dev), never an IP
	RPDisplayName string   // "コムストックローン"
	Origins       []string // exact origins, e.g. "http://localhost:8080"
	// RelatedOrigins are the group's other https origins allowed to use
	// RPID's passkeys (relatedorigins.go); assertions and attestations
	// from them verify like those of Origins.
	RelatedOrigins []string
	Timeout        time.Duration // ceremony lifetime; DefaultTimeout when zero
}

// Service runs the ceremonies. It holds no per-ceremony state and is safe for
// concurrent use.
type Service struct {
	webAuthn *webauthn.WebAuthn
	store    Store
	logger   *slog.Logger
	rpID     string
	timeout  time.Duration
	now      func() time.Time
}

// New validates cfg and returns a Service that keeps ceremony state in store.
func New(cfg Config, store Store, logger *slog.Logger) (*Service, error) {
	if store == nil {
		return nil, errors.New("passkey: nil store")
	}
	if logger == nil {
		return nil, errors.New("passkey: nil logger")
	}
	if len(cfg.Origins) == 0 {
		return nil, errors.New("passkey: no origins configured")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	// Enforced so that the library refuses a late response even if our own
	// ExpiresAt check were ever bypassed; UVD timeouts are unused (UV is
	// always required) but set so no zero slips into the options.
	ceremonyTimeout := webauthn.TimeoutConfig{Enforce: true, Timeout: timeout, TimeoutUVD: timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         cfg.RPDisplayName,
		RPOrigins:             slices.Concat(cfg.Origins, cfg.RelatedOrigins),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{Login: ceremonyTimeout, Registration: ceremonyTimeout},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: configure webauthn: %w", err)
	}
	return &Service{
		webAuthn: wa,
		store:    store,
		logger:   logger,
		rpID:     cfg.RPID,
		timeout:  timeout,
		now:      time.Now,
	}, nil
}

// RPID is the relying party ID the passkeys are scoped to; the page needs it
// for PublicKeyCredential.signalUnknownCredential.
func (s *Service) RPID() string { return s.rpID }

// saveSession stores the library's session data under its challenge.
func (s *Service) saveSession(ctx context.Context, ceremony, userID, flowID string, data *webauthn.SessionData) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode webauthn session: %w", err)
	}
	now := s.now().UTC()
	err = s.store.SaveWebAuthnSession(ctx, &storage.WebAuthnSession{
		Challenge: data.Challenge,
		Ceremony:  ceremony,
		UserID:    userID,
		FlowID:    flowID,
		Data:      raw,
		CreatedAt: now,
		ExpiresAt: now.Add(s.timeout),
	})
	if err != nil {
		return fmt.Errorf("save webauthn session: %w", err)
	}
	return nil
}

// takeSession removes the ceremony named by challenge from the store and
// checks that it is the expected kind and belongs to flowID. The row is gone
// after this call whatever it returns.
func (s *Service) takeSession(ctx context.Context, challenge, ceremony, flowID string) (*storage.WebAuthnSession, *webauthn.SessionData, error) {
	if !plausibleChallenge(challenge) {
		return nil, nil, fmt.Errorf("%w: response carries no valid challenge", ErrVerification)
	}
	now := s.now().UTC()
	ws, err := s.store.TakeWebAuthnSession(ctx, challenge, now)
	if errors.Is(err, storage.ErrNotFound) {
		// Unknown, already finished (replay) or expired: the customer
		// simply has to start again.
		return nil, nil, ErrCeremonyExpired
	}
	if err != nil {
		return nil, nil, fmt.Errorf("take webauthn session: %w", err)
	}
	if ws.Ceremony != ceremony {
		return nil, nil, fmt.Errorf("%w: challenge was issued for %q, not %q", ErrWrongFlow, ws.Ceremony, ceremony)
	}
	if ws.FlowID != flowID {
		return nil, nil, fmt.Errorf("%w: challenge belongs to another flow", ErrWrongFlow)
	}
	if !now.Before(ws.ExpiresAt) {
		return nil, nil, ErrCeremonyExpired
	}
	var data webauthn.SessionData
	if err := json.Unmarshal(ws.Data, &data); err != nil {
		return nil, nil, fmt.Errorf("decode webauthn session: %w", err)
	}
	if data.Challenge != challenge {
		return nil, nil, fmt.Errorf("%w: stored session does not match its challenge", ErrVerification)
	}
	return ws, &data, nil
}

// plausibleChallenge keeps client-chosen junk (NUL bytes, megabytes) away
// from the database, where it would be a server error instead of a 4xx. Our
// challenges are 32 random bytes, base64url without padding.
func plausibleChallenge(challenge string) bool {
	if len(challenge) == 0 || len(challenge) > 128 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(challenge)
	return err == nil && len(raw) >= protocol.MinimumChallengeLength
}

// verificationError wraps a library rejection as ErrVerification, keeping
// the library's developer detail for the log.
func verificationError(err error) error {
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.DevInfo != "" {
		return fmt.Errorf("%w: %s (%s)", ErrVerification, perr.Details, perr.DevInfo)
	}
	return fmt.Errorf("%w: %v", ErrVerification, err)
}
