package op

import (
	"context"
	"sync/atomic"

	"github.com/comstockloan/idp/storage"
)

// requestInfo is what guard learns about a request before zitadel runs,
// for the storage methods zitadel calls with only a context.
type requestInfo struct {
	addr string // the client address the throttles key on
	// verified is the client ID and secret guard has checked, so that
	// zitadel's own check of the same pair costs nothing.
	verified *presentedSecret
	// revoked is the token a revocation request presented, as sent:
	// zitadel may hand RevokeToken a "decryption" of it instead (see
	// revokeToken).
	revoked string
	// unavailable: a store call of this request found the database away.
	unavailable atomic.Bool
	// created is the authorization request /authorize made; with
	// deferCreate it is not stored yet (stored says when it is): the SSO
	// answer stores it completed, in one write (see answerHeld).
	created     *storage.AuthRequest
	deferCreate bool
	stored      bool
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// requestInfoFrom never returns nil: a call that did not pass guard has an
// empty address.
func requestInfoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}
