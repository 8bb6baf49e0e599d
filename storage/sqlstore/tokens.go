package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type accessTokenRow struct {
	ID             string     `db:"id"`
	ClientID       string     `db:"client_id"`
	Subject        string     `db:"subject"`
	Audience       stringList `db:"audience"`
	Scopes         stringList `db:"scopes"`
	AuthRequestID  string     `db:"auth_request_id"`
	RefreshTokenID string     `db:"refresh_token_id"`
	ExpiresAt      dbTime     `db:"expires_at"`
	CreatedAt      dbTime     `db:"created_at"`
}

type refreshTokenRow struct {
	ID            string         `db:"id"`
	FamilyID      string         `db:"family_id"`
	ClientID      string         `db:"client_id"`
	Subject       string         `db:"subject"`
	Audience      stringList     `db:"audience"`
	Scopes        stringList     `db:"scopes"`
	AMR           stringList     `db:"amr"`
	ACR           string         `db:"acr"`
	AuthTime      dbTime         `db:"auth_time"`
	AuthRequestID string         `db:"auth_request_id"`
	AccessTokenID string         `db:"access_token_id"`
	SID           sql.NullString `db:"sid"`
	CreatedAt     dbTime         `db:"created_at"`
	ExpiresAt     dbTime         `db:"expires_at"`
	RotatedAt     dbTime         `db:"rotated_at"`
	RevokedAt     dbTime         `db:"revoked_at"`
}

const refreshTokenColumns = `id, family_id, client_id, subject, audience, scopes, amr, acr, auth_time,
	auth_request_id, access_token_id, created_at, expires_at, rotated_at, revoked_at, sid`

const accessTokenColumns = `id, client_id, subject, audience, scopes, auth_request_id, refresh_token_id, expires_at, created_at`

var (
	insertAccessToken  = `INSERT INTO access_tokens (` + accessTokenColumns + `) VALUES (` + placeholders(accessTokenColumns, false) + `)`
	insertRefreshToken = `INSERT INTO refresh_tokens (` + refreshTokenColumns + `) VALUES (` + placeholders(refreshTokenColumns, false) + `)`
)

// accessTokenValues fills t's defaults and returns its values in
// accessTokenColumns' order.
func (s *Store) accessTokenValues(t *storage.AccessToken) []any {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
	}
	return []any{t.ID, t.ClientID, t.Subject, listArg(t.Audience), listArg(t.Scopes), t.AuthRequestID, t.RefreshTokenID,
		s.flavor.timeArg(t.ExpiresAt), s.flavor.timeArg(t.CreatedAt)}
}

// refreshTokenValues fills rt's defaults and returns its values in
// refreshTokenColumns' order.
func (s *Store) refreshTokenValues(rt *storage.RefreshToken) []any {
	if rt.CreatedAt.IsZero() {
		rt.CreatedAt = s.now().UTC()
	}
	if rt.FamilyID == "" {
		// The first token of a family names it.
		rt.FamilyID = rt.ID
	}
	return []any{rt.ID, rt.FamilyID, rt.ClientID, rt.Subject, listArg(rt.Audience), listArg(rt.Scopes), listArg(rt.AMR),
		rt.ACR, s.flavor.timeArg(rt.AuthTime), rt.AuthRequestID, rt.AccessTokenID,
		s.flavor.timeArg(rt.CreatedAt), s.flavor.timeArg(rt.ExpiresAt),
		s.flavor.timePtrArg(rt.RotatedAt), s.flavor.timePtrArg(rt.RevokedAt), nullString(rt.SessionID)}
}

func (s *Store) insertAccessToken(ctx context.Context, ex sqlx.ExecerContext, t *storage.AccessToken) error {
	_, err := ex.ExecContext(ctx, s.q(insertAccessToken), s.accessTokenValues(t)...)
	return wrap("insert access token", err)
}

func (s *Store) insertRefreshToken(ctx context.Context, ex sqlx.ExecerContext, rt *storage.RefreshToken) error {
	_, err := ex.ExecContext(ctx, s.q(insertRefreshToken), s.refreshTokenValues(rt)...)
	return wrap("insert refresh token", err)
}

func (s *Store) CreateAccessToken(ctx context.Context, t *storage.AccessToken) error {
	if err := s.insertAccessToken(ctx, s.db, t); err != nil {
		return fmt.Errorf("create access token: %w", err)
	}
	return nil
}

// AccessTokenByID returns ErrNotFound for an expired token.
func (s *Store) AccessTokenByID(ctx context.Context, id string) (*storage.AccessToken, error) {
	var r accessTokenRow
	if err := s.get(ctx, &r, s.q(`SELECT `+accessTokenColumns+` FROM access_tokens WHERE id = ?`), id); err != nil {
		return nil, wrap("access token by id", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("access token by id: expired: %w", storage.ErrNotFound)
	}
	return &storage.AccessToken{
		ID: r.ID, ClientID: r.ClientID, Subject: r.Subject, Audience: r.Audience, Scopes: r.Scopes,
		AuthRequestID: r.AuthRequestID, RefreshTokenID: r.RefreshTokenID,
		ExpiresAt: r.ExpiresAt.Time, CreatedAt: r.CreatedAt.Time,
	}, nil
}

func (s *Store) DeleteAccessToken(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q(`DELETE FROM access_tokens WHERE id = ?`), id)
	return wrap("delete access token", err)
}

// CreateRefreshToken stores rt and, when at is not nil, its access token in
// one transaction. An empty rt.FamilyID starts a family named rt.ID.
func (s *Store) CreateRefreshToken(ctx context.Context, rt *storage.RefreshToken, at *storage.AccessToken) error {
	return s.inTx(ctx, "create refresh token", func(tx *sqlx.Tx) error {
		if err := s.insertRefreshToken(ctx, tx, rt); err != nil {
			return fmt.Errorf("create refresh token: %w", err)
		}
		if at != nil {
			if err := s.insertAccessToken(ctx, tx, at); err != nil {
				return fmt.Errorf("create refresh token: %w", err)
			}
		}
		return nil
	})
}

// RefreshTokenByID returns rotated and revoked tokens too (the caller tells
// them apart), but not expired ones.
func (s *Store) RefreshTokenByID(ctx context.Context, id string) (*storage.RefreshToken, error) {
	r, err := s.refreshTokenRow(ctx, s.db, id)
	if err != nil {
		return nil, fmt.Errorf("refresh token by id: %w", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("refresh token by id: expired: %w", storage.ErrNotFound)
	}
	return r.refreshToken(), nil
}

func (s *Store) refreshTokenRow(ctx context.Context, q sqlx.QueryerContext, id string) (*refreshTokenRow, error) {
	var r refreshTokenRow
	if err := sqlx.GetContext(ctx, q, &r, s.q(`SELECT `+refreshTokenColumns+` FROM refresh_tokens WHERE id = ?`), id); err != nil {
		return nil, wrap("read refresh token", err)
	}
	return &r, nil
}

func (r refreshTokenRow) refreshToken() *storage.RefreshToken {
	return &storage.RefreshToken{
		ID: r.ID, FamilyID: r.FamilyID, ClientID: r.ClientID, Subject: r.Subject, Audience: r.Audience,
		Scopes: r.Scopes, AMR: r.AMR, ACR: r.ACR, AuthTime: r.AuthTime.Time, AuthRequestID: r.AuthRequestID,
		AccessTokenID: r.AccessTokenID, SessionID: r.SID.String, CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
		RotatedAt: r.RotatedAt.ptr(), RevokedAt: r.RevokedAt.ptr(),
	}
}

// RotateRefreshToken marks oldID rotated with a conditional UPDATE under the
// family lock, so of concurrent rotations exactly one matches and the rest
// see a reuse; the successor is inserted in the same transaction and joins
// oldID's family.
func (s *Store) RotateRefreshToken(ctx context.Context, oldID string, next *storage.RefreshToken, at *storage.AccessToken, now time.Time) error {
	reused := false
	err := s.inTx(ctx, "rotate refresh token", func(tx *sqlx.Tx) error {
		presented, err := s.refreshTokenRow(ctx, tx, oldID)
		if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		if err := s.lockFamily(ctx, tx, presented.FamilyID); err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET rotated_at = ?
			WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > ?`),
			s.flavor.timeArg(now), oldID, s.flavor.timeArg(now))
		if err != nil {
			return wrap("rotate refresh token: mark rotated", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("rotate refresh token: rows affected: %w", err)
		}
		old, err := s.refreshTokenRow(ctx, tx, oldID)
		if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		if n == 0 {
			if old.RotatedAt.IsZero() && old.RevokedAt.IsZero() {
				// Neither rotated nor revoked: it simply expired.
				return fmt.Errorf("rotate refresh token: expired: %w", storage.ErrNotFound)
			}
			if err := s.revokeFamily(ctx, tx, old.FamilyID, now); err != nil {
				return fmt.Errorf("rotate refresh token: %w", err)
			}
			reused = true
			return nil
		}
		next.FamilyID = old.FamilyID
		if err := s.insertRefreshToken(ctx, tx, next); err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		if at != nil {
			if err := s.insertAccessToken(ctx, tx, at); err != nil {
				return fmt.Errorf("rotate refresh token: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if reused {
		s.logger.WarnContext(ctx, "refresh token reused; family revoked", "refresh_token_id", oldID)
		return fmt.Errorf("rotate refresh token: %w", storage.ErrRefreshTokenReused)
	}
	return nil
}

// lockFamily serialises writers of one refresh-token family on PostgreSQL
// (SQLite's immediate transactions already do). Without it, replicas that
// detect the same reuse deadlock: a READ COMMITTED UPDATE that waited for a
// row and then found it no longer matching still keeps that row locked, so
// the revokers end up holding rows in differing orders. The lock is taken
// before any row is touched and is re-entrant within the transaction.
func (s *Store) lockFamily(ctx context.Context, tx *sqlx.Tx, familyID string) error {
	if s.flavor != flavorPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('refresh-family:' || coalesce(current_schema(), '')), hashtext($1))`, familyID); err != nil {
		return wrap("lock refresh token family", err)
	}
	return nil
}

// lockFamilies takes the family lock of every family with a refresh token
// matching where, in one order, so bulk revocations neither deadlock with
// rotations nor with each other.
func (s *Store) lockFamilies(ctx context.Context, tx *sqlx.Tx, where string, args ...any) error {
	if s.flavor != flavorPostgres {
		return nil
	}
	var families []string
	if err := tx.SelectContext(ctx, &families, s.q(`SELECT DISTINCT family_id FROM refresh_tokens WHERE `+where+` ORDER BY family_id`), args...); err != nil {
		return wrap("find refresh token families", err)
	}
	for _, f := range families {
		if err := s.lockFamily(ctx, tx, f); err != nil {
			return err
		}
	}
	return nil
}

// revokeFamily revokes every refresh token of the family and deletes the
// access tokens issued with any of them.
func (s *Store) revokeFamily(ctx context.Context, tx *sqlx.Tx, familyID string, now time.Time) error {
	if err := s.lockFamily(ctx, tx, familyID); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM access_tokens WHERE refresh_token_id IN
		(SELECT id FROM refresh_tokens WHERE family_id = ?)`), familyID); err != nil {
		return wrap("revoke family: delete access tokens", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL`),
		s.flavor.timeArg(now), familyID); err != nil {
		return wrap("revoke family: revoke refresh tokens", err)
	}
	return nil
}

// RevokeRefreshToken revokes id's family; ErrNotFound if id is unknown.
func (s *Store) RevokeRefreshToken(ctx context.Context, id string, now time.Time) error {
	return s.inTx(ctx, "revoke refresh token", func(tx *sqlx.Tx) error {
		r, err := s.refreshTokenRow(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		return s.revokeFamily(ctx, tx, r.FamilyID, now)
	})
}

// RevokeGrant removes what one authorization request produced: its access
// tokens, every family started from it and those families' access tokens.
func (s *Store) RevokeGrant(ctx context.Context, authRequestID string, now time.Time) error {
	return s.inTx(ctx, "revoke grant", func(tx *sqlx.Tx) error {
		if err := s.lockFamilies(ctx, tx, `auth_request_id = ?`, authRequestID); err != nil {
			return fmt.Errorf("revoke grant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM access_tokens WHERE auth_request_id = ? OR refresh_token_id IN
			(SELECT id FROM refresh_tokens WHERE family_id IN
				(SELECT family_id FROM refresh_tokens WHERE auth_request_id = ?))`), authRequestID, authRequestID); err != nil {
			return wrap("revoke grant: delete access tokens", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND family_id IN
			(SELECT family_id FROM refresh_tokens WHERE auth_request_id = ?)`), s.flavor.timeArg(now), authRequestID); err != nil {
			return wrap("revoke grant: revoke refresh tokens", err)
		}
		return nil
	})
}
