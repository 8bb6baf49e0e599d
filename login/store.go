package login

import (
	"context"
	"time"

	"github.com/comstockloan/idp/storage"
)

// Store is the part of storage.Store the login pages use: the login flows,
// SSO sessions and rate events whole; reading the auth request a flow
// serves; reading users and changing their password; counting a
// customer's passkeys for the rules, and listing, renaming and deleting
// them on S8 (registering one is login/passkey's); reading and spending
// enrolment links (issuing them is staff's); remembering the browsers a
// customer signs in on; and appending to the audit trail. Creating, locking or deleting accounts, tokens and signing keys
// are not the pages' to touch.
type Store interface {
	storage.LoginFlows
	storage.Sessions
	storage.RateLimits

	AuthRequestByID(ctx context.Context, id string) (*storage.AuthRequest, error)

	UserByID(ctx context.Context, id string) (*storage.User, error)
	UserByLoginID(ctx context.Context, loginID string) (*storage.User, error)
	UpdatePassword(ctx context.Context, userID, hash string, temporary bool) error
	SetPasskeyOfferSkipped(ctx context.Context, userID string, at time.Time) error
	MaxBcryptCost(ctx context.Context) (int, error)

	CredentialByID(ctx context.Context, id []byte) (*storage.Credential, error)
	CredentialsByUser(ctx context.Context, userID string) ([]storage.Credential, error)
	CountCredentials(ctx context.Context, userID string) (int, error)
	RenameCredential(ctx context.Context, userID string, id []byte, name string) error
	DeleteCredential(ctx context.Context, userID string, id []byte) error

	EnrolmentLinkByID(ctx context.Context, id string) (*storage.EnrolmentLink, error)
	UseEnrolmentLink(ctx context.Context, id string, now time.Time) error

	storage.KnownDevices

	AppendAudit(ctx context.Context, e *storage.AuditEvent) error
}

// Every storage.Store is a Store: a method added here must be the contract's.
var _ Store = storage.Store(nil)
