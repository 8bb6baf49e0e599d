package sqlstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// flavor is the SQL dialect of a Store.
type flavor int

const (
	flavorPostgres flavor = iota + 1
	flavorSQLite
)

func (f flavor) String() string {
	switch f {
	case flavorPostgres:
		return "postgres"
	case flavorSQLite:
		return "sqlite"
	}
	return "unknown"
}

// columnTypes rewrites the {{...}} type names of the migrations.
func (f flavor) columnTypes() map[string]string {
	if f == flavorPostgres {
		return map[string]string{"{{time}}": "TIMESTAMPTZ", "{{bytes}}": "BYTEA"}
	}
	// Unix microseconds sort and compare exactly as integers, and SQLite has
	// no time type of its own.
	return map[string]string{"{{time}}": "INTEGER", "{{bytes}}": "BLOB"}
}

// timeArg is how t travels to the database: NULL when zero, otherwise UTC at
// microsecond precision (truncated here so that PostgreSQL does not round).
func (f flavor) timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	if f == flavorSQLite {
		return t.UnixMicro()
	}
	return t
}

func (f flavor) timePtrArg(t *time.Time) any {
	if t == nil {
		return nil
	}
	return f.timeArg(*t)
}

// dbTime scans either flavour's time column; NULL becomes the zero time.
type dbTime struct{ time.Time }

func (d *dbTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		d.Time = time.Time{}
	case time.Time:
		d.Time = v.UTC()
	case int64:
		d.Time = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", v)
	}
	return nil
}

// ptr returns nil for the zero time.
func (d dbTime) ptr() *time.Time {
	if d.IsZero() {
		return nil
	}
	t := d.Time
	return &t
}

// stringList is a []string kept as JSON text.
type stringList []string

func (l *stringList) Scan(v any) error {
	var raw []byte
	switch v := v.(type) {
	case nil:
		*l = nil
		return nil
	case string:
		raw = []byte(v)
	case []byte:
		raw = v
	default:
		return fmt.Errorf("scan string list: unexpected %T", v)
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("scan string list: %w", err)
	}
	if len(out) == 0 {
		out = nil
	}
	*l = out
	return nil
}

// listArg encodes a string list; nil and empty are both stored as [].
func listArg(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		// A []string always marshals.
		panic("sqlstore: marshal string list: " + err.Error())
	}
	return string(b)
}

// nullString stores "" as NULL, for unique columns that are set later.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
