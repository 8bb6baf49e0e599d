package sqlstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one numbered, forward-only schema change.
type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", e.Name())
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		out = append(out, migration{version: version, name: e.Name(), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// Migrate brings the schema up to date. Several replicas may call it at
// once: on PostgreSQL they queue on an advisory lock, on SQLite on the
// immediate transaction; each migration runs in that one transaction.
func (s *Store) Migrate(ctx context.Context) error {
	return s.migrateUpTo(ctx, 0)
}

// migrateUpTo applies the migrations up to and including version, or all of
// them when version is 0; tests use it to build an older schema to migrate
// from.
func (s *Store) migrateUpTo(ctx context.Context, version int) error {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	if version > 0 {
		migrations = slices.DeleteFunc(migrations, func(m migration) bool { return m.version > version })
	}
	return s.inTx(ctx, "migrate", func(tx *sqlx.Tx) error {
		if err := s.lockTx(ctx, tx, lockMigrate); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY,
			name TEXT NOT NULL
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		var applied []int
		if err := tx.SelectContext(ctx, &applied, `SELECT version FROM schema_migrations`); err != nil {
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		done := make(map[int]bool, len(applied))
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range migrations {
			if done[m.version] {
				continue
			}
			for i, stmt := range splitStatements(s.rewriteTypes(m.sql)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate: %s statement %d: %w", m.name, i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name) VALUES (?, ?)`), m.version, m.name); err != nil {
				return fmt.Errorf("migrate: record %s: %w", m.name, err)
			}
			s.logger.InfoContext(ctx, "applied migration", "flavor", s.flavor.String(), "migration", m.name)
		}
		return nil
	})
}

func (s *Store) rewriteTypes(sqlText string) string {
	for from, to := range s.flavor.columnTypes() {
		sqlText = strings.ReplaceAll(sqlText, from, to)
	}
	return sqlText
}

// splitStatements cuts a migration at semicolons that end a line, after
// dropping "--" comment lines; migrations hold no procedural code, so that
// is enough and keeps both drivers on single-statement Exec.
func splitStatements(sqlText string) []string {
	var (
		out []string
		cur strings.Builder
	)
	for line := range strings.Lines(sqlText) {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(trimmed, ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, strings.TrimSuffix(stmt, ";"))
			}
			cur.Reset()
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		out = append(out, rest)
	}
	return out
}
