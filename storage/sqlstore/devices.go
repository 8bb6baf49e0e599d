package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// RememberDevice inserts the browser or moves its last sighting, then
// drops the user's least recently seen browsers beyond keep, in one
// transaction. The insert's ON CONFLICT decides isNew, so two sign-ins on
// one new browser at once yield one "new sign-in" mail.
func (s *Store) RememberDevice(ctx context.Context, userID, deviceHash string, at time.Time, keep int) (bool, error) {
	t := s.flavor.timeArg(at)
	var isNew bool
	err := s.inTx(ctx, "remember device", func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO known_devices (user_id, device_hash, first_seen_at, last_seen_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_hash) DO NOTHING`), userID, deviceHash, t, t)
		if err != nil {
			return wrap("remember device: insert", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("remember device: rows affected: %w", err)
		}
		isNew = n == 1
		if !isNew {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE known_devices SET last_seen_at = ? WHERE user_id = ? AND device_hash = ?`),
				t, userID, deviceHash); err != nil {
				return wrap("remember device: touch", err)
			}
			return nil
		}
		// Only an insert can push the user over keep.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM known_devices WHERE user_id = ? AND device_hash NOT IN (
			SELECT device_hash FROM known_devices WHERE user_id = ? ORDER BY last_seen_at DESC, device_hash LIMIT ?)`),
			userID, userID, keep); err != nil {
			return wrap("remember device: trim", err)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return isNew, nil
}
