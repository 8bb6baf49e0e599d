package sqlstore

import (
	"context"
	"fmt"

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
