package passkey

import (
	"encoding/base64"

	"github.com/comstockloan/idp/storage"
)

// Signal is what the page hands to the WebAuthn Signal API for one user
// (PublicKeyCredential.signalAllAcceptedCredentials and
// signalCurrentUserDetails; the JSON names are the browser's), so the
// device drops passkeys we no longer accept and labels the rest as the
// registration did. It only ever describes the user it was built for.
type Signal struct {
	RPID        string `json:"rpId"`
	UserID      string `json:"userId"` // base64url of the user handle
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
	// AcceptedCredentialIDs are base64url; never nil, since an empty list
	// (every passkey deleted) is a signal too.
	AcceptedCredentialIDs []string `json:"allAcceptedCredentialIds"`
}

// Signal describes user and creds (all of user's stored passkeys) with the
// same user handle and names the ceremonies give the authenticator.
func (s *Service) Signal(user *storage.User, creds []storage.Credential) Signal {
	u := webAuthnUser{user: user}
	ids := make([]string, 0, len(creds))
	for _, c := range creds {
		if c.UserID == user.ID {
			ids = append(ids, base64.RawURLEncoding.EncodeToString(c.ID))
		}
	}
	return Signal{
		RPID:                  s.rpID,
		UserID:                base64.RawURLEncoding.EncodeToString(u.WebAuthnID()),
		Name:                  u.WebAuthnName(),
		DisplayName:           u.WebAuthnDisplayName(),
		AcceptedCredentialIDs: ids,
	}
}
