package passkey

import (
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/comstockloan/idp/storage"
)

// webAuthnUser adapts a storage.User and the credentials relevant to one
// ceremony to the library's User interface.
type webAuthnUser struct {
	user  *storage.User
	creds []webauthn.Credential
}

// WebAuthnID is the user handle: the opaque, stable user ID, never the login
// ID, so that changing a login ID does not orphan passkeys and the handle
// reveals nothing.
func (u webAuthnUser) WebAuthnID() []byte { return []byte(u.user.ID) }

func (u webAuthnUser) WebAuthnName() string { return u.user.LoginID }

func (u webAuthnUser) WebAuthnDisplayName() string {
	if u.user.DisplayName != "" {
		return u.user.DisplayName
	}
	return u.user.LoginID
}

func (u webAuthnUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// toLibrary rebuilds the library's credential record from a stored one. The
// flags are fed back so the library can refuse a BackupEligible mismatch.
func toLibrary(c *storage.Credential) webauthn.Credential {
	var flags protocol.AuthenticatorFlags
	if c.UserPresent {
		flags |= protocol.FlagUserPresent
	}
	if c.UserVerified {
		flags |= protocol.FlagUserVerified
	}
	if c.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if c.BackupState {
		flags |= protocol.FlagBackupState
	}
	transports := make([]protocol.AuthenticatorTransport, 0, len(c.Transports))
	for _, t := range c.Transports {
		transports = append(transports, protocol.AuthenticatorTransport(t))
	}
	return webauthn.Credential{
		ID:              c.ID,
		PublicKey:       c.PublicKey,
		AttestationType: c.AttestationType,
		Transport:       transports,
		Flags:           webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{
			AAGUID:       c.AAGUID,
			SignCount:    c.SignCount,
			CloneWarning: c.CloneWarning,
			Attachment:   protocol.AuthenticatorAttachment(c.Attachment),
		},
	}
}

// fromLibrary turns a freshly verified registration into the row we store.
func fromLibrary(userID string, c *webauthn.Credential, attachment protocol.AuthenticatorAttachment, now time.Time) *storage.Credential {
	transports := make([]string, 0, len(c.Transport))
	for _, t := range c.Transport {
		transports = append(transports, string(t))
	}
	return &storage.Credential{
		ID:              c.ID,
		UserID:          userID,
		PublicKey:       c.PublicKey,
		AttestationType: c.AttestationType,
		AAGUID:          c.Authenticator.AAGUID,
		SignCount:       c.Authenticator.SignCount,
		Transports:      transports,
		UserPresent:     c.Flags.UserPresent,
		UserVerified:    c.Flags.UserVerified,
		BackupEligible:  c.Flags.BackupEligible,
		BackupState:     c.Flags.BackupState,
		Attachment:      string(attachment),
		Name:            DefaultName(c.Authenticator.AAGUID, now),
		CreatedAt:       now,
	}
}

// wellKnownAAGUIDs names the passkey providers customers are most likely to
// use, so S8 can show 「iCloud キーチェーン」 rather than a date. AAGUIDs from
// the community list passkey-authenticator-aaguids.
var wellKnownAAGUIDs = map[uuid.UUID]string{
	uuid.MustParse("fbfc3007-154e-4ecc-8c0b-6e020557d7bd"): "iCloud キーチェーン",
	uuid.MustParse("dd4ec289-e01d-41c9-bb89-70fa845d4bf2"): "iCloud キーチェーン",
	uuid.MustParse("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"): "Google パスワードマネージャー",
	uuid.MustParse("adce0002-35bc-c60a-648b-0b25f1f05503"): "Chrome (Mac)",
	uuid.MustParse("08987058-cadc-4b81-b6e1-30de50dcbe96"): "Windows Hello",
	uuid.MustParse("9ddd1817-af5a-4672-a2b9-3e3dd95000a9"): "Windows Hello",
	uuid.MustParse("6028b017-b1d4-4c02-b4b3-afcdafc96bb2"): "Windows Hello",
	uuid.MustParse("d3452668-01fd-4c12-926c-83a4204853aa"): "Microsoft パスワードマネージャー",
	uuid.MustParse("bada5566-a7aa-401f-bd96-45619a55120d"): "1Password",
	uuid.MustParse("d548826e-79b4-db40-a3d8-11116f7e8349"): "Bitwarden",
}

// DefaultName is the name a new passkey gets: its provider when the AAGUID is
// a well-known one, otherwise 「パスキー (YYYY/MM/DD)」 in Japan time.
func DefaultName(aaguid []byte, created time.Time) string {
	if id, err := uuid.FromBytes(aaguid); err == nil {
		if name, ok := wellKnownAAGUIDs[id]; ok {
			return name
		}
	}
	return "パスキー (" + created.In(japan).Format("2006/01/02") + ")"
}

// japan is JST as a fixed zone: no tzdata needed and Japan has no DST.
var japan = time.FixedZone("JST", 9*60*60)
