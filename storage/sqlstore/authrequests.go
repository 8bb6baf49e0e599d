package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type authRequestRow struct {
	ID                  string         `db:"id"`
	ClientID            string         `db:"client_id"`
	RedirectURI         string         `db:"redirect_uri"`
	State               string         `db:"state"`
	Nonce               string         `db:"nonce"`
	Scopes              stringList     `db:"scopes"`
	ResponseType        string         `db:"response_type"`
	ResponseMode        string         `db:"response_mode"`
	CodeChallenge       string         `db:"code_challenge"`
	CodeChallengeMethod string         `db:"code_challenge_method"`
	Prompt              stringList     `db:"prompt"`
	MaxAgeMicros        sql.NullInt64  `db:"max_age_us"`
	LoginHint           string         `db:"login_hint"`
	IDTokenHintSubject  string         `db:"id_token_hint_subject"`
	ACRValues           stringList     `db:"acr_values"`
	UILocales           stringList     `db:"ui_locales"`
	CreatedAt           dbTime         `db:"created_at"`
	ExpiresAt           dbTime         `db:"expires_at"`
	UserID              string         `db:"user_id"`
	AuthTime            dbTime         `db:"auth_time"`
	AMR                 stringList     `db:"amr"`
	ACR                 string         `db:"acr"`
	Done                bool           `db:"done"`
	CodeHash            sql.NullString `db:"code_hash"`
	ConsumedAt          dbTime         `db:"consumed_at"`
	CodeExpiresAt       dbTime         `db:"code_expires_at"`
	SID                 sql.NullString `db:"sid"`
}

const authRequestColumns = `id, client_id, redirect_uri, state, nonce, scopes, response_type, response_mode,
	code_challenge, code_challenge_method, prompt, max_age_us, login_hint, id_token_hint_subject, acr_values,
	ui_locales, created_at, expires_at, user_id, auth_time, amr, acr, done, code_hash, consumed_at, code_expires_at, sid`

func (r authRequestRow) authRequest() *storage.AuthRequest {
	a := &storage.AuthRequest{
		ID: r.ID, ClientID: r.ClientID, RedirectURI: r.RedirectURI, State: r.State, Nonce: r.Nonce,
		Scopes: r.Scopes, ResponseType: r.ResponseType, ResponseMode: r.ResponseMode,
		CodeChallenge: r.CodeChallenge, CodeChallengeMethod: r.CodeChallengeMethod, Prompt: r.Prompt,
		LoginHint: r.LoginHint, IDTokenHintSubject: r.IDTokenHintSubject, ACRValues: r.ACRValues,
		UILocales: r.UILocales, CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
		UserID: r.UserID, AuthTime: r.AuthTime.Time, AMR: r.AMR, ACR: r.ACR, Done: r.Done,
		CodeHash: r.CodeHash.String, ConsumedAt: r.ConsumedAt.ptr(), CodeExpiresAt: r.CodeExpiresAt.Time,
		SessionID: r.SID.String,
	}
	if r.MaxAgeMicros.Valid {
		d := time.Duration(r.MaxAgeMicros.Int64) * time.Microsecond
		a.MaxAge = &d
	}
	return a
}

func (s *Store) CreateAuthRequest(ctx context.Context, a *storage.AuthRequest) error {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now().UTC()
	}
	var maxAge any
	if a.MaxAge != nil {
		maxAge = a.MaxAge.Microseconds()
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO auth_requests (`+authRequestColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		a.ID, a.ClientID, a.RedirectURI, a.State, a.Nonce, listArg(a.Scopes), a.ResponseType, a.ResponseMode,
		a.CodeChallenge, a.CodeChallengeMethod, listArg(a.Prompt), maxAge, a.LoginHint, a.IDTokenHintSubject,
		listArg(a.ACRValues), listArg(a.UILocales), s.flavor.timeArg(a.CreatedAt), s.flavor.timeArg(a.ExpiresAt),
		a.UserID, s.flavor.timeArg(a.AuthTime), listArg(a.AMR), a.ACR, a.Done, nullString(a.CodeHash),
		s.flavor.timePtrArg(a.ConsumedAt), s.flavor.timeArg(a.CodeExpiresAt), nullString(a.SessionID))
	return wrap("create auth request", err)
}

// AuthRequestByID returns ErrNotFound for an expired request.
func (s *Store) AuthRequestByID(ctx context.Context, id string) (*storage.AuthRequest, error) {
	return s.authRequestWhere(ctx, "auth request by id", `id = ?`, id)
}

// AuthRequestByCode returns the request even when consumed or past its
// code's expiry, but not when the request itself expired.
func (s *Store) AuthRequestByCode(ctx context.Context, codeHash string) (*storage.AuthRequest, error) {
	if codeHash == "" {
		return nil, fmt.Errorf("auth request by code: empty code: %w", storage.ErrNotFound)
	}
	return s.authRequestWhere(ctx, "auth request by code", `code_hash = ?`, codeHash)
}

func (s *Store) authRequestWhere(ctx context.Context, op, where string, arg any) (*storage.AuthRequest, error) {
	var r authRequestRow
	if err := s.get(ctx, &r, s.q(`SELECT `+authRequestColumns+` FROM auth_requests WHERE `+where), arg); err != nil {
		return nil, wrap(op, err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("%s: expired: %w", op, storage.ErrNotFound)
	}
	return r.authRequest(), nil
}

// CompleteAuthRequest is one conditional UPDATE: only a live request that
// was never completed and has no code matches, so of concurrent completions
// exactly one wins (the others get ErrConflict) and the caller needs no read
// first. The classifying read runs only when nothing matched. With a sid,
// the session's client is recorded atomically with the completion: on
// PostgreSQL in the same statement (completeFromSession), on SQLite in the
// same transaction.
func (s *Store) CompleteAuthRequest(ctx context.Context, id, userID string, authTime time.Time, amr []string, acr, sid string) error {
	if sid == "" {
		return s.completeAuthRequest(ctx, s.exec, s.get, id, userID, authTime, amr, acr, sid, true)
	}
	if s.flavor == flavorPostgres {
		return s.completeFromSession(ctx, id, userID, authTime, amr, acr, sid)
	}
	return s.inTx(ctx, "complete auth request", func(tx *sqlx.Tx) error {
		var clientID string
		if err := tx.GetContext(ctx, &clientID, s.q(`SELECT client_id FROM auth_requests WHERE id = ?`), id); err != nil {
			return wrap("complete auth request", err)
		}
		if err := s.recordSessionClient(ctx, tx, sid, clientID); err != nil {
			return fmt.Errorf("complete auth request: %w", err)
		}
		return s.completeAuthRequest(ctx, tx.ExecContext, tx.GetContext, id, userID, authTime, amr, acr, sid, false)
	})
}

// completeFromSession is CompleteAuthRequest from an SSO session on
// PostgreSQL, in one statement (one round trip with the statement cache)
// instead of a transaction of four: live holds the session FOR SHARE until
// the statement commits, as recordSessionClient does for the transaction,
// so endSessions, which locks the row FOR UPDATE before reading the
// clients, either sees the client inserted here or makes live empty and
// the completion fail with ErrNotFound; the request's client_id comes from
// the UPDATE's RETURNING.
func (s *Store) completeFromSession(ctx context.Context, id, userID string, authTime time.Time, amr []string, acr, sid string) error {
	now := s.flavor.timeArg(s.now())
	at := s.flavor.timeArg(authTime)
	var r struct {
		Completed bool `db:"completed"`
		Live      bool `db:"live"`
	}
	err := s.get(ctx, &r, s.q(`WITH live AS (
			SELECT sid FROM sessions WHERE sid = ? AND expires_at > ? FOR SHARE
		), done AS (
			UPDATE auth_requests SET user_id = ?, auth_time = ?, amr = ?, acr = ?, done = TRUE, sid = ?
			WHERE id = ? AND expires_at > ? AND NOT done AND code_hash IS NULL AND consumed_at IS NULL
				AND EXISTS (SELECT 1 FROM live)
			RETURNING client_id
		), recorded AS (
			INSERT INTO session_clients (sid, client_id, created_at)
			SELECT CAST(? AS TEXT), client_id, CAST(? AS TIMESTAMPTZ) FROM done
			ON CONFLICT (sid, client_id) DO NOTHING
		)
		SELECT EXISTS (SELECT 1 FROM done) AS completed, EXISTS (SELECT 1 FROM live) AS live`),
		sid, now,
		userID, at, listArg(amr), acr, sid,
		id, now,
		sid, now)
	if err != nil {
		return wrap("complete auth request", err)
	}
	switch {
	case r.Completed:
		return nil
	case !r.Live:
		return fmt.Errorf("complete auth request: record session client: session ended: %w", storage.ErrNotFound)
	}
	var live int
	if err := s.get(ctx, &live, s.q(`SELECT COUNT(*) FROM auth_requests WHERE id = ? AND expires_at > ?`), id, now); err != nil {
		return wrap("complete auth request: check existence", err)
	}
	if live == 0 {
		return fmt.Errorf("complete auth request: %w", storage.ErrNotFound)
	}
	return fmt.Errorf("complete auth request: already completed, or the user was signed out everywhere after this proof: %w", storage.ErrConflict)
}

// completeAuthRequest runs the conditional UPDATE through exec and get: the
// store's own (statement cache, SQLite's writer) or a transaction's.
// checkProof applies proofStillValid; a completion from a session the
// caller found live needs none: EndUserAccess deletes every session but the
// one it keeps in the transaction that stamps the user, and CreateSession
// checked the stamp, so a live session is itself the proof that access was
// not ended after it (the browser that signed the others out stays signed in
// to every website).
func (s *Store) completeAuthRequest(ctx context.Context,
	exec func(context.Context, string, ...any) (sql.Result, error), get func(context.Context, any, string, ...any) error,
	id, userID string, authTime time.Time, amr []string, acr, sid string, checkProof bool) error {
	now := s.flavor.timeArg(s.now())
	at := s.flavor.timeArg(authTime)
	query := `UPDATE auth_requests SET user_id = ?, auth_time = ?, amr = ?, acr = ?, done = ?, sid = ?
		WHERE id = ? AND expires_at > ? AND done = ? AND code_hash IS NULL AND consumed_at IS NULL`
	args := []any{userID, at, listArg(amr), acr, true, nullString(sid), id, now, false}
	if checkProof {
		query += ` AND ` + proofStillValid
		args = append(args, userID, at)
	}
	res, err := exec(ctx, s.q(query), args...)
	if err != nil {
		return wrap("complete auth request", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("complete auth request: rows affected: %w", err)
	}
	if n == 1 {
		return nil
	}
	var live int
	if err := get(ctx, &live, s.q(`SELECT COUNT(*) FROM auth_requests WHERE id = ? AND expires_at > ?`), id, now); err != nil {
		return wrap("complete auth request: check existence", err)
	}
	if live == 0 {
		return fmt.Errorf("complete auth request: %w", storage.ErrNotFound)
	}
	return fmt.Errorf("complete auth request: already completed, or the user was signed out everywhere after this proof: %w", storage.ErrConflict)
}

// SaveAuthCode attaches the hash of the issued code and its expiry;
// ErrAlreadyExists if the same hash is already attached to another request.
func (s *Store) SaveAuthCode(ctx context.Context, id, codeHash string, expiresAt time.Time) error {
	if codeHash == "" || expiresAt.IsZero() {
		return errors.New("save auth code: code hash and expiry must be set")
	}
	res, err := s.exec(ctx, s.q(`UPDATE auth_requests SET code_hash = ?, code_expires_at = ? WHERE id = ? AND expires_at > ?`),
		codeHash, s.flavor.timeArg(expiresAt), id, s.flavor.timeArg(s.now()))
	return mustAffect("save auth code", res, err)
}

// ConsumeAuthRequest marks the code exchanged in one conditional UPDATE, so
// of two concurrent exchanges exactly one succeeds.
func (s *Store) ConsumeAuthRequest(ctx context.Context, id string, at time.Time) error {
	res, err := s.exec(ctx, s.q(`UPDATE auth_requests SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL`),
		s.flavor.timeArg(at), id)
	if err != nil {
		return wrap("consume auth request", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("consume auth request: rows affected: %w", err)
	}
	if n == 1 {
		return nil
	}
	var exists int
	if err := s.get(ctx, &exists, s.q(`SELECT COUNT(*) FROM auth_requests WHERE id = ?`), id); err != nil {
		return wrap("consume auth request: check existence", err)
	}
	if exists == 0 {
		return fmt.Errorf("consume auth request: %w", storage.ErrNotFound)
	}
	return fmt.Errorf("consume auth request: already consumed: %w", storage.ErrConflict)
}
