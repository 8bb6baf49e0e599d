package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

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
// PostgreSQL one call of the reserve_rate_event function (migration 0007:
// an advisory lock on the (schema, kind, key) hash, then the count and the
// insert, in one round trip); on SQLite the immediate transaction. Other
// keys never wait.
func (s *Store) ReserveRateEvent(ctx context.Context, kind, key string, at, since time.Time, limit int) (string, bool, error) {
	if kind == "" || key == "" || at.IsZero() || limit <= 0 {
		return "", false, fmt.Errorf("reserve rate event: kind %q, key %q, time and a positive limit (%d) must all be set", kind, key, limit)
	}
	id, err := randomID()
	if err != nil {
		return "", false, fmt.Errorf("reserve rate event %s: %w", kind, err)
	}
	var taken bool
	if s.flavor == flavorPostgres {
		err = s.db.GetContext(ctx, &taken, `SELECT reserve_rate_event($1, $2, $3, $4, $5, $6)`,
			kind, key, s.flavor.timeArg(at), s.flavor.timeArg(since), limit, id)
		if err != nil {
			return "", false, wrap("reserve rate event "+kind, err)
		}
		if !taken {
			return "", false, nil
		}
		return id, true, nil
	}
	err = s.inTx(ctx, "reserve rate event "+kind, func(tx *sqlx.Tx) error {
		taken, err = s.reserveInTx(ctx, tx, kind, key, s.flavor.timeArg(at), s.flavor.timeArg(since), limit, id)
		return err
	})
	if err != nil || !taken {
		return "", false, err
	}
	return id, true, nil
}

// reserveInTx is SQLite's reservation: the count and the insert in one
// statement of the immediate transaction tx, which no other writer
// shares. at and since are timeArg values.
func (s *Store) reserveInTx(ctx context.Context, tx *sqlx.Tx, kind, key string, at, since any, limit int, id string) (bool, error) {
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO rate_events (kind, key, at, id)
		SELECT ?, ?, ?, ? WHERE (SELECT COUNT(*) FROM rate_events WHERE kind = ? AND key = ? AND at >= ?) < ?`),
		kind, key, at, id, kind, key, since, limit)
	if err != nil {
		return false, wrap("reserve rate event "+kind, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap("reserve rate event "+kind+": rows affected", err)
	}
	return n == 1, nil
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

// randomID names a row the store creates on its own behalf.
func randomID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
