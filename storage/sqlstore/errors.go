package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/comstockloan/idp/storage"
)

// wrap adds op as context and maps driver errors onto the storage
// sentinels, keeping the driver's message for the log.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	}
	if sentinel := classify(err); sentinel != nil {
		return fmt.Errorf("%s: %w (%v)", op, sentinel, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// classify maps constraint violations: unique keys to ErrAlreadyExists, a
// missing referenced row (the user, in practice) to ErrNotFound.
func classify(err error) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch {
		case pqErr.Code == pqerror.UniqueViolation:
			return storage.ErrAlreadyExists
		case pqErr.Code == pqerror.ForeignKeyViolation:
			return storage.ErrNotFound
		case pqUnavailable(pqErr.Code):
			return storage.ErrUnavailable
		}
		return nil
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff { // the primary result code
		case sqlite3.SQLITE_CONSTRAINT:
			switch liteErr.Code() {
			case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
				return storage.ErrAlreadyExists
			case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
				return storage.ErrNotFound
			}
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return storage.ErrUnavailable
		}
		return nil
	}
	var netErr net.Error
	if errors.Is(err, driver.ErrBadConn) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return storage.ErrUnavailable
	}
	return nil
}

// pqUnavailable: the SQLSTATEs of a server that cannot serve now
// (connection exceptions, shutting down or starting, out of connections),
// as opposed to a statement it refused.
func pqUnavailable(code pqerror.Code) bool {
	if strings.HasPrefix(string(code), "08") { // connection_exception
		return true
	}
	switch code {
	case "57P01", "57P02", "57P03", // admin_shutdown, crash_shutdown, cannot_connect_now
		"53300": // too_many_connections
		return true
	}
	return false
}

// mustAffect turns "no row matched" into ErrNotFound.
func mustAffect(op string, res sql.Result, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: rows affected: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, storage.ErrNotFound)
	}
	return nil
}
