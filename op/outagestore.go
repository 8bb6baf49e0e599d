package op

import (
	"context"
	"errors"
	"time"

	"github.com/comstockloan/idp/storage"
)

// outageNoting marks the request when a store call finds the database
// unavailable, so the answer zitadel builds from the error becomes a 503
// even when the database is back by the time the answer is written
// (outageWriter's ping alone would then see it serving and leave a 500 or
// an invalid_grant).
type outageNoting struct{ Store }

func noteOutage(ctx context.Context, err error) error {
	if errors.Is(err, storage.ErrUnavailable) {
		requestInfoFrom(ctx).unavailable.Store(true)
	}
	return err
}

func (o outageNoting) CreateAuthRequest(ctx context.Context, a *storage.AuthRequest) error {
	return noteOutage(ctx, o.Store.CreateAuthRequest(ctx, a))
}

func (o outageNoting) AuthRequestByID(ctx context.Context, id string) (*storage.AuthRequest, error) {
	v, err := o.Store.AuthRequestByID(ctx, id)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) CreateAuthRequestCompleted(ctx context.Context, a *storage.AuthRequest, c storage.Completion) error {
	return noteOutage(ctx, o.Store.CreateAuthRequestCompleted(ctx, a, c))
}

func (o outageNoting) CompleteAuthRequest(ctx context.Context, id string, c storage.Completion) (*storage.AuthRequest, error) {
	v, err := o.Store.CompleteAuthRequest(ctx, id, c)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	return noteOutage(ctx, o.Store.SaveAuthCode(ctx, id, codeHash, expiresAt))
}

func (o outageNoting) AuthRequestByCode(ctx context.Context, codeHash string) (*storage.AuthRequest, *storage.User, error) {
	v, u, err := o.Store.AuthRequestByCode(ctx, codeHash)
	return v, u, noteOutage(ctx, err)
}

func (o outageNoting) ExchangeCode(ctx context.Context, id string, at time.Time, access *storage.AccessToken, refresh *storage.RefreshToken) error {
	return noteOutage(ctx, o.Store.ExchangeCode(ctx, id, at, access, refresh))
}

func (o outageNoting) CreateAccessToken(ctx context.Context, t *storage.AccessToken) error {
	return noteOutage(ctx, o.Store.CreateAccessToken(ctx, t))
}

func (o outageNoting) AccessTokenByID(ctx context.Context, id string) (*storage.AccessToken, error) {
	v, err := o.Store.AccessTokenByID(ctx, id)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) DeleteAccessToken(ctx context.Context, id string) error {
	return noteOutage(ctx, o.Store.DeleteAccessToken(ctx, id))
}

func (o outageNoting) CreateRefreshToken(ctx context.Context, rt *storage.RefreshToken, at *storage.AccessToken) error {
	return noteOutage(ctx, o.Store.CreateRefreshToken(ctx, rt, at))
}

func (o outageNoting) RefreshTokenByID(ctx context.Context, id string) (*storage.RefreshToken, error) {
	v, err := o.Store.RefreshTokenByID(ctx, id)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) RotateRefreshToken(ctx context.Context, oldID string, next *storage.RefreshToken, at *storage.AccessToken, now time.Time) error {
	return noteOutage(ctx, o.Store.RotateRefreshToken(ctx, oldID, next, at, now))
}

func (o outageNoting) RevokeRefreshToken(ctx context.Context, id string, now time.Time) error {
	return noteOutage(ctx, o.Store.RevokeRefreshToken(ctx, id, now))
}

func (o outageNoting) RevokeGrant(ctx context.Context, authRequestID string, now time.Time) error {
	return noteOutage(ctx, o.Store.RevokeGrant(ctx, authRequestID, now))
}

func (o outageNoting) UserByID(ctx context.Context, id string) (*storage.User, error) {
	v, err := o.Store.UserByID(ctx, id)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	v, err := o.Store.ListSigningKeys(ctx)
	return v, noteOutage(ctx, err)
}

func (o outageNoting) ReserveRateEvent(ctx context.Context, kind, key string, at, since time.Time, limit int) (string, bool, error) {
	id, ok, err := o.Store.ReserveRateEvent(ctx, kind, key, at, since, limit)
	return id, ok, noteOutage(ctx, err)
}
