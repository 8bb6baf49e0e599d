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

// authRequestValues fills a's defaults and returns its values in
// authRequestColumns' order.
func (s *Store) authRequestValues(a *storage.AuthRequest) []any {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now().UTC()
	}
	var maxAge any
	if a.MaxAge != nil {
		maxAge = a.MaxAge.Microseconds()
	}
	return []any{a.ID, a.ClientID, a.RedirectURI, a.State, a.Nonce, listArg(a.Scopes), a.ResponseType, a.ResponseMode,
		a.CodeChallenge, a.CodeChallengeMethod, listArg(a.Prompt), maxAge, a.LoginHint, a.IDTokenHintSubject,
		listArg(a.ACRValues), listArg(a.UILocales), s.flavor.timeArg(a.CreatedAt), s.flavor.timeArg(a.ExpiresAt),
		a.UserID, s.flavor.timeArg(a.AuthTime), listArg(a.AMR), a.ACR, a.Done, nullString(a.CodeHash),
		s.flavor.timePtrArg(a.ConsumedAt), s.flavor.timeArg(a.CodeExpiresAt), nullString(a.SessionID)}
}

var insertAuthRequest = `INSERT INTO auth_requests (` + authRequestColumns + `) VALUES (` + placeholders(authRequestColumns, false) + `)`

// The rows inserted by INSERT … SELECT (CreateAuthRequestCompleted,
// exchangeCodeOnce), their placeholders typed.
var (
	authRequestTyped  = placeholders(authRequestColumns, true)
	accessTokenTyped  = placeholders(accessTokenColumns, true)
	refreshTokenTyped = placeholders(refreshTokenColumns, true)
)

func (s *Store) CreateAuthRequest(ctx context.Context, a *storage.AuthRequest) error {
	_, err := s.exec(ctx, s.q(insertAuthRequest), s.authRequestValues(a)...)
	return wrap("create auth request", err)
}

// CreateAuthRequestCompleted is CreateAuthRequest and CompleteAuthRequest
// from a session in one write: on PostgreSQL one statement whose INSERTs
// read from the session held FOR SHARE (as completeFromSession does), on
// SQLite one transaction.
func (s *Store) CreateAuthRequestCompleted(ctx context.Context, a *storage.AuthRequest, c storage.Completion) error {
	if c.SID == "" || c.CodeHash == "" || c.CodeExpiresAt.IsZero() {
		return errors.New("create completed auth request: a session and a code are required")
	}
	done := *a
	done.UserID, done.AuthTime, done.AMR, done.ACR, done.Done = c.UserID, c.AuthTime, c.AMR, c.ACR, true
	done.SessionID, done.CodeHash, done.CodeExpiresAt = c.SID, c.CodeHash, c.CodeExpiresAt
	values := s.authRequestValues(&done)
	a.CreatedAt = done.CreatedAt
	if s.flavor != flavorPostgres {
		return s.inTx(ctx, "create completed auth request", func(tx *sqlx.Tx) error {
			if err := s.recordSessionClient(ctx, tx, c.SID, a.ClientID); err != nil {
				return fmt.Errorf("create completed auth request: %w", err)
			}
			_, err := tx.ExecContext(ctx, s.q(insertAuthRequest), values...)
			return wrap("create completed auth request", err)
		})
	}
	now := s.flavor.timeArg(s.now())
	args := append([]any{c.SID, now}, values...)
	args = append(args, c.SID, now)
	var stored int
	err := s.get(ctx, &stored, s.q(`WITH live AS (
			SELECT sid FROM sessions WHERE sid = ? AND expires_at > ? FOR SHARE
		), stored AS (
			INSERT INTO auth_requests (`+authRequestColumns+`)
			SELECT `+authRequestTyped+` FROM live
			RETURNING client_id
		), recorded AS (
			INSERT INTO session_clients (sid, client_id, created_at)
			SELECT CAST(? AS TEXT), client_id, CAST(? AS TIMESTAMPTZ) FROM stored
			ON CONFLICT (sid, client_id) DO NOTHING
		)
		SELECT COUNT(*) FROM stored`), args...)
	if err != nil {
		return wrap("create completed auth request", err)
	}
	if stored == 0 {
		return fmt.Errorf("create completed auth request: %w: %w", storage.ErrSessionEnded, storage.ErrNotFound)
	}
	return nil
}

// AuthRequestByID returns ErrNotFound for an expired request.
func (s *Store) AuthRequestByID(ctx context.Context, id string) (*storage.AuthRequest, error) {
	return s.authRequestWhere(ctx, "auth request by id", `id = ?`, id)
}

// AuthRequestByCode reads the request and its user in one statement: the
// token endpoint needs both. It returns the request even when consumed or
// past its code's expiry, but not when the request itself expired.
func (s *Store) AuthRequestByCode(ctx context.Context, codeHash string) (*storage.AuthRequest, *storage.User, error) {
	if codeHash == "" {
		return nil, nil, fmt.Errorf("auth request by code: empty code: %w", storage.ErrNotFound)
	}
	var r struct {
		authRequestRow
		User userRow `db:"u"`
	}
	if err := s.get(ctx, &r, s.q(`SELECT `+authRequestUserColumns+`
		FROM auth_requests a JOIN users u ON u.id = a.user_id WHERE a.code_hash = ?`), codeHash); err != nil {
		return nil, nil, wrap("auth request by code", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, nil, fmt.Errorf("auth request by code: expired: %w", storage.ErrNotFound)
	}
	u := r.User.user()
	return r.authRequest(), &u, nil
}

// authRequestUserColumns name the request's columns as they are and the
// user's with a "u." prefix, which sqlx maps onto the row's User.
var authRequestUserColumns = joinedColumns("a", authRequestColumns, "") + ", " + joinedColumns("u", userColumns, "u")

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

// CompleteAuthRequest is one conditional UPDATE … RETURNING: only a live
// request that was never completed and has no code matches, so of
// concurrent completions exactly one wins (the others get ErrConflict), the
// caller needs no read first and the code is issued in the same write. The
// classifying read runs only when nothing matched. With a sid, the
// session's client is recorded atomically with the completion: on
// PostgreSQL in the same statement (completeFromSession), on SQLite in the
// same transaction.
func (s *Store) CompleteAuthRequest(ctx context.Context, id string, c storage.Completion) (*storage.AuthRequest, error) {
	if (c.CodeHash == "") != c.CodeExpiresAt.IsZero() {
		return nil, errors.New("complete auth request: a code needs its hash and its expiry")
	}
	if c.SID == "" {
		return s.completeAuthRequest(ctx, s.get, id, c, true)
	}
	if s.flavor == flavorPostgres {
		return s.completeFromSession(ctx, id, c)
	}
	var ar *storage.AuthRequest
	err := s.inTx(ctx, "complete auth request", func(tx *sqlx.Tx) error {
		var err error
		if ar, err = s.completeAuthRequest(ctx, tx.GetContext, id, c, false); err != nil {
			return err
		}
		if err := s.recordSessionClient(ctx, tx, c.SID, ar.ClientID); err != nil {
			return fmt.Errorf("complete auth request: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ar, nil
}

// completeSet is the assignment and the condition every completion shares;
// completeArgs are its arguments after the request's id.
const completeSet = `SET user_id = ?, auth_time = ?, amr = ?, acr = ?, done = ?, sid = ?, code_hash = ?, code_expires_at = ?
	WHERE id = ? AND expires_at > ? AND done = ? AND code_hash IS NULL AND consumed_at IS NULL`

func (s *Store) completeArgs(id string, c storage.Completion, now any) []any {
	return []any{c.UserID, s.flavor.timeArg(c.AuthTime), listArg(c.AMR), c.ACR, true, nullString(c.SID),
		nullString(c.CodeHash), s.flavor.timeArg(c.CodeExpiresAt), id, now, false}
}

// completeFromSession is CompleteAuthRequest from an SSO session on
// PostgreSQL, in one statement (one round trip with the statement cache)
// instead of a transaction of four: live holds the session FOR SHARE until
// the statement commits, as recordSessionClient does for the transaction,
// so endSessions, which locks the row FOR UPDATE before reading the
// clients, either sees the client inserted here or makes live empty and
// the completion fail with ErrNotFound.
func (s *Store) completeFromSession(ctx context.Context, id string, c storage.Completion) (*storage.AuthRequest, error) {
	now := s.flavor.timeArg(s.now())
	args := append([]any{c.SID, now}, s.completeArgs(id, c, now)...)
	args = append(args, c.SID, now)
	var r authRequestRow
	err := s.get(ctx, &r, s.q(`WITH live AS (
			SELECT sid FROM sessions WHERE sid = ? AND expires_at > ? FOR SHARE
		), done AS (
			UPDATE auth_requests `+completeSet+` AND EXISTS (SELECT 1 FROM live)
			RETURNING `+authRequestColumns+`
		), recorded AS (
			INSERT INTO session_clients (sid, client_id, created_at)
			SELECT CAST(? AS TEXT), client_id, CAST(? AS TIMESTAMPTZ) FROM done
			ON CONFLICT (sid, client_id) DO NOTHING
		)
		SELECT `+authRequestColumns+` FROM done`), args...)
	if err == nil {
		return r.authRequest(), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("complete auth request", err)
	}
	var live int
	if err := s.get(ctx, &live, s.q(`SELECT COUNT(*) FROM sessions WHERE sid = ? AND expires_at > ?`), c.SID, now); err != nil {
		return nil, wrap("complete auth request: check session", err)
	}
	if live == 0 {
		return nil, fmt.Errorf("complete auth request: record session client: %w: %w", storage.ErrSessionEnded, storage.ErrNotFound)
	}
	return nil, s.whyNotCompleted(ctx, s.get, id, now)
}

// completeAuthRequest runs the conditional UPDATE through get: the store's
// own (statement cache, SQLite's writer) or a transaction's. checkProof
// applies proofStillValid; a completion from a session the caller found
// live needs none: EndUserAccess deletes every session but the one it keeps
// in the transaction that stamps the user, and CreateSession checked the
// stamp, so a live session is itself the proof that access was not ended
// after it (the browser that signed the others out stays signed in to every
// website).
func (s *Store) completeAuthRequest(ctx context.Context, get func(context.Context, any, string, ...any) error,
	id string, c storage.Completion, checkProof bool) (*storage.AuthRequest, error) {
	now := s.flavor.timeArg(s.now())
	query := `UPDATE auth_requests ` + completeSet
	args := s.completeArgs(id, c, now)
	if checkProof {
		query += ` AND ` + proofStillValid
		args = append(args, c.UserID, s.flavor.timeArg(c.AuthTime))
	}
	var r authRequestRow
	err := get(ctx, &r, s.q(query+` RETURNING `+authRequestColumns), args...)
	if err == nil {
		return r.authRequest(), nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, wrap("complete auth request", err)
	}
	return nil, s.whyNotCompleted(ctx, get, id, now)
}

// whyNotCompleted tells a completion that matched nothing why: the request
// is gone (ErrNotFound) or was completed, coded, or its proof ended.
func (s *Store) whyNotCompleted(ctx context.Context, get func(context.Context, any, string, ...any) error, id string, now any) error {
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

// ExchangeCode consumes the code and stores its tokens in one statement on
// PostgreSQL and one transaction on SQLite. The conditional UPDATE decides:
// of concurrent exchanges one consumes and stores, the others store
// nothing and get ErrConflict. It consumes only a live request: the token
// endpoint read the code a moment before, and EndUserAccess may have
// ended the request since (by its expiry); on PostgreSQL the UPDATE waits
// for that transaction and then sees the new expiry.
func (s *Store) ExchangeCode(ctx context.Context, id string, at time.Time, access *storage.AccessToken, refresh *storage.RefreshToken) error {
	if access == nil {
		return errors.New("exchange code: an access token is required")
	}
	var err error
	if s.flavor == flavorPostgres {
		err = s.exchangeCodeOnce(ctx, id, at, access, refresh)
	} else {
		err = s.inTx(ctx, "exchange code", func(tx *sqlx.Tx) error {
			res, err := tx.ExecContext(ctx, s.q(`UPDATE auth_requests SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL
				AND expires_at > ?`), s.flavor.timeArg(at), id, s.flavor.timeArg(at))
			if err := mustAffect("exchange code: consume", res, err); err != nil {
				return err
			}
			if refresh != nil {
				if err := s.insertRefreshToken(ctx, tx, refresh); err != nil {
					return fmt.Errorf("exchange code: %w", err)
				}
			}
			if err := s.insertAccessToken(ctx, tx, access); err != nil {
				return fmt.Errorf("exchange code: %w", err)
			}
			return nil
		})
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	var exists int
	if err := s.get(ctx, &exists, s.q(`SELECT COUNT(*) FROM auth_requests WHERE id = ? AND expires_at > ?`),
		id, s.flavor.timeArg(at)); err != nil {
		return wrap("exchange code: check existence", err)
	}
	if exists == 0 {
		return fmt.Errorf("exchange code: gone or ended: %w", storage.ErrNotFound)
	}
	return fmt.Errorf("exchange code: already exchanged: %w", storage.ErrConflict)
}

// exchangeCodeOnce is ExchangeCode on PostgreSQL: the inserts read from the
// UPDATE's RETURNING, so they store nothing unless it consumed the code.
func (s *Store) exchangeCodeOnce(ctx context.Context, id string, at time.Time, access *storage.AccessToken, refresh *storage.RefreshToken) error {
	args := append([]any{s.flavor.timeArg(at), id, s.flavor.timeArg(at)}, s.accessTokenValues(access)...)
	storeRefresh := ``
	if refresh != nil {
		storeRefresh = `, stored_refresh AS (
			INSERT INTO refresh_tokens (` + refreshTokenColumns + `)
			SELECT ` + refreshTokenTyped + ` FROM consumed
		)`
		args = append(args, s.refreshTokenValues(refresh)...)
	}
	var consumed int
	err := s.get(ctx, &consumed, s.q(`WITH consumed AS (
			UPDATE auth_requests SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL AND expires_at > ? RETURNING id
		), stored_access AS (
			INSERT INTO access_tokens (`+accessTokenColumns+`)
			SELECT `+accessTokenTyped+` FROM consumed
		)`+storeRefresh+`
		SELECT COUNT(*) FROM consumed`), args...)
	if err != nil {
		return wrap("exchange code", err)
	}
	if consumed == 0 {
		return fmt.Errorf("exchange code: nothing consumed: %w", storage.ErrNotFound)
	}
	return nil
}
