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
	// Credentials are all of User's passkeys as the login read them with
	// the one used, Credential's write-back included: the Signal API's
	// accepted list, with no second read.
	Credentials []storage.Credential
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

// finishLogin verifies an assertion; onlyUser, when set, is the only user
// whose passkey is accepted.
func (s *Service) finishLogin(ctx context.Context, flowID, onlyUser string, assertionJSON []byte) (*LoginResult, error) {
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
		owner     *storage.CredentialOwner
		lookupErr error
	)
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		owner, lookupErr = s.discover(ctx, rawID, userHandle)
		if lookupErr != nil {
			return nil, lookupErr
		}
		return webAuthnUser{user: &owner.User, creds: []webauthn.Credential{toLibrary(&owner.Credential)}}, nil
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

	user, stored := &owner.User, &owner.Credential
	if onlyUser != "" && user.ID != onlyUser {
		s.logger.InfoContext(ctx, "passkey step-up refused: another user's passkey", "user", onlyUser, "asserted_user", user.ID)
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
	for i := range owner.Credentials {
		if bytes.Equal(owner.Credentials[i].ID, stored.ID) {
			owner.Credentials[i] = *stored
		}
	}

	crossDevice := parsed.AuthenticatorAttachment == protocol.CrossPlatform
	s.logger.InfoContext(ctx, "passkey login", "user", user.ID, "cross_device", crossDevice,
		"backup_eligible", stored.BackupEligible)
	return &LoginResult{
		User:               user,
		Credential:         stored,
		Credentials:        owner.Credentials,
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

// discover resolves the credential, its owner and the owner's other
// passkeys for a discoverable assertion, in one read. It does not look at
// Locked: that is checked only after the signature, so the answer reveals
// nothing to someone without the key. The credential must exist and
// belong to the user named by the user handle: a valid signature by one
// user's passkey must not sign in another user whose handle was put in the
// response.
func (s *Service) discover(ctx context.Context, rawID, userHandle []byte) (*storage.CredentialOwner, error) {
	// The user handle is client-supplied bytes; only a plausible user ID
	// (storable text of at most the 64 bytes WebAuthn allows) is compared
	// with the stored one.
	if len(userHandle) == 0 || !storage.StorableText(string(userHandle), maxUserHandleBytes) {
		return nil, fmt.Errorf("%w: malformed user handle", ErrVerification)
	}
	owner, err := s.store.CredentialOwner(ctx, rawID)
	if errors.Is(err, storage.ErrNotFound) {
		// Also a credential whose user was deleted: deleting a user
		// deletes their passkeys with them.
		return nil, newUnknownCredentialError(rawID, s.rpID)
	}
	if err != nil {
		return nil, fmt.Errorf("load credential: %w", err)
	}
	if !bytes.Equal([]byte(owner.Credential.UserID), userHandle) {
		return nil, fmt.Errorf("%w: credential does not belong to the user handle's user", ErrVerification)
	}
	return owner, nil
}

// amr returns the RFC 8176 methods of a passkey login.
func amr(backupEligible bool) []string {
	key := "hwk"
	if backupEligible {
		key = "swk"
	}
	return []string{key, "user", "mfa"}
}
