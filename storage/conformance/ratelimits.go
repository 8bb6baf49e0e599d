package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func testRateEvents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	for _, d := range []time.Duration{-30 * time.Minute, -5 * time.Minute, -time.Minute, 0} {
		must(t, "record", s.RecordRateEvent(ctx, "otp_send", "u1", n.Add(d)))
	}
	// Same key under another kind, and another key of the same kind, are
	// counted apart.
	must(t, "record other kind", s.RecordRateEvent(ctx, "login_failure", "u1", n))
	must(t, "record other key", s.RecordRateEvent(ctx, "otp_send", "u2", n))
	must(t, "record ip key", s.RecordRateEvent(ctx, "login_failure", "192.0.2.1", n))
	for _, tc := range []struct {
		kind, key string
		since     time.Duration
		want      int
	}{
		{"otp_send", "u1", -time.Hour, 4},
		{"otp_send", "u1", -10 * time.Minute, 3},
		// since is inclusive, to the microsecond.
		{"otp_send", "u1", -time.Minute, 2},
		{"otp_send", "u1", -time.Minute + time.Microsecond, 1},
		{"otp_send", "u1", 0, 1},
		{"otp_send", "u1", time.Microsecond, 0},
		{"login_failure", "u1", -time.Hour, 1},
		{"otp_send", "u2", -time.Hour, 1},
		{"login_failure", "192.0.2.1", -time.Hour, 1},
		{"login_failure", "192.0.2.2", -time.Hour, 0},
		{"unknown_kind", "u1", -time.Hour, 0},
	} {
		got, err := s.CountRateEvents(ctx, tc.kind, tc.key, n.Add(tc.since))
		must(t, "count", err)
		if got != tc.want {
			t.Errorf("count %s/%s since %v: %d, want %d", tc.kind, tc.key, tc.since, got, tc.want)
		}
	}
	// A rate event without kind or key would count against nobody.
	for _, bad := range [][2]string{{"", "u1"}, {"otp_send", ""}} {
		if err := s.RecordRateEvent(ctx, bad[0], bad[1], n); err == nil {
			t.Errorf("RecordRateEvent(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

// Concurrent events of one key are all counted: none is lost to a race, so
// a burst cannot slip past a limit.
func testRateEventsConcurrent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	const writers = 20
	for i, err := range parallel(writers, func(i int) error {
		return s.RecordRateEvent(ctx, "login_failure", "login-taro", n.Add(time.Duration(i)*time.Microsecond))
	}) {
		must(t, fmt.Sprintf("record %d", i), err)
	}
	got, err := s.CountRateEvents(ctx, "login_failure", "login-taro", n)
	must(t, "count", err)
	if got != writers {
		t.Fatalf("counted %d of %d concurrent events", got, writers)
	}
}

func testRateReservations(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	since := n.Add(-15 * time.Minute)
	must(t, "old event", s.RecordRateEvent(ctx, "login_failure", "login:taro", n.Add(-time.Hour)))
	must(t, "recorded event", s.RecordRateEvent(ctx, "login_failure", "login:taro", n.Add(-time.Minute)))
	var ids []string
	for i := range 2 {
		id, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3)
		must(t, fmt.Sprintf("reserve %d", i), err)
		if !ok || id == "" {
			t.Fatalf("reserve %d under the limit: ok %v, id %q", i, ok, id)
		}
		ids = append(ids, id)
	}
	// The recorded event and two reservations fill the limit of 3; the
	// event older than since does not count.
	if id, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3); err != nil || ok || id != "" {
		t.Fatalf("reserve over the limit: id %q, ok %v, err %v; want refused", id, ok, err)
	}
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 3 {
		t.Fatalf("count after a refused reservation: %d, %v; want 3 (nothing written)", c, err)
	}
	// Other keys and kinds have their own limits.
	if _, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:hanako", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve for another key: ok %v, err %v", ok, err)
	}
	if _, ok, err := s.ReserveRateEvent(ctx, "client_failure", "login:taro", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve for another kind: ok %v, err %v", ok, err)
	}
	must(t, "release", s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ids[0]))
	must(t, "release twice", s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ids[0]))
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 2 {
		t.Fatalf("count after release: %d, %v; want 2", c, err)
	}
	// A release names its own row: another key's id releases nothing.
	must(t, "release under another key", s.ReleaseRateEvent(ctx, "login_failure", "login:hanako", ids[1]))
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 2 {
		t.Fatalf("count after a mismatched release: %d, %v; want 2", c, err)
	}
	if _, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve after release: ok %v, err %v", ok, err)
	}
	for _, bad := range []struct {
		kind, key string
		limit     int
	}{{"", "k", 1}, {"login_failure", "", 1}, {"login_failure", "k", 0}} {
		if _, ok, err := s.ReserveRateEvent(ctx, bad.kind, bad.key, n, since, bad.limit); err == nil || ok {
			t.Errorf("ReserveRateEvent(%q, %q, limit %d): ok %v, err %v; want an error", bad.kind, bad.key, bad.limit, ok, err)
		}
	}
	if err := s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ""); err == nil {
		t.Error("ReleaseRateEvent with an empty id succeeded")
	}
}

// 40 concurrent reservations against a limit of 10, split over two stores
// (replicas) on one database: exactly 10 are granted. This is the race a
// count followed by an insert loses.
func testRateReservationsConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	const callers, limit = 40, 10
	granted := make([]bool, callers)
	for i, err := range parallel(callers, func(i int) error {
		s := a
		if i%2 == 1 {
			s = b
		}
		_, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, n.Add(-time.Minute), limit)
		granted[i] = ok
		return err
	}) {
		must(t, fmt.Sprintf("reserve %d", i), err)
	}
	got := 0
	for _, ok := range granted {
		if ok {
			got++
		}
	}
	if got != limit {
		t.Fatalf("%d of %d concurrent reservations granted, want exactly %d", got, callers, limit)
	}
	if c, err := a.CountRateEvents(ctx, "login_failure", "login:taro", n.Add(-time.Minute)); err != nil || c != limit {
		t.Fatalf("stored events: %d, %v; want %d", c, err, limit)
	}
}
