package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

// testKnownDevices: a browser is new once per user, the list is bounded
// by dropping the least recently seen, and concurrent first sign-ins on one
// browser call it new once.
func testKnownDevices(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	remember := func(user, device string, at time.Time) bool {
		t.Helper()
		isNew, err := s.RememberDevice(ctx, user, device, at, 3)
		must(t, "remember "+device, err)
		return isNew
	}
	if !remember("u1", "d1", n) {
		t.Fatal("first sighting of d1 not new")
	}
	if remember("u1", "d1", n.Add(time.Minute)) {
		t.Fatal("second sighting of d1 new")
	}
	if !remember("u2", "d1", n) {
		t.Fatal("d1 for another user not new")
	}
	remember("u1", "d2", n.Add(2*time.Minute))
	remember("u1", "d3", n.Add(3*time.Minute))
	remember("u1", "d1", n.Add(4*time.Minute)) // d2 is now the least recent
	remember("u1", "d4", n.Add(5*time.Minute)) // pushes d2 out
	if !remember("u1", "d2", n.Add(6*time.Minute)) {
		t.Fatal("d2 still known after the list was full")
	}
	if remember("u1", "d1", n.Add(7*time.Minute)) {
		t.Fatal("recently seen d1 was dropped")
	}
	if remember("u2", "d1", n.Add(time.Hour)) {
		t.Fatal("u1's list trimmed u2's")
	}

	fresh := 0
	for i, err := range parallel(40, func(i int) error {
		isNew, err := s.RememberDevice(ctx, "u1", "race", n.Add(time.Hour), 3)
		if isNew {
			return nil
		}
		if err == nil {
			return fmt.Errorf("known")
		}
		return err
	}) {
		switch {
		case err == nil:
			fresh++
		case err.Error() != "known":
			t.Fatalf("concurrent remember %d: %v", i, err)
		}
	}
	if fresh != 1 {
		t.Fatalf("%d of 40 concurrent first sign-ins were new, want 1", fresh)
	}
}
