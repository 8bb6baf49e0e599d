package op

import (
	"context"
	"time"

	"github.com/comstockloan/idp/storage"
)

// Store is the part of storage.Store the OpenID provider uses: the auth
// requests and their codes, the tokens and the signing keys, the users it
// names in tokens (read only), the rate events of the client-secret
// throttle, the back-channel logout queue it delivers, and a ping for
// readiness. It never touches login flows, sessions or passkeys (the
// sessions' end fills the queue inside the store).
type Store interface {
	storage.AuthRequests
	storage.Tokens
	storage.SigningKeys
	storage.BackchannelLogouts

	UserByID(ctx context.Context, id string) (*storage.User, error)
	ReserveRateEvent(ctx context.Context, kind, key string, at, since time.Time, limit int) (id string, ok bool, err error)
	ReleaseRateEvent(ctx context.Context, kind, key, id string) error
	// AppendAudit records a back-channel logout given up.
	AppendAudit(ctx context.Context, e *storage.AuditEvent) error
	Ping(ctx context.Context) error
}

// Every storage.Store is a Store: a method added here must be the contract's.
var _ Store = storage.Store(nil)
