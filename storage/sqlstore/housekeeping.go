package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// RateEventRetention is how long rate events are kept; DeleteExpired drops
// older ones. No rate limit may count over a longer window.
const RateEventRetention = 24 * time.Hour

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
		{"login_flows", "expires_at <= ?", cutoff},
		{"webauthn_sessions", "expires_at <= ?", cutoff},
		{"access_tokens", "expires_at <= ?", cutoff},
		{"refresh_tokens", "expires_at <= ?", cutoff},
		{"signing_keys", "expires_at <= ?", cutoff},
		{"rate_events", "at <= ?", s.flavor.timeArg(now.Add(-RateEventRetention))},
		{"enrolment_links", "expires_at <= ?", s.flavor.timeArg(now.Add(-EnrolmentLinkRetention))},
	}
	// One statement per table, each its own transaction: the sweeps need
	// no common snapshot, and one long transaction would hold row locks
	// (on SQLite the whole database) that logins and token requests of
	// every replica queue behind. A failed table does not stop the others.
	var total int64
	var errs []error
	// Expired sessions end as any other, their logouts enqueued in the
	// same transaction.
	var sessions int64
	err := s.inTx(ctx, "delete expired sessions", func(tx *sqlx.Tx) error {
		var err error
		sessions, err = s.endSessions(ctx, tx, `expires_at <= ?`, cutoff)
		return err
	})
	if err != nil {
		errs = append(errs, err)
	} else {
		total += sessions
	}
	for _, sw := range sweeps {
		res, err := s.exec(ctx, s.q(`DELETE FROM `+sw.table+` WHERE `+sw.where), sw.arg)
		if err != nil {
			errs = append(errs, wrap("delete expired "+sw.table, err))
			continue
		}
		n, err := res.RowsAffected()
		if err != nil {
			errs = append(errs, fmt.Errorf("delete expired %s: rows affected: %w", sw.table, err))
			continue
		}
		total += n
	}
	return total, errors.Join(errs...)
}
