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
	UserAgent  string         `db:"user_agent"`
}

const sessionColumns = `id, user_id, sid, auth_time, amr, acr, created_at, last_seen_at, expires_at, user_agent`

func (r sessionRow) session() storage.Session {
	return storage.Session{
		ID: r.ID, UserID: r.UserID, SID: r.SID.String, AuthTime: r.AuthTime.Time, AMR: r.AMR, ACR: r.ACR,
		CreatedAt: r.CreatedAt.Time, LastSeenAt: r.LastSeenAt.Time, ExpiresAt: r.ExpiresAt.Time, UserAgent: r.UserAgent,
	}
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
	authTime := s.flavor.timeArg(se.AuthTime)
	res, err := s.exec(ctx, s.q(`INSERT INTO sessions (`+sessionColumns+`)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE `+proofStillValid),
		se.ID, se.UserID, se.SID, authTime, listArg(se.AMR), se.ACR,
		s.flavor.timeArg(se.CreatedAt), s.flavor.timeArg(se.LastSeenAt), s.flavor.timeArg(se.ExpiresAt), se.UserAgent,
		se.UserID, authTime)
	if err != nil {
		return wrap("create session", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create session: rows affected: %w", err)
	} else if n == 0 {
		return fmt.Errorf("create session: the user was signed out everywhere after this proof: %w", storage.ErrConflict)
	}
	return nil
}

// proofStillValid is the condition (user ID, proof time) that no
// EndUserAccess came after the proof: the two statements that turn a proof
// into access, CreateSession and CompleteAuthRequest (unless it completes
// from a session found live, see completeAuthRequest), check it in the same
// statement, so a passkey verified a moment before the support centre
// deleted it cannot open a session or send a code afterwards.
const proofStillValid = `NOT EXISTS (SELECT 1 FROM users WHERE id = ? AND access_valid_after > ?)`

// SessionByID returns ErrNotFound for a session that expired.
func (s *Store) SessionByID(ctx context.Context, id string) (*storage.Session, error) {
	var r sessionRow
	if err := s.get(ctx, &r, s.q(`SELECT `+sessionColumns+` FROM sessions WHERE id = ?`), id); err != nil {
		return nil, wrap("session by id", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("session by id: expired: %w", storage.ErrNotFound)
	}
	se := r.session()
	return &se, nil
}

// sessionUserColumns name the session's columns as they are and the
// user's with a "u." prefix, which sqlx maps onto sessionUserRow.User.
var sessionUserColumns = joinedColumns("se", sessionColumns, "") + ", " + joinedColumns("u", userColumns, "u")

type sessionUserRow struct {
	sessionRow
	User       userRow `db:"u"`
	HasPasskey bool    `db:"has_passkey"`
}

// SessionWithUser answers the three reads of an SSO answer (session, user,
// passkey count) in one statement; EXISTS stops at the first passkey.
func (s *Store) SessionWithUser(ctx context.Context, id string) (*storage.SessionUser, error) {
	var r sessionUserRow
	if err := s.get(ctx, &r, s.q(`SELECT `+sessionUserColumns+`,
		EXISTS (SELECT 1 FROM credentials c WHERE c.user_id = u.id) AS has_passkey
		FROM sessions se JOIN users u ON u.id = se.user_id WHERE se.id = ?`), id); err != nil {
		return nil, wrap("session with user", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("session with user: expired: %w", storage.ErrNotFound)
	}
	return &storage.SessionUser{Session: r.session(), User: r.User.user(), HasPasskey: r.HasPasskey}, nil
}

// SessionsByUser reads the clients in a second query over the same user,
// so a session without any client still appears.
func (s *Store) SessionsByUser(ctx context.Context, userID string, now time.Time) ([]storage.Session, error) {
	t := s.flavor.timeArg(now)
	var rows []sessionRow
	if err := s.sel(ctx, &rows, s.q(`SELECT `+sessionColumns+` FROM sessions WHERE user_id = ? AND expires_at > ?
		ORDER BY last_seen_at DESC, created_at DESC, id`), userID, t); err != nil {
		return nil, wrap("sessions by user", err)
	}
	var links []struct {
		SID      string `db:"sid"`
		ClientID string `db:"client_id"`
	}
	if err := s.sel(ctx, &links, s.q(`SELECT c.sid, c.client_id FROM session_clients c
		JOIN sessions se ON se.sid = c.sid WHERE se.user_id = ? AND se.expires_at > ?
		ORDER BY c.client_id`), userID, t); err != nil {
		return nil, wrap("sessions by user: clients", err)
	}
	clients := map[string][]string{}
	for _, l := range links {
		clients[l.SID] = append(clients[l.SID], l.ClientID)
	}
	out := make([]storage.Session, len(rows))
	for i, r := range rows {
		out[i] = r.session()
		if r.SID.Valid {
			out[i].Clients = clients[r.SID.String]
		}
	}
	return out, nil
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
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE users SET access_valid_after = ? WHERE id = ?`), t, userID); err != nil {
			return wrap("end user access: stamp user", err)
		}
		if _, err := s.endSessions(ctx, tx, `user_id = ? AND id <> ?`, userID, keepSessionID); err != nil {
			return fmt.Errorf("end user access: %w", err)
		}
		// A login completed but not yet exchanged for tokens would still
		// give the relying party a fresh session: its request ends now.
		// After the sessions' locks: a completion from one of them that
		// committed before endSessions took its lock is seen here (on
		// PostgreSQL each statement reads what committed before it).
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE auth_requests SET expires_at = ?
			WHERE user_id = ? AND done = ? AND consumed_at IS NULL AND expires_at > ?`), t, userID, true, t); err != nil {
			return wrap("end user access: end completed auth requests", err)
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
