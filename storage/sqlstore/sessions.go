package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type sessionRow struct {
	ID         string         `db:"id"`
	UserID     string         `db:"user_id"`
	SID        sql.NullString `db:"sid"`
	AuthTime   dbTime         `db:"auth_time"`
	AMR        stringList     `db:"amr"`
	ACR        string         `db:"acr"`
	CreatedAt  dbTime         `db:"created_at"`
	LastSeenAt dbTime         `db:"last_seen_at"`
	ExpiresAt  dbTime         `db:"expires_at"`
}

// newSID is a session's public identifier: 128 random bits, never derived
// from the cookie, so a leaked sid (RPs log ID tokens) names no cookie.
func newSID() string { return rand.Text() }

// CreateSession stores se, giving it a SID when it has none.
func (s *Store) CreateSession(ctx context.Context, se *storage.Session) error {
	if se.CreatedAt.IsZero() {
		se.CreatedAt = s.now().UTC()
	}
	if se.SID == "" {
		se.SID = newSID()
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO sessions (id, user_id, sid, auth_time, amr, acr, created_at, last_seen_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		se.ID, se.UserID, se.SID, s.flavor.timeArg(se.AuthTime), listArg(se.AMR), se.ACR,
		s.flavor.timeArg(se.CreatedAt), s.flavor.timeArg(se.LastSeenAt), s.flavor.timeArg(se.ExpiresAt))
	return wrap("create session", err)
}

// SessionByID returns ErrNotFound for a session that expired.
func (s *Store) SessionByID(ctx context.Context, id string) (*storage.Session, error) {
	var r sessionRow
	if err := s.get(ctx, &r, s.q(`SELECT id, user_id, sid, auth_time, amr, acr, created_at, last_seen_at, expires_at
		FROM sessions WHERE id = ?`), id); err != nil {
		return nil, wrap("session by id", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("session by id: expired: %w", storage.ErrNotFound)
	}
	return &storage.Session{
		ID: r.ID, UserID: r.UserID, SID: r.SID.String, AuthTime: r.AuthTime.Time, AMR: r.AMR, ACR: r.ACR,
		CreatedAt: r.CreatedAt.Time, LastSeenAt: r.LastSeenAt.Time, ExpiresAt: r.ExpiresAt.Time,
	}, nil
}

func (s *Store) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	res, err := s.exec(ctx, s.q(`UPDATE sessions SET last_seen_at = ? WHERE id = ?`), s.flavor.timeArg(lastSeen), id)
	return mustAffect("touch session", res, err)
}

// RenewSession moves the row to next's key and proof in place, so its sid,
// creation time and clients stay and nothing is enqueued. A session from
// before sids gets one now.
func (s *Store) RenewSession(ctx context.Context, oldID string, next *storage.Session) error {
	return s.inTx(ctx, "renew session", func(tx *sqlx.Tx) error {
		lock := `SELECT sid, created_at FROM sessions WHERE id = ? AND expires_at > ?`
		if s.flavor == flavorPostgres {
			lock += ` FOR UPDATE`
		}
		var cur struct {
			SID       sql.NullString `db:"sid"`
			CreatedAt dbTime         `db:"created_at"`
		}
		if err := tx.GetContext(ctx, &cur, s.q(lock), oldID, s.flavor.timeArg(s.now())); err != nil {
			return wrap("renew session", err)
		}
		next.SID, next.CreatedAt = cur.SID.String, cur.CreatedAt.Time
		if next.SID == "" {
			next.SID = newSID()
		}
		_, err := tx.ExecContext(ctx, s.q(`UPDATE sessions SET id = ?, user_id = ?, sid = ?, auth_time = ?, amr = ?, acr = ?,
			last_seen_at = ?, expires_at = ? WHERE id = ?`),
			next.ID, next.UserID, next.SID, s.flavor.timeArg(next.AuthTime), listArg(next.AMR), next.ACR,
			s.flavor.timeArg(next.LastSeenAt), s.flavor.timeArg(next.ExpiresAt), oldID)
		return wrap("renew session", err)
	})
}

// DeleteSession is idempotent: logging out twice is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.inTx(ctx, "delete session", func(tx *sqlx.Tx) error {
		_, err := s.endSessions(ctx, tx, `id = ?`, id)
		return err
	})
}

// EndUserAccess counts the rows that still work before it ends them, so
// the audit trail says what really stopped working. The family locks keep
// a rotation from slipping a successor past the revocation.
func (s *Store) EndUserAccess(ctx context.Context, userID, keepSessionID string, now time.Time) (storage.AccessEnded, error) {
	var ended storage.AccessEnded
	t := s.flavor.timeArg(now)
	err := s.inTx(ctx, "end user access", func(tx *sqlx.Tx) error {
		if err := s.lockFamilies(ctx, tx, `subject = ?`, userID); err != nil {
			return fmt.Errorf("end user access: %w", err)
		}
		// Session IDs are hashes, never empty: keepSessionID "" keeps none.
		for _, c := range []struct {
			n     *int
			query string
			args  []any
		}{
			{&ended.Sessions, `SELECT COUNT(*) FROM sessions WHERE user_id = ? AND id <> ? AND expires_at > ?`, []any{userID, keepSessionID, t}},
			{&ended.AccessTokens, `SELECT COUNT(*) FROM access_tokens WHERE subject = ? AND expires_at > ?`, []any{userID, t}},
			{&ended.RefreshTokens, `SELECT COUNT(*) FROM refresh_tokens WHERE subject = ? AND rotated_at IS NULL
				AND revoked_at IS NULL AND expires_at > ?`, []any{userID, t}},
		} {
			if err := tx.GetContext(ctx, c.n, s.q(c.query), c.args...); err != nil {
				return wrap("end user access: count", err)
			}
		}
		if _, err := s.endSessions(ctx, tx, `user_id = ? AND id <> ?`, userID, keepSessionID); err != nil {
			return fmt.Errorf("end user access: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM access_tokens WHERE subject = ?`), userID); err != nil {
			return wrap("end user access: delete access tokens", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE subject = ? AND revoked_at IS NULL`),
			t, userID); err != nil {
			return wrap("end user access: revoke refresh tokens", err)
		}
		return nil
	})
	if err != nil {
		return storage.AccessEnded{}, err
	}
	return ended, nil
}
