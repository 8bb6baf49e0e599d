package sqlstore

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type signingKeyRow struct {
	ID         string `db:"id"`
	Algorithm  string `db:"algorithm"`
	PrivateKey []byte `db:"private_key"`
	PublicKey  []byte `db:"public_key"`
	CreatedAt  dbTime `db:"created_at"`
	ActiveFrom dbTime `db:"active_from"`
	RetireAt   dbTime `db:"retire_at"`
	ExpiresAt  dbTime `db:"expires_at"`
}

// ListSigningKeys returns every stored key, oldest first; choosing among
// them by time is the caller's business.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	keys, err := s.listSigningKeys(ctx, s.db)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	return keys, nil
}

func (s *Store) listSigningKeys(ctx context.Context, q sqlx.QueryerContext) ([]storage.SigningKey, error) {
	var rows []signingKeyRow
	if err := sqlx.SelectContext(ctx, q, &rows, `SELECT id, algorithm, private_key, public_key, created_at,
		active_from, retire_at, expires_at FROM signing_keys ORDER BY created_at, id`); err != nil {
		return nil, wrap("select signing keys", err)
	}
	out := make([]storage.SigningKey, len(rows))
	for i, r := range rows {
		out[i] = storage.SigningKey{
			ID: r.ID, Algorithm: r.Algorithm, PrivateKey: r.PrivateKey, PublicKey: r.PublicKey,
			CreatedAt: r.CreatedAt.Time, ActiveFrom: r.ActiveFrom.Time, RetireAt: r.RetireAt.Time,
			ExpiresAt: r.ExpiresAt.Time,
		}
	}
	return out, nil
}

// RotateSigningKeys runs plan while holding the store-wide signing-key lock,
// so a replica that waited sees the key the first one added.
func (s *Store) RotateSigningKeys(ctx context.Context, plan func(current []storage.SigningKey) (add []storage.SigningKey, deleteIDs []string, err error)) error {
	return s.inTx(ctx, "rotate signing keys", func(tx *sqlx.Tx) error {
		if err := s.lockTx(ctx, tx, lockSigningKeys); err != nil {
			return fmt.Errorf("rotate signing keys: %w", err)
		}
		current, err := s.listSigningKeys(ctx, tx)
		if err != nil {
			return fmt.Errorf("rotate signing keys: %w", err)
		}
		add, deleteIDs, err := plan(current)
		if err != nil {
			return fmt.Errorf("rotate signing keys: plan: %w", err)
		}
		for _, id := range deleteIDs {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM signing_keys WHERE id = ?`), id); err != nil {
				return wrap("rotate signing keys: delete "+id, err)
			}
		}
		for _, k := range add {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO signing_keys (id, algorithm, private_key, public_key,
				created_at, active_from, retire_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
				k.ID, k.Algorithm, k.PrivateKey, k.PublicKey, s.flavor.timeArg(k.CreatedAt),
				s.flavor.timeArg(k.ActiveFrom), s.flavor.timeArg(k.RetireAt), s.flavor.timeArg(k.ExpiresAt)); err != nil {
				return wrap("rotate signing keys: insert "+k.ID, err)
			}
		}
		return nil
	})
}
