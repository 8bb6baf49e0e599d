package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

// RememberDevice inserts the browser or moves its last sighting, then
// drops the user's least recently seen browsers beyond keep, in one
// transaction: on PostgreSQL one call of the remember_device function
// (migration 0012), on SQLite the immediate transaction. The insert's ON
// CONFLICT decides whether the browser is new, so two sign-ins on one new
// browser at once yield one "new sign-in" mail; the user's row is locked
// first (FOR NO KEY UPDATE on PostgreSQL, which does not hold up the
// foreign keys of their other rows; the immediate transaction on SQLite),
// so two new browsers at once cannot both be the user's first and both go
// unmailed.
func (s *Store) RememberDevice(ctx context.Context, userID, deviceHash string, at time.Time, keep int) (storage.DeviceSighting, error) {
	t := s.flavor.timeArg(at)
	if s.flavor == flavorPostgres {
		var seen string
		if err := s.get(ctx, &seen, `SELECT remember_device($1, $2, $3, $4)`, userID, deviceHash, t, keep); err != nil {
			return 0, wrap("remember device", err)
		}
		switch seen {
		case "known":
			return storage.DeviceKnown, nil
		case "new":
			return storage.DeviceNew, nil
		case "first":
			return storage.DeviceFirst, nil
		case "no_user":
			return 0, fmt.Errorf("remember device: lock user: %w", storage.ErrNotFound)
		}
		return 0, fmt.Errorf("remember device: unexpected answer %q", seen)
	}
	var seen storage.DeviceSighting
	err := s.inTx(ctx, "remember device", func(tx *sqlx.Tx) error {
		var id string
		if err := tx.GetContext(ctx, &id, `SELECT id FROM users WHERE id = ?`, userID); err != nil {
			return wrap("remember device: lock user", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO known_devices (user_id, device_hash, first_seen_at, last_seen_at)
			VALUES (?, ?, ?, ?) ON CONFLICT (user_id, device_hash) DO NOTHING`), userID, deviceHash, t, t)
		if err != nil {
			return wrap("remember device: insert", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("remember device: rows affected: %w", err)
		}
		if n == 0 {
			seen = storage.DeviceKnown
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE known_devices SET last_seen_at = ? WHERE user_id = ? AND device_hash = ?`),
				t, userID, deviceHash); err != nil {
				return wrap("remember device: touch", err)
			}
			return nil
		}
		var others int
		if err := tx.GetContext(ctx, &others, s.q(`SELECT COUNT(*) FROM known_devices WHERE user_id = ? AND device_hash <> ?`),
			userID, deviceHash); err != nil {
			return wrap("remember device: count", err)
		}
		seen = storage.DeviceNew
		if others == 0 {
			seen = storage.DeviceFirst
		}
		// Only an insert can push the user over keep, and the count says
		// whether this one did.
		if others < keep {
			return nil
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM known_devices WHERE user_id = ? AND device_hash NOT IN (
			SELECT device_hash FROM known_devices WHERE user_id = ? ORDER BY last_seen_at DESC, device_hash LIMIT ?)`),
			userID, userID, keep); err != nil {
			return wrap("remember device: trim", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return seen, nil
}
