package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

const loginFlowColumns = `id, auth_request_id, user_id, login_id, purpose, step,
	password_verified_at, otp_verified_at, passkey_verified_at, otp_hash, otp_expires_at, otp_attempts,
	otp_sent_at, data, version, created_at, expires_at`

func (r loginFlowRow) flow() *storage.LoginFlow {
	return &storage.LoginFlow{
		ID: r.ID, AuthRequestID: r.AuthRequestID, UserID: r.UserID, LoginID: r.LoginID, Purpose: r.Purpose,
		Step: r.Step, PasswordVerifiedAt: r.PasswordVerifiedAt.ptr(), OTPVerifiedAt: r.OTPVerifiedAt.ptr(),
		PasskeyVerifiedAt: r.PasskeyVerifiedAt.ptr(), OTPHash: r.OTPHash, OTPExpiresAt: r.OTPExpiresAt.ptr(),
		OTPAttempts: r.OTPAttempts, OTPSentAt: r.OTPSentAt.ptr(), Data: r.Data, Version: r.Version,
		CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
	}
}

// LoginFlowByID returns ErrNotFound for an expired flow.
func (s *Store) LoginFlowByID(ctx context.Context, id string) (*storage.LoginFlow, error) {
	var r loginFlowRow
	if err := s.get(ctx, &r, s.q(`SELECT `+loginFlowColumns+` FROM login_flows WHERE id = ?`), id); err != nil {
		return nil, wrap("login flow by id", err)
	}
	if expired(r.ExpiresAt.Time, s.now()) {
		return nil, fmt.Errorf("login flow by id: expired: %w", storage.ErrNotFound)
	}
	return r.flow(), nil
}

// reservedFlowColumns are the flow's columns after a LEFT JOIN that may
// find none: text and numbers that would be NULL read as empty and 0
// (found says whether there was a row); times and data read NULL as zero
// already.
const reservedFlowColumns = `lf.id IS NOT NULL AS found, coalesce(lf.id, '') AS id,
	coalesce(lf.auth_request_id, '') AS auth_request_id, coalesce(lf.user_id, '') AS user_id,
	coalesce(lf.login_id, '') AS login_id, coalesce(lf.purpose, '') AS purpose, coalesce(lf.step, '') AS step,
	lf.password_verified_at, lf.otp_verified_at, lf.passkey_verified_at, coalesce(lf.otp_hash, '') AS otp_hash,
	lf.otp_expires_at, coalesce(lf.otp_attempts, 0) AS otp_attempts, lf.otp_sent_at, lf.data,
	coalesce(lf.version, 0) AS version, lf.created_at, lf.expires_at`

// ReserveLoginFlow is ReserveRateEvent and then LoginFlowByID in one round
// trip: on PostgreSQL one statement, whose materialised CTE calls
// reserve_rate_event (migration 0007) exactly once and whose join reads
// the flow only when the slot was taken; on SQLite the reservation's
// immediate transaction, which reads the flow after the insert.
func (s *Store) ReserveLoginFlow(ctx context.Context, id string, slot storage.RateSlot) (*storage.LoginFlow, bool, error) {
	if err := slot.Check(); err != nil {
		return nil, false, fmt.Errorf("reserve login flow: %w", err)
	}
	eventID, err := randomID()
	if err != nil {
		return nil, false, fmt.Errorf("reserve login flow: %w", err)
	}
	var r struct {
		Taken bool `db:"taken"`
		Found bool `db:"found"`
		loginFlowRow
	}
	at, since := s.flavor.timeArg(slot.At), s.flavor.timeArg(slot.Since)
	if s.flavor == flavorPostgres {
		err = s.get(ctx, &r, `WITH r AS MATERIALIZED (SELECT reserve_rate_event($1, $2, $3, $4, $5, $6) AS taken)
			SELECT r.taken, `+reservedFlowColumns+` FROM r LEFT JOIN login_flows lf ON r.taken AND lf.id = $7`,
			slot.Kind, slot.Key, at, since, slot.Limit, eventID, id)
		if err != nil {
			return nil, false, wrap("reserve login flow "+slot.Kind, err)
		}
	} else {
		err = s.inTx(ctx, "reserve login flow "+slot.Kind, func(tx *sqlx.Tx) error {
			taken, rerr := s.reserveInTx(ctx, tx, slot.Kind, slot.Key, at, since, slot.Limit, eventID)
			if rerr != nil || !taken {
				return rerr
			}
			r.Taken = true
			rerr = tx.GetContext(ctx, &r.loginFlowRow, `SELECT `+loginFlowColumns+` FROM login_flows WHERE id = ?`, id)
			if errors.Is(rerr, sql.ErrNoRows) {
				return nil
			}
			r.Found = rerr == nil
			return wrap("reserve login flow: read", rerr)
		})
		if err != nil {
			return nil, false, err
		}
	}
	switch {
	case !r.Taken:
		return nil, false, nil
	case !r.Found:
		return nil, true, fmt.Errorf("reserve login flow: %w", storage.ErrNotFound)
	case expired(r.ExpiresAt.Time, s.now()):
		return nil, true, fmt.Errorf("reserve login flow: expired: %w", storage.ErrNotFound)
	}
	return r.flow(), true, nil
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
