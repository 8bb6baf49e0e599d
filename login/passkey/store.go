package passkey

import (
	"context"

	"github.com/comstockloan/idp/storage"
)

// Store is the part of storage.Store the ceremonies use: the WebAuthn
// sessions that carry a challenge from Begin to Finish, the user a
// registration is for, and the passkeys they register and sign in with.
type Store interface {
	storage.WebAuthnSessions

	UserByID(ctx context.Context, id string) (*storage.User, error)
	CreateCredential(ctx context.Context, c *storage.Credential, onlyIfFirst bool) error
	CredentialOwner(ctx context.Context, id []byte) (*storage.CredentialOwner, error)
	CredentialsByUser(ctx context.Context, userID string) ([]storage.Credential, error)
	UpdateCredentialUse(ctx context.Context, id []byte, use storage.CredentialUse) error
}

// Every storage.Store is a Store: a method added here must be the contract's.
var _ Store = storage.Store(nil)
