package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/comstockloan/idp/storage"
)

// BeginRegistration starts creating a passkey for user within flowID and
// returns {"publicKey": {...}} for PublicKeyCredential.parseCreationOptionsFromJSON.
//
// The options require a discoverable credential and user verification, ask
// for no attestation, force no authenticator attachment (so the browser may
// offer a phone or a password manager) and exclude the user's existing
// passkeys so one authenticator is not registered twice.
func (s *Service) BeginRegistration(ctx context.Context, user *storage.User, flowID string) (json.RawMessage, error) {
	if user == nil || user.ID == "" {
		return nil, errors.New("passkey: begin registration without a user")
	}
	if user.Locked {
		return nil, ErrLocked
	}
	existing, err := s.store.CredentialsByUser(ctx, user.ID)
	if err != nil {
		return nil, fmt.Errorf("passkey: list credentials of user %s: %w", user.ID, err)
	}
	exclusions := make([]protocol.CredentialDescriptor, 0, len(existing))
	for i := range existing {
		lib := toLibrary(&existing[i])
		exclusions = append(exclusions, lib.Descriptor())
	}
	creation, session, err := s.webAuthn.BeginRegistration(
		webAuthnUser{user: user},
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			UserVerification:   protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(exclusions),
	)
	if err != nil {
		return nil, fmt.Errorf("passkey: begin registration: %w", err)
	}
	if err := s.saveSession(ctx, CeremonyRegistration, user.ID, flowID, session); err != nil {
		return nil, fmt.Errorf("passkey: begin registration: %w", err)
	}
	// The hints go in after the library: its normalisation would turn the
	// leading client-device hint into authenticatorAttachment "platform",
	// which older browsers enforce, shutting out phones and security keys.
	creation.Response.Hints = hints
	out, err := json.Marshal(creation)
	if err != nil {
		return nil, fmt.Errorf("passkey: encode creation options: %w", err)
	}
	return out, nil
}

// hints lead the browser's chooser with this device, then a phone by QR
// code, so a Windows browser does not open with the USB security key
// prompt the manual's FAQ warns about (WebAuthn Level 3 hints; a browser
// without them ignores the member).
var hints = []protocol.PublicKeyCredentialHints{protocol.PublicKeyCredentialHintClientDevice, protocol.PublicKeyCredentialHintHybrid}

// FinishRegistration verifies the browser's attestation (the JSON of
// credential.toJSON()) against the ceremony begun for the same user in the
// same flow and stores the new passkey. With onlyIfFirst the passkey is only
// stored if the user has none yet (ErrHasPasskey otherwise), atomically.
func (s *Service) FinishRegistration(ctx context.Context, user *storage.User, flowID string, attestationJSON []byte, onlyIfFirst bool) (*storage.Credential, error) {
	if user == nil || user.ID == "" {
		return nil, errors.New("passkey: finish registration without a user")
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(attestationJSON)
	if err != nil {
		s.logger.InfoContext(ctx, "passkey registration: unparsable attestation", "user", user.ID, "err", err)
		return nil, verificationError(err)
	}
	ws, session, err := s.takeSession(ctx, parsed.Response.CollectedClientData.Challenge, CeremonyRegistration, flowID)
	if err != nil {
		s.logger.InfoContext(ctx, "passkey registration refused", "user", user.ID, "err", err)
		return nil, err
	}
	if ws.UserID != user.ID {
		s.logger.WarnContext(ctx, "passkey registration: challenge issued to another user", "user", user.ID, "session_user", ws.UserID)
		return nil, fmt.Errorf("%w: challenge was issued to another user", ErrWrongFlow)
	}
	if user.Locked {
		return nil, ErrLocked
	}
	cred, err := s.webAuthn.CreateCredential(webAuthnUser{user: user}, *session, parsed)
	if err != nil {
		err = verificationError(err)
		s.logger.InfoContext(ctx, "passkey registration: verification failed", "user", user.ID, "err", err)
		return nil, err
	}
	existing, err := s.store.CredentialsByUser(ctx, user.ID)
	if err != nil {
		return nil, fmt.Errorf("passkey: list credentials of user %s: %w", user.ID, err)
	}
	taken := make([]string, 0, len(existing))
	for i := range existing {
		taken = append(taken, existing[i].Name)
	}
	row := fromLibrary(user.ID, cred, parsed.AuthenticatorAttachment, s.now().UTC(), taken)
	if err := s.store.CreateCredential(ctx, row, onlyIfFirst); err != nil {
		switch {
		case errors.Is(err, storage.ErrAlreadyExists):
			s.logger.InfoContext(ctx, "passkey registration: credential already registered", "user", user.ID)
			return nil, ErrAlreadyRegistered
		case errors.Is(err, storage.ErrConflict):
			s.logger.InfoContext(ctx, "passkey registration: user already has a passkey", "user", user.ID)
			return nil, ErrHasPasskey
		}
		return nil, fmt.Errorf("passkey: store credential: %w", err)
	}
	s.logger.InfoContext(ctx, "passkey registered", "user", user.ID, "name", row.Name,
		"backup_eligible", row.BackupEligible, "attachment", row.Attachment)
	return row, nil
}
