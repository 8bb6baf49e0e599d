package faults

import (
	"slices"
	"testing"
)

// The run's summary reads serve's JSON logs: a record of level ERROR
// counts whatever its text, an INFO record that mentions an error does
// not, a line that is not JSON (a panic) is shown rather than lost, and
// the test's own start markers are no errors.
func TestErrorLogSummaryReadsJSONRecords(t *testing.T) {
	log := []byte(`=== faults test: start r0 at 2026-12-01T10:00:00Z
{"time":"2026-12-01T10:00:00Z","level":"INFO","msg":"identity provider serving","listen":"127.0.0.1:1"}
{"time":"2026-12-01T10:00:01Z","level":"ERROR","msg":"token: load auth request by code","err":"pq: the database system is shutting down","request_id":"a"}
{"time":"2026-12-01T10:00:02Z","level":"ERROR","msg":"token: load auth request by code","err":"pq: the database system is shutting down","request_id":"b"}
{"time":"2026-12-01T10:00:03Z","level":"INFO","msg":"audit","detail":{"note":"level=ERROR"}}
{"time":"2026-12-01T10:00:04Z","level":"ERROR","msg":"sweep expired rows"}
panic: runtime error: index out of range

`)
	n, kinds := errorLogSummary(log, 8)
	if n != 4 {
		t.Errorf("counted %d error lines, want 4 (three ERROR records and the panic)", n)
	}
	want := []string{
		"token: load auth request by code: pq: the database system is shutting down",
		"sweep expired rows",
		"not a JSON record: panic: runtime error: index out of range",
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("summary %q, want %q", kinds, want)
	}
	if n, kinds := errorLogSummary(log, 1); n != 4 || len(kinds) != 1 {
		t.Errorf("with max 1: %d lines, %d kinds; want 4 lines, 1 kind", n, len(kinds))
	}
}
