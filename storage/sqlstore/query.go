package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

// q rebinds a `?` statement for the driver.
func (s *Store) q(query string) string { return s.db.Rebind(query) }

// stmt is the prepared statement of query, prepared once per Store
// (database/sql then prepares it once per connection and reuses it), or
// nil when the Store does not prepare (see Store.prepare). On SQLite,
// compiling the statement on every call was a sixth of the CPU of a login;
// on PostgreSQL, an unnamed statement is parsed and planned again on every
// call, and the server's CPU per SSO flow fell by about a third with named
// ones. The queries are fixed strings, so the cache is bounded.
func (s *Store) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if !s.prepare {
		return nil, nil
	}
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := s.dbFor(query).PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// dbFor is the pool query runs on: SQLite's writer for a write.
func (s *Store) dbFor(query string) *sqlx.DB {
	if s.writer != nil && !isRead(query) {
		return s.writer
	}
	return s.db
}

// isRead: a statement that writes nothing (every write we send starts with
// INSERT, UPDATE or DELETE).
func isRead(query string) bool {
	q := strings.TrimLeft(query, " \t\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// takeWriteTurn waits, first come first served, for SQLite's one writer
// and returns its release; on PostgreSQL, or for a read, it returns at
// once. database/sql hands a freed connection to a random waiter: with 64
// writers queued for the one connection, some waited many turns, and the
// refresh benchmark's p99 reached 7 × its p50 at c=64 with fewer flows
// than at c=4. Writers blocked on a channel are woken in order.
func (s *Store) takeWriteTurn(ctx context.Context, query string) (func(), error) {
	if s.writeTurn == nil || (query != "" && isRead(query)) {
		return func() {}, nil
	}
	select {
	case s.writeTurn <- struct{}{}:
		return func() { <-s.writeTurn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exec, get, sel and queryRowx run a statement outside a transaction,
// through the statement cache (and SQLite's writer pool for a write).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	release, err := s.takeWriteTurn(ctx, query)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, query, args...)
}

func (s *Store) get(ctx context.Context, dest any, query string, args ...any) error {
	release, err := s.takeWriteTurn(ctx, query)
	if err != nil {
		return err
	}
	defer release()
	st, err := s.stmt(ctx, query)
	if err != nil {
		return err
	}
	if st != nil {
		return st.GetContext(ctx, dest, args...)
	}
	return s.db.GetContext(ctx, dest, query, args...)
}

func (s *Store) sel(ctx context.Context, dest any, query string, args ...any) error {
	release, err := s.takeWriteTurn(ctx, query)
	if err != nil {
		return err
	}
	defer release()
	st, err := s.stmt(ctx, query)
	if err != nil {
		return err
	}
	if st != nil {
		return st.SelectContext(ctx, dest, args...)
	}
	return s.db.SelectContext(ctx, dest, query, args...)
}

func (s *Store) queryRowx(ctx context.Context, query string, args ...any) rowScanner {
	release, err := s.takeWriteTurn(ctx, query)
	if err != nil {
		return errRow{err}
	}
	st, err := s.stmt(ctx, query)
	if err != nil {
		release()
		return errRow{err}
	}
	if st != nil {
		return releasingRow{st.QueryRowxContext(ctx, args...), release}
	}
	return releasingRow{s.db.QueryRowxContext(ctx, query, args...), release}
}

// releasingRow gives the write turn back once the row is read (the
// statement runs until then).
type releasingRow struct {
	row     rowScanner
	release func()
}

func (r releasingRow) Scan(dest ...any) error {
	defer r.release()
	return r.row.Scan(dest...)
}

// rowScanner is the one method of *sqlx.Row that queryRowx's callers use.
type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// inTx runs fn in a transaction and commits when fn returns nil. On SQLite
// every transaction is BEGIN IMMEDIATE (the DSN's _txlock), which serialises
// writers and is what makes the store-wide locks below work.
func (s *Store) inTx(ctx context.Context, op string, fn func(tx *sqlx.Tx) error) error {
	release, err := s.takeWriteTurn(ctx, "")
	if err != nil {
		return wrap(op+": wait to write", err)
	}
	defer release()
	db := s.db
	if s.writer != nil {
		db = s.writer // every SQLite transaction writes (BEGIN IMMEDIATE)
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return wrap(op+": begin", err)
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.logger.WarnContext(ctx, "rollback failed", "op", op, "err", rbErr)
		}
		// A step inside fn may have wrapped a driver error without wrap
		// (a lock, a read): a lost database is still ErrUnavailable.
		if !errors.Is(err, storage.ErrUnavailable) && classify(err) == storage.ErrUnavailable {
			return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(op+": commit", err)
	}
	return nil
}

// lockTx takes a store-wide lock named by key until tx ends. On PostgreSQL
// it is an advisory lock scoped to the current schema (so that test schemas
// in one cluster do not contend; coalesce because the strict lock function
// would silently take no lock on NULL); on SQLite the immediate transaction
// already excludes every other writer.
func (s *Store) lockTx(ctx context.Context, tx *sqlx.Tx, key lockKey) error {
	if s.flavor != flavorPostgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')), $1)`, int32(key)); err != nil {
		return fmt.Errorf("take %s lock: %w", key, err)
	}
	return nil
}

// lockKey names a store-wide lock.
type lockKey int32

const (
	lockMigrate lockKey = iota + 1
	lockSigningKeys
	lockAudit
)

func (k lockKey) String() string {
	switch k {
	case lockMigrate:
		return "migration"
	case lockSigningKeys:
		return "signing key"
	case lockAudit:
		return "audit"
	}
	return fmt.Sprintf("lock %d", int32(k))
}

// expired is the one expiry rule: a row is gone at its ExpiresAt.
func expired(expiresAt, now time.Time) bool {
	return !expiresAt.After(now)
}

// joinedColumns names columns (a "a, b, c" list) of the table aliased
// table for a join; with into, each AS "into.column", which sqlx maps onto
// the embedded row struct tagged into.
func joinedColumns(table, columns, into string) string {
	var out []string
	for _, c := range strings.Split(columns, ",") {
		c = table + "." + strings.TrimSpace(c)
		if into != "" {
			c += ` AS "` + into + "." + c[len(table)+1:] + `"`
		}
		out = append(out, c)
	}
	return strings.Join(out, ", ")
}

// pgTypes are the columns that are not text, by name, across the tables
// whose rows are inserted with INSERT … SELECT (see placeholders).
var pgTypes = map[string]string{
	"max_age_us": "BIGINT", "done": "BOOLEAN",
	"created_at": "TIMESTAMPTZ", "expires_at": "TIMESTAMPTZ", "auth_time": "TIMESTAMPTZ", "consumed_at": "TIMESTAMPTZ",
	"code_expires_at": "TIMESTAMPTZ", "rotated_at": "TIMESTAMPTZ", "revoked_at": "TIMESTAMPTZ",
}

// placeholders is one ? per column of columns: for a VALUES list, or, with
// typed, for an INSERT … SELECT on PostgreSQL, which types no parameter
// from its target column, each cast to its column's type.
func placeholders(columns string, typed bool) string {
	var out []string
	for _, c := range strings.Split(columns, ",") {
		switch t, ok := pgTypes[strings.TrimSpace(c)]; {
		case !typed:
			out = append(out, "?")
		case ok:
			out = append(out, "CAST(? AS "+t+")")
		default:
			out = append(out, "CAST(? AS TEXT)")
		}
	}
	return strings.Join(out, ", ")
}
