package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/comstockloan/idp/storage"
)

type webAuthnSessionRow struct {
	Challenge string `db:"challenge"`
	Ceremony  string `db:"ceremony"`
	UserID    string `db:"user_id"`
	FlowID    string `db:"flow_id"`
	Data      []byte `db:"data"`
	CreatedAt dbTime `db:"created_at"`
	ExpiresAt dbTime `db:"expires_at"`
}

func (s *Store) SaveWebAuthnSession(ctx context.Context, ws *storage.WebAuthnSession) error {
	if ws.CreatedAt.IsZero() {
		ws.CreatedAt = s.now().UTC()
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO webauthn_sessions (challenge, ceremony, user_id, flow_id, data,
		created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		ws.Challenge, ws.Ceremony, ws.UserID, ws.FlowID, ws.Data, s.flavor.timeArg(ws.CreatedAt), s.flavor.timeArg(ws.ExpiresAt))
	return wrap("save webauthn session", err)
}

// TakeWebAuthnSession deletes and returns the row in one statement, so a
// challenge can be answered once even by racing replicas; an expired one is
// deleted all the same.
func (s *Store) TakeWebAuthnSession(ctx context.Context, challenge string, now time.Time) (*storage.WebAuthnSession, error) {
	var r webAuthnSessionRow
	if err := s.get(ctx, &r, s.q(`DELETE FROM webauthn_sessions WHERE challenge = ?
		RETURNING challenge, ceremony, user_id, flow_id, data, created_at, expires_at`), challenge); err != nil {
		return nil, wrap("take webauthn session", err)
	}
	if expired(r.ExpiresAt.Time, now) {
		return nil, fmt.Errorf("take webauthn session: expired: %w", storage.ErrNotFound)
	}
	return &storage.WebAuthnSession{
		Challenge: r.Challenge, Ceremony: r.Ceremony, UserID: r.UserID, FlowID: r.FlowID, Data: r.Data,
		CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
	}, nil
}
