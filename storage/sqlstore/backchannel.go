package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

// endSessions is the one way a session row goes: it enqueues a logout for
// every client each session matching where signed in to, then deletes the
// sessions (their session_clients follow by cascade), all in tx. On
// PostgreSQL the rows are locked first, so a completion that is recording
// a client for one of them (it holds the row FOR SHARE) either commits
// before the read below, which then sees its client, or waits and finds
// the session gone. SQLite's single writer orders them anyway.
func (s *Store) endSessions(ctx context.Context, tx *sqlx.Tx, where string, args ...any) (int64, error) {
	if s.flavor == flavorPostgres {
		if _, err := tx.ExecContext(ctx, s.q(`SELECT id FROM sessions WHERE `+where+` ORDER BY id FOR UPDATE`), args...); err != nil {
			return 0, wrap("end sessions: lock", err)
		}
	}
	var owed []struct {
		SID      string `db:"sid"`
		ClientID string `db:"client_id"`
		UserID   string `db:"user_id"`
	}
	if err := tx.SelectContext(ctx, &owed, s.q(`SELECT c.sid, c.client_id, se.user_id FROM session_clients c
		JOIN sessions se ON se.sid = c.sid WHERE se.id IN (SELECT id FROM sessions WHERE `+where+`)
		ORDER BY c.sid, c.client_id`), args...); err != nil {
		return 0, wrap("end sessions: clients", err)
	}
	now := s.flavor.timeArg(s.now())
	for _, o := range owed {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO backchannel_logouts
			(id, client_id, subject, sid, created_at, attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, 0, ?, '')`),
			uuid.NewString(), o.ClientID, o.UserID, o.SID, now, now); err != nil {
			return 0, wrap("end sessions: enqueue logout", err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE `+where), args...)
	if err != nil {
		return 0, wrap("end sessions: delete", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("end sessions: rows affected: %w", err)
	}
	return n, nil
}

// recordSessionClient notes in tx that the session sid signed in to
// clientID, after making sure the session is live (and, on PostgreSQL,
// holding it FOR SHARE until tx ends, see endSessions).
func (s *Store) recordSessionClient(ctx context.Context, tx *sqlx.Tx, sid, clientID string) error {
	lock := `SELECT COUNT(*) FROM sessions WHERE sid = ? AND expires_at > ?`
	if s.flavor == flavorPostgres {
		lock = `SELECT COUNT(*) FROM (SELECT 1 FROM sessions WHERE sid = ? AND expires_at > ? FOR SHARE) live`
	}
	now := s.flavor.timeArg(s.now())
	var live int
	if err := tx.GetContext(ctx, &live, s.q(lock), sid, now); err != nil {
		return wrap("record session client: lock session", err)
	}
	if live == 0 {
		return fmt.Errorf("record session client: %w: %w", storage.ErrSessionEnded, storage.ErrNotFound)
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO session_clients (sid, client_id, created_at) VALUES (?, ?, ?)
		ON CONFLICT (sid, client_id) DO NOTHING`), sid, clientID, now)
	return wrap("record session client", err)
}

type backchannelLogoutRow struct {
	ID            string `db:"id"`
	ClientID      string `db:"client_id"`
	Subject       string `db:"subject"`
	SID           string `db:"sid"`
	CreatedAt     dbTime `db:"created_at"`
	Attempts      int    `db:"attempts"`
	NextAttemptAt dbTime `db:"next_attempt_at"`
	LastError     string `db:"last_error"`
}

// ClaimBackchannelLogouts leases the due rows in one UPDATE … RETURNING.
// On PostgreSQL the inner SELECT skips rows another replica has locked
// (FOR UPDATE SKIP LOCKED), so two claims never share a row and neither
// waits for the other; SQLite's immediate transaction serialises claims.
func (s *Store) ClaimBackchannelLogouts(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]storage.BackchannelLogout, error) {
	if limit <= 0 || lease <= 0 {
		return nil, fmt.Errorf("claim backchannel logouts: limit and lease must be positive")
	}
	pick := `SELECT id FROM backchannel_logouts WHERE next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`
	if s.flavor == flavorPostgres {
		pick += ` FOR UPDATE SKIP LOCKED`
	}
	var rows []backchannelLogoutRow
	err := s.inTx(ctx, "claim backchannel logouts", func(tx *sqlx.Tx) error {
		return wrap("claim backchannel logouts", tx.SelectContext(ctx, &rows, s.q(`UPDATE backchannel_logouts
			SET next_attempt_at = ?, attempts = attempts + 1 WHERE id IN (`+pick+`)
			RETURNING id, client_id, subject, sid, created_at, attempts, next_attempt_at, last_error`),
			s.flavor.timeArg(now.Add(lease)), s.flavor.timeArg(now), limit))
	})
	if err != nil {
		return nil, err
	}
	out := make([]storage.BackchannelLogout, len(rows))
	for i, r := range rows {
		out[i] = storage.BackchannelLogout{
			ID: r.ID, ClientID: r.ClientID, Subject: r.Subject, SID: r.SID, CreatedAt: r.CreatedAt.Time,
			Attempts: r.Attempts, NextAttemptAt: r.NextAttemptAt.Time, LastError: r.LastError,
		}
	}
	return out, nil
}

func (s *Store) RetryBackchannelLogout(ctx context.Context, id string, at time.Time, lastError string) error {
	res, err := s.exec(ctx, s.q(`UPDATE backchannel_logouts SET next_attempt_at = ?, last_error = ? WHERE id = ?`),
		s.flavor.timeArg(at), storage.RepairText(lastError, 500), id)
	return mustAffect("retry backchannel logout", res, err)
}

func (s *Store) DeleteBackchannelLogout(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q(`DELETE FROM backchannel_logouts WHERE id = ?`), id)
	return wrap("delete backchannel logout", err)
}
