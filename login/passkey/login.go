package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/comstockloan/idp/storage"
)

// LoginResult is who signed in, with which passkey and how.
type LoginResult struct {
	User       *storage.User
	Credential *storage.Credential // as stored after this login's write-back
	// CrossDevice is true when the browser reported a cross-platform
	// authenticator (typically a phone via QR code): the page then offers
	// to create a passkey on this device (S5).
	CrossDevice bool
	// AMR are the RFC 8176 methods: "hwk" for a device-bound key or "swk"
	// for a synced one, then "user" (UV) and "mfa" (possession + UV).
	AMR []string
	// SignCountRegressed: this assertion's signature counter was not above
	// the stored one (both non-zero), so the passkey may have been cloned;
	// ReportedSignCount is what the authenticator said, Credential.SignCount
	// the stored counter, which never goes down. The login still
	// succeeds (see FinishLogin); the caller records the event.
	SignCountRegressed bool
	ReportedSignCount  uint32
}

// BeginLogin starts a usernameless passkey login within flowID and returns
// {"publicKey": {...}} (plus "mediation": "conditional" for autofill) for
// PublicKeyCredential.parseRequestOptionsFromJSON. allowCredentials stays
// empty so the browser offers every passkey, including one on a phone.
func (s *Service) BeginLogin(ctx context.Context, flowID string, conditional bool) (json.RawMessage, error) {
	mediation := protocol.MediationDefault
	if conditional {
		mediation = protocol.MediationConditional
	}
	assertion, session, err := s.webAuthn.BeginDiscoverableMediatedLogin(mediation,
		webauthn.WithUserVerification(protocol.VerificationRequired),
		webauthn.WithAssertionPublicKeyCredentialHints(hints))
	if err != nil {
		return nil, fmt.Errorf("passkey: begin login: %w", err)
	}
	if err := s.saveSession(ctx, CeremonyLogin, "", flowID, session); err != nil {
		return nil, fmt.Errorf("passkey: begin login: %w", err)
	}
	out, err := json.Marshal(assertion)
	if err != nil {
		return nil, fmt.Errorf("passkey: encode request options: %w", err)
	}
	return out, nil
}

// FinishLogin verifies the browser's assertion (the JSON of
// credential.toJSON()) against the ceremony begun in the same flow.
//
// Sign-count policy: when both the stored and the reported counter are
// non-zero and the reported one is not greater, the passkey may have been
// cloned. We set CloneWarning on the stored credential, log a warning and
// still let the customer in: synced passkeys report 0 and some
// authenticators misbehave, so refusing would lock customers out, while the
// support centre sees the flag in S8 and the CLI. The stored counter never
// goes down, so later regressions are detected against the highest value.
func (s *Service) FinishLogin(ctx context.Context, flowID string, assertionJSON []byte) (*LoginResult, error) {
	return s.finishLogin(ctx, flowID, "", assertionJSON)
}

// FinishStepUp is FinishLogin for a user who is signed in already (S8's
// re-authentication): the passkey must be userID's. Another user's passkey
// is refused with a *WrongUserError before anything is written, so it
// leaves no trace on that passkey (counter, last use).
func (s *Service) FinishStepUp(ctx context.Context, flowID, userID string, assertionJSON []byte) (*LoginResult, error) {
	if userID == "" {
		return nil, errors.New("passkey: step-up without a user")
	}
	return s.finishLogin(ctx, flowID, userID, assertionJSON)
}

// finishLogin verifies an assertion; owner, when set, is the only user
// whose passkey is accepted.
func (s *Service) finishLogin(ctx context.Context, flowID, owner string, assertionJSON []byte) (*LoginResult, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertionJSON)
	if err != nil {
		s.logger.InfoContext(ctx, "passkey login: unparsable assertion", "err", err)
		return nil, verificationError(err)
	}
	_, session, err := s.takeSession(ctx, parsed.Response.CollectedClientData.Challenge, CeremonyLogin, flowID)
	if err != nil {
		s.logger.InfoContext(ctx, "passkey login refused", "err", err)
		return nil, err
	}

	// The library wraps what the handler returns in its own error type; keep
	// our own error and record to act on them precisely.
	var (
		user      *storage.User
		stored    *storage.Credential
		lookupErr error
	)
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		user, stored, lookupErr = s.discover(ctx, rawID, userHandle)
		if lookupErr != nil {
			return nil, lookupErr
		}
		return webAuthnUser{user: user, creds: []webauthn.Credential{toLibrary(stored)}}, nil
	}
	_, _, err = s.webAuthn.ValidatePasskeyLogin(handler, *session, parsed)
	if err != nil {
		switch {
		case lookupErr != nil && (errors.Is(lookupErr, ErrUnknownCredential) || errors.Is(lookupErr, ErrVerification)):
			err = lookupErr
		case lookupErr != nil:
			return nil, fmt.Errorf("passkey: finish login: %w", lookupErr)
		default:
			err = verificationError(err)
		}
		s.logger.InfoContext(ctx, "passkey login refused", "err", err)
		return nil, err
	}

	if owner != "" && user.ID != owner {
		s.logger.InfoContext(ctx, "passkey step-up refused: another user's passkey", "user", owner, "asserted_user", user.ID)
		return nil, &WrongUserError{AssertedUserID: user.ID}
	}
	if user.Locked {
		s.logger.InfoContext(ctx, "passkey login refused: user locked", "user", user.ID)
		return nil, ErrLocked
	}

	authData := parsed.Response.AuthenticatorData
	use := storage.CredentialUse{
		SignCount:    stored.SignCount,
		BackupState:  authData.Flags.HasBackupState(),
		UserVerified: stored.UserVerified || authData.Flags.HasUserVerified(),
		CloneWarning: stored.CloneWarning,
		UsedAt:       s.now().UTC(),
	}
	reported := authData.Counter
	regressed := signCountRegressed(stored.SignCount, reported)
	switch {
	case regressed:
		use.CloneWarning = true
		s.logger.WarnContext(ctx, "passkey login: sign counter did not increase, possible cloned authenticator",
			"user", user.ID, "stored_sign_count", stored.SignCount, "reported_sign_count", reported)
	case reported > stored.SignCount:
		use.SignCount = reported
	}

	if err := s.store.UpdateCredentialUse(ctx, stored.ID, use); err != nil {
		return nil, fmt.Errorf("passkey: record credential use: %w", err)
	}
	stored.SignCount = use.SignCount
	stored.BackupState = use.BackupState
	stored.UserVerified = use.UserVerified
	stored.CloneWarning = use.CloneWarning
	stored.LastUsedAt = &use.UsedAt

	crossDevice := parsed.AuthenticatorAttachment == protocol.CrossPlatform
	s.logger.InfoContext(ctx, "passkey login", "user", user.ID, "cross_device", crossDevice,
		"backup_eligible", stored.BackupEligible)
	return &LoginResult{
		User:               user,
		Credential:         stored,
		CrossDevice:        crossDevice,
		AMR:                amr(stored.BackupEligible),
		SignCountRegressed: regressed,
		ReportedSignCount:  reported,
	}, nil
}

// signCountRegressed is the clone check of WebAuthn §6.1.1: a counter
// that is in use (non-zero on both sides) must grow with every assertion.
// Synced passkeys report 0 and are never judged.
func signCountRegressed(stored, reported uint32) bool {
	return reported != 0 && stored != 0 && reported <= stored
}

// maxUserHandleBytes is WebAuthn's limit on a user handle.
const maxUserHandleBytes = 64

// discover resolves the credential and its owner for a discoverable
// assertion. It does not look at Locked: that is checked only after the
// signature, so the answer reveals nothing to someone without the key. The
// credential must exist and belong to the user named by the
// user handle: a valid signature by one user's passkey must not sign in
// another user whose handle was put in the response.
func (s *Service) discover(ctx context.Context, rawID, userHandle []byte) (*storage.User, *storage.Credential, error) {
	// The user handle is client-supplied bytes; only a plausible user ID
	// (storable text of at most the 64 bytes WebAuthn allows) is compared
	// with the stored one.
	if len(userHandle) == 0 || !storage.StorableText(string(userHandle), maxUserHandleBytes) {
		return nil, nil, fmt.Errorf("%w: malformed user handle", ErrVerification)
	}
	cred, err := s.store.CredentialByID(ctx, rawID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, newUnknownCredentialError(rawID, s.rpID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load credential: %w", err)
	}
	if !bytes.Equal([]byte(cred.UserID), userHandle) {
		return nil, nil, fmt.Errorf("%w: credential does not belong to the user handle's user", ErrVerification)
	}
	user, err := s.store.UserByID(ctx, cred.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: credential's user no longer exists", ErrVerification)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load user: %w", err)
	}
	return user, cred, nil
}

// amr returns the RFC 8176 methods of a passkey login.
func amr(backupEligible bool) []string {
	key := "hwk"
	if backupEligible {
		key = "swk"
	}
	return []string{key, "user", "mfa"}
}
