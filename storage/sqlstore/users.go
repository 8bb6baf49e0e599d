package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type userRow struct {
	ID                string `db:"id"`
	LoginID           string `db:"login_id"`
	Email             string `db:"email"`
	DisplayName       string `db:"display_name"`
	PasswordHash      string `db:"password_hash"`
	PasswordTemporary bool   `db:"password_temporary"`
	Locked            bool   `db:"locked"`
	OfferSkippedAt    dbTime `db:"passkey_offer_skipped_at"`
	CreatedAt         dbTime `db:"created_at"`
	UpdatedAt         dbTime `db:"updated_at"`
}

const userColumns = `id, login_id, email, display_name, password_hash, password_temporary, locked, passkey_offer_skipped_at, created_at, updated_at`

func (r userRow) user() storage.User {
	return storage.User{
		ID: r.ID, LoginID: r.LoginID, Email: r.Email, DisplayName: r.DisplayName,
		PasswordHash: r.PasswordHash, PasswordTemporary: r.PasswordTemporary, Locked: r.Locked,
		PasskeyOfferSkippedAt: r.OfferSkippedAt.ptr(), CreatedAt: r.CreatedAt.Time, UpdatedAt: r.UpdatedAt.Time,
	}
}

// CreateUser stores u; ErrAlreadyExists if its ID or login ID is taken.
// Missing CreatedAt/UpdatedAt are set to now.
func (s *Store) CreateUser(ctx context.Context, u *storage.User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now().UTC()
	}
	if u.UpdatedAt.IsZero() {
		u.UpdatedAt = u.CreatedAt
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.LoginID, u.Email, u.DisplayName, u.PasswordHash, u.PasswordTemporary, u.Locked,
		s.flavor.timePtrArg(u.PasskeyOfferSkippedAt), s.flavor.timeArg(u.CreatedAt), s.flavor.timeArg(u.UpdatedAt))
	return wrap("create user", err)
}

func (s *Store) UserByID(ctx context.Context, id string) (*storage.User, error) {
	var r userRow
	if err := s.get(ctx, &r, s.q(`SELECT `+userColumns+` FROM users WHERE id = ?`), id); err != nil {
		return nil, wrap("user by id", err)
	}
	u := r.user()
	return &u, nil
}

func (s *Store) UserByLoginID(ctx context.Context, loginID string) (*storage.User, error) {
	var r userRow
	if err := s.get(ctx, &r, s.q(`SELECT `+userColumns+` FROM users WHERE login_id = ?`), loginID); err != nil {
		return nil, wrap("user by login id", err)
	}
	u := r.user()
	return &u, nil
}

// ListUsers returns every user ordered by login ID. It is not part of
// storage.Store: nothing that serves customers lists them; the CLI's tests
// use it to look behind the CLI's back.
func (s *Store) ListUsers(ctx context.Context) ([]storage.User, error) {
	var rows []userRow
	if err := s.sel(ctx, &rows, `SELECT `+userColumns+` FROM users ORDER BY login_id`); err != nil {
		return nil, wrap("list users", err)
	}
	out := make([]storage.User, len(rows))
	for i, r := range rows {
		out[i] = r.user()
	}
	return out, nil
}

// MaxBcryptCost reads the two cost digits of the modular crypt format
// ($2b$10$…); the LIKE prefix keeps argon2id hashes out.
func (s *Store) MaxBcryptCost(ctx context.Context) (int, error) {
	var cost string
	if err := s.get(ctx, &cost, `SELECT COALESCE(MAX(substr(password_hash, 5, 2)), '') FROM users
		WHERE password_hash LIKE '$2a$%' OR password_hash LIKE '$2b$%' OR password_hash LIKE '$2y$%'`); err != nil {
		return 0, wrap("max bcrypt cost", err)
	}
	if cost == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(cost)
	if err != nil {
		return 0, fmt.Errorf("max bcrypt cost: stored cost %q: %w", cost, err)
	}
	return n, nil
}

func (s *Store) UpdatePassword(ctx context.Context, userID, hash string, temporary bool) error {
	res, err := s.exec(ctx, s.q(`UPDATE users SET password_hash = ?, password_temporary = ?, updated_at = ? WHERE id = ?`),
		hash, temporary, s.flavor.timeArg(s.now()), userID)
	return mustAffect("update password", res, err)
}

func (s *Store) SetUserLocked(ctx context.Context, userID string, locked bool) error {
	res, err := s.exec(ctx, s.q(`UPDATE users SET locked = ?, updated_at = ? WHERE id = ?`),
		locked, s.flavor.timeArg(s.now()), userID)
	return mustAffect("set user locked", res, err)
}

// SetPasskeyOfferSkipped leaves updated_at alone: declining an offer
// changes nothing of the account.
func (s *Store) SetPasskeyOfferSkipped(ctx context.Context, userID string, at time.Time) error {
	res, err := s.exec(ctx, s.q(`UPDATE users SET passkey_offer_skipped_at = ? WHERE id = ?`), s.flavor.timeArg(at), userID)
	return mustAffect("set passkey offer skipped", res, err)
}

// DeleteUser removes the user. Their sessions end as any other (endSessions);
// passkeys and OTP-send records go by foreign-key cascade; rows that reference the user by a column that may be
// empty (flows, auth requests, WebAuthn sessions, tokens) are deleted here
// in the same transaction. Audit rows stay.
func (s *Store) DeleteUser(ctx context.Context, userID string) error {
	return s.inTx(ctx, "delete user", func(tx *sqlx.Tx) error {
		var loginID string
		if err := tx.GetContext(ctx, &loginID, s.q(`SELECT login_id FROM users WHERE id = ?`), userID); err != nil {
			return wrap("delete user", err)
		}
		// Sessions end the one way (their logouts enqueued) before the
		// cascade could take them silently.
		if _, err := s.endSessions(ctx, tx, `user_id = ?`, userID); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM users WHERE id = ?`), userID)
		if err := mustAffect("delete user", res, err); err != nil {
			return err
		}
		// By key alone, whatever the kind: the (kind, key, at) index cannot
		// serve it, but the table holds a day of events and this is a rare
		// staff action, not a login.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM rate_events WHERE key = ? OR key = ?`), userID, loginID); err != nil {
			return wrap("delete user: rate events", err)
		}
		for _, stmt := range []string{
			`DELETE FROM login_flows WHERE user_id = ?`,
			`DELETE FROM auth_requests WHERE user_id = ?`,
			`DELETE FROM webauthn_sessions WHERE user_id = ?`,
			`DELETE FROM access_tokens WHERE subject = ?`,
			`DELETE FROM refresh_tokens WHERE subject = ?`,
		} {
			if _, err := tx.ExecContext(ctx, s.q(stmt), userID); err != nil {
				return wrap("delete user: "+stmt, err)
			}
		}
		return nil
	})
}
