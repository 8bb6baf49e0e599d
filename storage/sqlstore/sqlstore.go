package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

func init() {
	// sqlx only knows the cgo driver's name; Rebind must turn our `?` into
	// `?` for the pure-Go driver too.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Pool sizes a Store's connection pool (each replica has one). Zero
// fields keep the defaults of DefaultPool.
type Pool struct {
	// MaxOpenConns bounds the connections, so several replicas cannot
	// exhaust the server's max_connections between them; requests queue for
	// a connection instead.
	MaxOpenConns int
	// MaxIdleConns kept open; below MaxOpenConns, a burst closes and
	// reopens connections (with lib/pq a TCP and TLS handshake each).
	MaxIdleConns int
	// ConnMaxLifetime recycles connections so a replica follows a database
	// failover or a change behind a pooler instead of pinning the old
	// server for ever; ConnMaxIdleTime gives idle ones back to the others.
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
}

// DefaultPool is the pool of PostgreSQL stores unless configured: idle as
// many as open, so a load that rises reuses its connections.
var DefaultPool = Pool{MaxOpenConns: 24, MaxIdleConns: 24, ConnMaxLifetime: 30 * time.Minute, ConnMaxIdleTime: 5 * time.Minute}

// sqliteFilePool keeps every connection of a file database: opening one
// re-reads the schema and re-prepares statements.
var sqliteFilePool = Pool{MaxOpenConns: 8, MaxIdleConns: 8}

// WithPool resizes the pool (zero fields keep the current defaults); an
// in-memory SQLite database keeps its single connection. It returns s.
func (s *Store) WithPool(p Pool) *Store {
	if s.memory {
		return s
	}
	def := DefaultPool
	if s.flavor == flavorSQLite {
		def = sqliteFilePool
	}
	if p.MaxOpenConns == 0 {
		p.MaxOpenConns = def.MaxOpenConns
	}
	if p.MaxIdleConns == 0 {
		p.MaxIdleConns = min(def.MaxIdleConns, p.MaxOpenConns)
	}
	if p.ConnMaxLifetime == 0 {
		p.ConnMaxLifetime = def.ConnMaxLifetime
	}
	if p.ConnMaxIdleTime == 0 {
		p.ConnMaxIdleTime = def.ConnMaxIdleTime
	}
	s.db.SetMaxOpenConns(p.MaxOpenConns)
	s.db.SetMaxIdleConns(p.MaxIdleConns)
	s.db.SetConnMaxLifetime(p.ConnMaxLifetime)
	s.db.SetConnMaxIdleTime(p.ConnMaxIdleTime)
	return s
}

// Store is a storage.Store backed by an SQL database.
type Store struct {
	db     *sqlx.DB
	flavor flavor
	logger *slog.Logger
	// now is the clock for lookups that do not take a time; tests of
	// other packages may replace it through WithClock.
	now func() time.Time
	// auditKey MACs the audit trail (see audit.go); it never reaches the
	// database.
	auditKey []byte
	// memory: an in-memory SQLite database, whose one connection is the
	// database.
	memory bool
	// prepare: statements outside transactions are prepared once per
	// connection and kept (see stmt); always on SQLite, on PostgreSQL
	// unless the DSN says prepared_statements=no.
	prepare bool
	// stmts caches the prepared statements by query text.
	stmts sync.Map
	// writer is SQLite's pool of one connection for everything that writes
	// (the same pool as db for an in-memory database); nil on PostgreSQL.
	// SQLite lets one writer in at a time: with writes spread over the
	// read pool, 64 concurrent writers met in SQLite's busy handler, which
	// polls with sleeps of up to 100ms, so the lock sat idle between them,
	// latency spread (p99 at 49 × p50) and writers gave up after
	// busy_timeout ("database is locked"). The one connection goes from
	// writer to writer at once, in arrival order (writeTurn), and a writer never
	// waits behind readers for a connection (WAL lets readers run beside
	// it). The busy timeout still covers other processes.
	writer *sqlx.DB
	// writeTurn orders SQLite's writers first come, first served (see
	// takeWriteTurn); nil on PostgreSQL.
	writeTurn chan struct{}
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn without touching its schema
// (call Migrate for that). dsn is a PostgreSQL URL (postgres:// or
// postgresql://) or "sqlite:PATH"; PATH ":memory:" gives a private in-memory
// database, meant for tests.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var (
		db      *sqlx.DB
		fl      flavor
		prepare = true
		err     error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		fl = flavorPostgres
		var pgDSN string
		pgDSN, prepare, err = postgresDSN(dsn)
		if err != nil {
			return nil, err
		}
		db, err = sqlx.Open("postgres", pgDSN)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
	case strings.HasPrefix(dsn, "sqlite:"):
		fl = flavorSQLite
		db, err = openSQLite(strings.TrimPrefix(dsn, "sqlite:"))
		if err != nil {
			return nil, err
		}
	default:
		scheme, _, found := strings.Cut(dsn, ":")
		if !found {
			scheme = "(none)"
		}
		return nil, fmt.Errorf("open store: unsupported database scheme %q: want postgres://, postgresql:// or sqlite:PATH", scheme)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s store: ping: %w", fl, err)
	}
	s := &Store{db: db, flavor: fl, logger: logger, now: time.Now, memory: strings.HasSuffix(dsn, ":memory:"), prepare: prepare}
	if fl == flavorSQLite {
		s.writeTurn = make(chan struct{}, 1)
		s.writer = db
		if !s.memory {
			if s.writer, err = openSQLite(strings.TrimPrefix(dsn, "sqlite:")); err != nil {
				db.Close()
				return nil, err
			}
			s.writer.SetMaxOpenConns(1)
			s.writer.SetMaxIdleConns(1)
			s.writer.SetConnMaxLifetime(0)
			s.writer.SetConnMaxIdleTime(0)
		}
	}
	return s.WithPool(Pool{}), nil
}

// DefaultConnectTimeout is lib/pq's connect_timeout unless the DSN sets
// one: without it, a new connection to a database that accepts TCP and
// never answers (a black-holed address, a hung proxy) waits for ever, since
// lib/pq ignores the context while it sets the connection up; every
// request needing one would hang instead of answering 503. It bounds the
// dial, TLS and authentication together, which take milliseconds to a
// healthy server.
const DefaultConnectTimeout = 5 * time.Second

// postgresDSN gives lib/pq our defaults where the DSN says nothing, and
// takes out our own parameter, prepared_statements (yes or no, default
// yes), which lib/pq would send to the server as a setting:
//   - binary_parameters=yes. Without it, every statement with parameters
//     costs two round trips (an unnamed Parse+Describe, then
//     Bind+Execute); with it the driver sends Parse, Bind and Execute
//     together, and []byte arguments travel as binary bytea. Nothing we
//     send depends on the parameter types the Describe would have told the
//     driver: strings, integers, booleans and times are sent as text
//     either way.
//   - connect_timeout (DefaultConnectTimeout).
//   - prepared_statements=no: for a pooler in transaction mode that does
//     not carry named statements between server connections (PgBouncer
//     before 1.21, or without max_prepared_statements).
func postgresDSN(dsn string) (string, bool, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", false, fmt.Errorf("open postgres: parse dsn: %w", err)
	}
	q := u.Query()
	prepare := true
	if q.Has("prepared_statements") {
		switch v := q.Get("prepared_statements"); v {
		case "yes":
		case "no":
			prepare = false
		default:
			return "", false, fmt.Errorf("open postgres: dsn: prepared_statements must be yes or no, got %q", v)
		}
		q.Del("prepared_statements")
	}
	if !q.Has("binary_parameters") {
		q.Set("binary_parameters", "yes")
	}
	if !q.Has("connect_timeout") {
		q.Set("connect_timeout", fmt.Sprint(int(DefaultConnectTimeout/time.Second)))
	}
	u.RawQuery = q.Encode()
	return u.String(), prepare, nil
}

func openSQLite(path string) (*sqlx.DB, error) {
	if path == "" {
		return nil, errors.New("open sqlite store: empty path in dsn sqlite:PATH")
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store: path %q must not contain '?'", path)
	}
	memory := path == ":memory:"
	params := "?_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_txlock=immediate"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite store: create directory: %w", err)
		}
		params += "&_pragma=journal_mode(WAL)"
	}
	db, err := sqlx.Open("sqlite", path+params)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if memory {
		// Every connection to :memory: is a separate database: keep exactly
		// one, forever.
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxLifetime(0)
		db.SetConnMaxIdleTime(0)
	}
	return db, nil
}

// WithClock makes the store use now instead of time.Now for the expiry
// checks of lookups that take no time argument. It returns s.
func (s *Store) WithClock(now func() time.Time) *Store {
	s.now = now
	return s
}

// DB exposes the connection pool for tests and maintenance tools.
func (s *Store) DB() *sqlx.DB { return s.db }

// Flavor reports "postgres" or "sqlite".
func (s *Store) Flavor() string { return s.flavor.String() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s store: %w", s.flavor, err)
	}
	return nil
}

// Close releases the connection pool.
func (s *Store) Close() error {
	s.stmts.Range(func(_, st any) bool {
		st.(*sqlx.Stmt).Close()
		return true
	})
	if s.writer != nil && s.writer != s.db {
		if err := s.writer.Close(); err != nil {
			s.db.Close()
			return fmt.Errorf("close %s store writer: %w", s.flavor, err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s store: %w", s.flavor, err)
	}
	return nil
}
