package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// OTPSendRetention is how long OTP-send records are kept for the resend
// throttle; DeleteExpired drops older ones. It is longer than any throttle
// window the login package uses.
const OTPSendRetention = 24 * time.Hour

// DeleteExpired removes every row whose lifetime ended at or before now and
// returns how many it removed.
func (s *Store) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	cutoff := s.flavor.timeArg(now)
	sweeps := []struct {
		table string
		where string
		arg   any
	}{
		{"auth_requests", "expires_at <= ?", cutoff},
		{"sessions", "expires_at <= ?", cutoff},
		{"login_flows", "expires_at <= ?", cutoff},
		{"webauthn_sessions", "expires_at <= ?", cutoff},
		{"access_tokens", "expires_at <= ?", cutoff},
		{"refresh_tokens", "expires_at <= ?", cutoff},
		{"signing_keys", "expires_at <= ?", cutoff},
		{"otp_sends", "sent_at <= ?", s.flavor.timeArg(now.Add(-OTPSendRetention))},
	}
	var total int64
	err := s.inTx(ctx, "delete expired", func(tx *sqlx.Tx) error {
		total = 0
		for _, sw := range sweeps {
			res, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+sw.table+` WHERE `+sw.where), sw.arg)
			if err != nil {
				return wrap("delete expired "+sw.table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("delete expired %s: rows affected: %w", sw.table, err)
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return total, nil
}
