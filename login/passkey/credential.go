package passkey

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/comstockloan/idp/login/passkey/aaguid"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
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
// taken are the names of the user's other passkeys.
func fromLibrary(userID string, c *webauthn.Credential, attachment protocol.AuthenticatorAttachment, now time.Time, taken []string) *storage.Credential {
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
		Name:            DefaultName(c.Authenticator.AAGUID, transports, now, taken),
		CreatedAt:       now,
	}
}

// Provider says who keeps a passkey, for S8 and for the name a new passkey
// gets. Key is the catalogue key of a provider named in the customer's words
// (「iCloud キーチェーン」, 「セキュリティキー」) or ""; Product is the AAGUID
// list's name of the model ("Bitwarden", "YubiKey 5 Series with NFC") when
// Key alone does not say it, or "".
type Provider struct {
	Key     string
	Product string
}

// wellKnownProviders maps the AAGUID list's names of the providers the help
// page (S9) names to their catalogue keys.
var wellKnownProviders = map[string]string{
	"Apple Passwords":            "provider.icloud",
	"iCloud Keychain":            "provider.icloud",
	"iCloud Keychain (Managed)":  "provider.icloud",
	"Google Password Manager":    "provider.google",
	"Windows Hello":              "provider.windows_hello",
	"Microsoft Password Manager": "provider.microsoft",
}

// ProviderOf names the provider of a passkey from its AAGUID and, for
// security keys (which the AAGUID list does not tell from apps), its
// transports: a passkey reached only over USB, NFC or Bluetooth is on a key.
// An unknown AAGUID on a phone or computer (all zeros: the provider did not
// say) has no provider.
func ProviderOf(aaguidBytes []byte, transports []string) Provider {
	name, known := aaguid.Name(aaguidBytes)
	if key := wellKnownProviders[name]; known && key != "" {
		return Provider{Key: key}
	}
	if securityKey(transports) {
		return Provider{Key: "provider.security_key", Product: name}
	}
	return Provider{Product: name}
}

func securityKey(transports []string) bool {
	roaming := false
	for _, t := range transports {
		switch protocol.AuthenticatorTransport(t) {
		case protocol.USB, protocol.NFC, protocol.BLE:
			roaming = true
		case protocol.Internal, protocol.Hybrid:
			return false
		}
	}
	return roaming
}

// DefaultName is the name a new passkey gets: its provider (in Japanese, the
// product of a security key) when known, otherwise 「パスキー (YYYY/MM/DD)」
// in Japan time. taken are the user's other passkeys' names: a name already
// in use gets a number (「パスキー (2026/12/01) 2」), so two passkeys added
// the same day can be told apart on S8.
func DefaultName(aaguidBytes []byte, transports []string, created time.Time, taken []string) string {
	p := ProviderOf(aaguidBytes, transports)
	var base string
	switch {
	case p.Product != "":
		base = p.Product
	case p.Key != "":
		base = templates.Text("ja", p.Key)
	default:
		base = fmt.Sprintf(templates.Text("ja", "passkey.default_name"), created.In(japan).Format("2006/01/02"))
	}
	base = truncateRunes(base, maxDefaultNameRunes)
	name := base
	for n := 2; slices.Contains(taken, name); n++ {
		name = base + " " + strconv.Itoa(n)
	}
	return name
}

// maxDefaultNameRunes leaves room for a number within the 50 characters a
// customer may give a passkey on S8.
const maxDefaultNameRunes = 45

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return strings.TrimSpace(string([]rune(s)[:n]))
}

// japan is JST as a fixed zone: no tzdata needed and Japan has no DST.
var japan = time.FixedZone("JST", 9*60*60)
