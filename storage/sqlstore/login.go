package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type loginFlowRow struct {
	ID                 string `db:"id"`
	AuthRequestID      string `db:"auth_request_id"`
	UserID             string `db:"user_id"`
	LoginID            string `db:"login_id"`
	Purpose            string `db:"purpose"`
	Step               string `db:"step"`
	PasswordVerifiedAt dbTime `db:"password_verified_at"`
	OTPVerifiedAt      dbTime `db:"otp_verified_at"`
	PasskeyVerifiedAt  dbTime `db:"passkey_verified_at"`
	OTPHash            string `db:"otp_hash"`
	OTPExpiresAt       dbTime `db:"otp_expires_at"`
	OTPAttempts        int    `db:"otp_attempts"`
	OTPSentAt          dbTime `db:"otp_sent_at"`
	Data               []byte `db:"data"`
	Version            int    `db:"version"`
	CreatedAt          dbTime `db:"created_at"`
	ExpiresAt          dbTime `db:"expires_at"`
}

func (s *Store) CreateLoginFlow(ctx context.Context, f *storage.LoginFlow) error {
	if f.CreatedAt.IsZero() {
		f.CreatedAt = s.now().UTC()
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO login_flows (id, auth_request_id, user_id, login_id, purpose, step,
		password_verified_at, otp_verified_at, passkey_verified_at, otp_hash, otp_expires_at, otp_attempts,
		otp_sent_at, data, version, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		f.ID, f.AuthRequestID, f.UserID, f.LoginID, f.Purpose, f.Step,
		s.flavor.timePtrArg(f.PasswordVerifiedAt), s.flavor.timePtrArg(f.OTPVerifiedAt),
		s.flavor.timePtrArg(f.PasskeyVerifiedAt), f.OTPHash, s.flavor.timePtrArg(f.OTPExpiresAt), f.OTPAttempts,
		s.flavor.timePtrArg(f.OTPSentAt), f.Data, f.Version, s.flavor.timeArg(f.CreatedAt), s.flavor.timeArg(f.ExpiresAt))
	return wrap("create login flow", err)
}

// LoginFlowByID returns ErrNotFound for an expired flow.
func (s *Store) LoginFlowByID(ctx context.Context, id string) (*storage.LoginFlow, error) {
	var r loginFlowRow
	if err := s.get(ctx, &r, s.q(`SELECT id, auth_request_id, user_id, login_id, purpose, step,
		password_verified_at, otp_verified_at, passkey_verified_at, otp_hash, otp_expires_at, otp_attempts,
		otp_sent_at, data, version, created_at, expires_at FROM login_flows WHERE id = ?`), id); err != nil {
		return nil, wrap("login flow by id", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("login flow by id: expired: %w", storage.ErrNotFound)
	}
	return &storage.LoginFlow{
		ID: r.ID, AuthRequestID: r.AuthRequestID, UserID: r.UserID, LoginID: r.LoginID, Purpose: r.Purpose,
		Step: r.Step, PasswordVerifiedAt: r.PasswordVerifiedAt.ptr(), OTPVerifiedAt: r.OTPVerifiedAt.ptr(),
		PasskeyVerifiedAt: r.PasskeyVerifiedAt.ptr(), OTPHash: r.OTPHash, OTPExpiresAt: r.OTPExpiresAt.ptr(),
		OTPAttempts: r.OTPAttempts, OTPSentAt: r.OTPSentAt.ptr(), Data: r.Data, Version: r.Version,
		CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
	}, nil
}

// UpdateLoginFlow is one compare-and-set UPDATE on Version: of concurrent
// writers holding the same Version exactly one matches a row.
func (s *Store) UpdateLoginFlow(ctx context.Context, f *storage.LoginFlow) error {
	return s.updateLoginFlow(ctx, f, f.ID, "update login flow")
}

// RekeyLoginFlow is UpdateLoginFlow that also moves the row to newID, in
// the same compare-and-set statement.
func (s *Store) RekeyLoginFlow(ctx context.Context, f *storage.LoginFlow, newID string) error {
	if newID == "" || newID == f.ID {
		return fmt.Errorf("rekey login flow: the new id must differ from the old one")
	}
	if err := s.updateLoginFlow(ctx, f, newID, "rekey login flow"); err != nil {
		return err
	}
	f.ID = newID
	return nil
}

func (s *Store) updateLoginFlow(ctx context.Context, f *storage.LoginFlow, newID, op string) error {
	res, err := s.exec(ctx, s.q(`UPDATE login_flows SET id = ?, auth_request_id = ?, user_id = ?, login_id = ?,
		purpose = ?, step = ?, password_verified_at = ?, otp_verified_at = ?, passkey_verified_at = ?, otp_hash = ?,
		otp_expires_at = ?, otp_attempts = ?, otp_sent_at = ?, data = ?, expires_at = ?, version = version + 1
		WHERE id = ? AND version = ?`),
		newID, f.AuthRequestID, f.UserID, f.LoginID, f.Purpose, f.Step, s.flavor.timePtrArg(f.PasswordVerifiedAt),
		s.flavor.timePtrArg(f.OTPVerifiedAt), s.flavor.timePtrArg(f.PasskeyVerifiedAt), f.OTPHash,
		s.flavor.timePtrArg(f.OTPExpiresAt), f.OTPAttempts, s.flavor.timePtrArg(f.OTPSentAt), f.Data,
		s.flavor.timeArg(f.ExpiresAt), f.ID, f.Version)
	if err != nil {
		return wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf(op+": rows affected: %w", err)
	}
	if n == 1 {
		f.Version++
		return nil
	}
	var exists int
	if err := s.get(ctx, &exists, s.q(`SELECT COUNT(*) FROM login_flows WHERE id = ?`), f.ID); err != nil {
		return wrap(op+": check existence", err)
	}
	if exists == 0 {
		return fmt.Errorf(op+": %w", storage.ErrNotFound)
	}
	return fmt.Errorf(op+": version %d is stale: %w", f.Version, storage.ErrConflict)
}

func (s *Store) DeleteLoginFlow(ctx context.Context, id string) error {
	_, err := s.exec(ctx, s.q(`DELETE FROM login_flows WHERE id = ?`), id)
	return wrap("delete login flow", err)
}

// RecordRateEvent is one plain INSERT: no read, no lock, so concurrent
// logins never wait on each other to be counted.
func (s *Store) RecordRateEvent(ctx context.Context, kind, key string, at time.Time) error {
	if kind == "" || key == "" || at.IsZero() {
		return fmt.Errorf("record rate event: kind %q, key %q and time must all be set", kind, key)
	}
	_, err := s.exec(ctx, s.q(`INSERT INTO rate_events (kind, key, at) VALUES (?, ?, ?)`),
		kind, key, s.flavor.timeArg(at))
	return wrap("record rate event "+kind, err)
}

// CountRateEvents counts events at or after since; the (kind, key, at)
// index answers it without touching the table.
func (s *Store) CountRateEvents(ctx context.Context, kind, key string, since time.Time) (int, error) {
	var n int
	if err := s.get(ctx, &n, s.q(`SELECT COUNT(*) FROM rate_events WHERE kind = ? AND key = ? AND at >= ?`),
		kind, key, s.flavor.timeArg(since)); err != nil {
		return 0, wrap("count rate events "+kind, err)
	}
	return n, nil
}

// ReserveRateEvent serialises the callers of one kind and key only: on
// PostgreSQL a transaction-scoped advisory lock on the (schema, kind, key)
// hash, taken before the count so the count's snapshot sees every
// reservation committed by the previous holder; on SQLite the immediate
// transaction. Other keys never wait.
func (s *Store) ReserveRateEvent(ctx context.Context, kind, key string, at, since time.Time, limit int) (string, bool, error) {
	if kind == "" || key == "" || at.IsZero() || limit <= 0 {
		return "", false, fmt.Errorf("reserve rate event: kind %q, key %q, time and a positive limit (%d) must all be set", kind, key, limit)
	}
	id, err := randomID()
	if err != nil {
		return "", false, fmt.Errorf("reserve rate event %s: %w", kind, err)
	}
	var taken bool
	err = s.inTx(ctx, "reserve rate event "+kind, func(tx *sqlx.Tx) error {
		if s.flavor == flavorPostgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended(coalesce(current_schema(), '') || '/' || $1 || '/' || $2, 0))`, kind, key); err != nil {
				return fmt.Errorf("reserve rate event %s: lock key: %w", kind, err)
			}
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO rate_events (kind, key, at, id)
			SELECT ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM rate_events WHERE kind = ? AND key = ? AND at >= ?) < ?`),
			kind, key, s.flavor.timeArg(at), id, kind, key, s.flavor.timeArg(since), limit)
		if err != nil {
			return wrap("reserve rate event "+kind, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return wrap("reserve rate event "+kind+": rows affected", err)
		}
		taken = n == 1
		return nil
	})
	if err != nil || !taken {
		return "", false, err
	}
	return id, true, nil
}

// ReleaseRateEvent deletes a reserved event; releasing one that is gone
// (swept, or released twice) is not an error.
func (s *Store) ReleaseRateEvent(ctx context.Context, kind, key, id string) error {
	if id == "" {
		return fmt.Errorf("release rate event %s: empty id", kind)
	}
	_, err := s.exec(ctx, s.q(`DELETE FROM rate_events WHERE kind = ? AND key = ? AND id = ?`), kind, key, id)
	return wrap("release rate event "+kind, err)
}

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

type credentialRow struct {
	ID              []byte     `db:"id"`
	UserID          string     `db:"user_id"`
	PublicKey       []byte     `db:"public_key"`
	AttestationType string     `db:"attestation_type"`
	AAGUID          []byte     `db:"aaguid"`
	SignCount       int64      `db:"sign_count"`
	Transports      stringList `db:"transports"`
	UserPresent     bool       `db:"user_present"`
	UserVerified    bool       `db:"user_verified"`
	BackupEligible  bool       `db:"backup_eligible"`
	BackupState     bool       `db:"backup_state"`
	CloneWarning    bool       `db:"clone_warning"`
	Attachment      string     `db:"attachment"`
	Name            string     `db:"name"`
	CreatedAt       dbTime     `db:"created_at"`
	LastUsedAt      dbTime     `db:"last_used_at"`
}

const credentialColumns = `id, user_id, public_key, attestation_type, aaguid, sign_count, transports, user_present,
	user_verified, backup_eligible, backup_state, clone_warning, attachment, name, created_at, last_used_at`

func (r credentialRow) credential() storage.Credential {
	return storage.Credential{
		ID: r.ID, UserID: r.UserID, PublicKey: r.PublicKey, AttestationType: r.AttestationType, AAGUID: r.AAGUID,
		SignCount: uint32(r.SignCount), Transports: r.Transports, UserPresent: r.UserPresent,
		UserVerified: r.UserVerified, BackupEligible: r.BackupEligible, BackupState: r.BackupState,
		CloneWarning: r.CloneWarning, Attachment: r.Attachment, Name: r.Name, CreatedAt: r.CreatedAt.Time,
		LastUsedAt: r.LastUsedAt.ptr(),
	}
}

// CreateCredential stores a passkey. With onlyIfFirst the user's row is
// locked first (FOR UPDATE on PostgreSQL; the immediate transaction on
// SQLite), so two concurrent first enrolments cannot both see "no passkey".
func (s *Store) CreateCredential(ctx context.Context, c *storage.Credential, onlyIfFirst bool) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now().UTC()
	}
	return s.inTx(ctx, "create credential", func(tx *sqlx.Tx) error {
		if onlyIfFirst {
			lock := `SELECT id FROM users WHERE id = ?`
			if s.flavor == flavorPostgres {
				lock += ` FOR UPDATE`
			}
			var id string
			if err := tx.GetContext(ctx, &id, s.q(lock), c.UserID); err != nil {
				return wrap("create credential: lock user", err)
			}
			var n int
			if err := tx.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM credentials WHERE user_id = ?`), c.UserID); err != nil {
				return wrap("create credential: count", err)
			}
			if n > 0 {
				return fmt.Errorf("create credential: user already has %d passkey(s): %w", n, storage.ErrConflict)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO credentials (`+credentialColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.UserID, c.PublicKey, c.AttestationType, c.AAGUID, int64(c.SignCount), listArg(c.Transports),
			c.UserPresent, c.UserVerified, c.BackupEligible, c.BackupState, c.CloneWarning, c.Attachment, c.Name,
			s.flavor.timeArg(c.CreatedAt), s.flavor.timePtrArg(c.LastUsedAt))
		return wrap("create credential", err)
	})
}

func (s *Store) CredentialByID(ctx context.Context, id []byte) (*storage.Credential, error) {
	var r credentialRow
	if err := s.get(ctx, &r, s.q(`SELECT `+credentialColumns+` FROM credentials WHERE id = ?`), id); err != nil {
		return nil, wrap("credential by id", err)
	}
	c := r.credential()
	return &c, nil
}

// CredentialsByUser returns the user's passkeys, oldest first.
func (s *Store) CredentialsByUser(ctx context.Context, userID string) ([]storage.Credential, error) {
	var rows []credentialRow
	if err := s.sel(ctx, &rows, s.q(`SELECT `+credentialColumns+` FROM credentials WHERE user_id = ?
		ORDER BY created_at, id`), userID); err != nil {
		return nil, wrap("credentials by user", err)
	}
	out := make([]storage.Credential, len(rows))
	for i, r := range rows {
		out[i] = r.credential()
	}
	return out, nil
}

func (s *Store) CountCredentials(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.get(ctx, &n, s.q(`SELECT COUNT(*) FROM credentials WHERE user_id = ?`), userID); err != nil {
		return 0, wrap("count credentials", err)
	}
	return n, nil
}

func (s *Store) UpdateCredentialUse(ctx context.Context, id []byte, use storage.CredentialUse) error {
	res, err := s.exec(ctx, s.q(`UPDATE credentials SET sign_count = ?, backup_state = ?, user_verified = ?,
		clone_warning = ?, last_used_at = ? WHERE id = ?`),
		int64(use.SignCount), use.BackupState, use.UserVerified, use.CloneWarning, s.flavor.timeArg(use.UsedAt), id)
	return mustAffect("update credential use", res, err)
}

// RenameCredential renames a passkey of userID; ErrNotFound if they do not
// own it.
func (s *Store) RenameCredential(ctx context.Context, userID string, id []byte, name string) error {
	res, err := s.exec(ctx, s.q(`UPDATE credentials SET name = ? WHERE id = ? AND user_id = ?`), name, id, userID)
	return mustAffect("rename credential", res, err)
}

func (s *Store) DeleteCredential(ctx context.Context, userID string, id []byte) error {
	res, err := s.exec(ctx, s.q(`DELETE FROM credentials WHERE id = ? AND user_id = ?`), id, userID)
	return mustAffect("delete credential", res, err)
}

func (s *Store) DeleteUserCredentials(ctx context.Context, userID string) (int, error) {
	res, err := s.exec(ctx, s.q(`DELETE FROM credentials WHERE user_id = ?`), userID)
	if err != nil {
		return 0, wrap("delete user credentials", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete user credentials: rows affected: %w", err)
	}
	return int(n), nil
}

// randomID names a row the store creates on its own behalf.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
