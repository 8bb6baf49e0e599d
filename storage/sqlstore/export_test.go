package sqlstore

import "context"

// MigrateUpTo lets the external tests build the schema of an older release.
func (s *Store) MigrateUpTo(ctx context.Context, version int) error {
	return s.migrateUpTo(ctx, version)
}

var PostgresDSN = postgresDSN
