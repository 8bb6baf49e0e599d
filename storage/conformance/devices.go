package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

// testKnownDevices: a browser is new once per user, a user's first browser
// says so, and the list is bounded by dropping the least recently seen.
func testKnownDevices(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	remember := func(user, device string, at time.Time) storage.DeviceSighting {
		t.Helper()
		seen, err := s.RememberDevice(ctx, user, device, at, 3)
		must(t, "remember "+device, err)
		return seen
	}
	if got := remember("u1", "d1", n); got != storage.DeviceFirst {
		t.Fatalf("first sighting of u1's first browser = %v, want DeviceFirst", got)
	}
	if got := remember("u1", "d1", n.Add(time.Minute)); got != storage.DeviceKnown {
		t.Fatalf("second sighting of d1 = %v, want DeviceKnown", got)
	}
	if got := remember("u2", "d1", n); got != storage.DeviceFirst {
		t.Fatalf("d1 for another user = %v, want DeviceFirst", got)
	}
	if got := remember("u1", "d2", n.Add(2*time.Minute)); got != storage.DeviceNew {
		t.Fatalf("u1's second browser = %v, want DeviceNew", got)
	}
	remember("u1", "d3", n.Add(3*time.Minute))
	remember("u1", "d1", n.Add(4*time.Minute)) // d2 is now the least recent
	remember("u1", "d4", n.Add(5*time.Minute)) // pushes d2 out
	if got := remember("u1", "d2", n.Add(6*time.Minute)); got != storage.DeviceNew {
		t.Fatalf("d2 after the list was full = %v, want DeviceNew", got)
	}
	if got := remember("u1", "d1", n.Add(7*time.Minute)); got != storage.DeviceKnown {
		t.Fatalf("recently seen d1 = %v, want DeviceKnown", got)
	}
	if got := remember("u2", "d1", n.Add(time.Hour)); got != storage.DeviceKnown {
		t.Fatalf("u1's list trimmed u2's: d1 = %v", got)
	}
	if _, err := s.RememberDevice(ctx, "nobody", "d1", n, 3); err == nil {
		t.Fatal("remembered a browser of an unknown user")
	}
}

// testKnownDevicesConcurrent: of 40 concurrent first sign-ins on one
// browser (through both replicas) exactly one calls it new, and of a
// user's two first browsers at once one is the first and the other new.
func testKnownDevicesConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	if _, err := a.RememberDevice(ctx, "u1", "d1", n, 3); err != nil {
		t.Fatalf("remember d1: %v", err)
	}
	// sightings runs calls RememberDevice calls for user at once, the
	// i-th on device(i), and counts the answers.
	sightings := func(calls int, user string, device func(i int) string) map[storage.DeviceSighting]int {
		t.Helper()
		seen := make([]storage.DeviceSighting, calls)
		for i, err := range parallel(calls, func(i int) error {
			var err error
			seen[i], err = pick(i, a, b).RememberDevice(ctx, user, device(i), n.Add(time.Hour), 3)
			return err
		}) {
			if err != nil {
				t.Fatalf("concurrent remember %d: %v", i, err)
			}
		}
		count := map[storage.DeviceSighting]int{}
		for _, v := range seen {
			count[v]++
		}
		return count
	}
	got := sightings(40, "u1", func(int) string { return "race" })
	if got[storage.DeviceNew] != 1 || got[storage.DeviceKnown] != 39 {
		t.Fatalf("40 concurrent first sign-ins on one browser: %v, want one new", got)
	}
	// A user's two first browsers at once: one is the first, the other new.
	newUser(t, a, "u3")
	got = sightings(2, "u3", func(i int) string { return fmt.Sprint("b", i) })
	if got[storage.DeviceFirst] != 1 || got[storage.DeviceNew] != 1 {
		t.Fatalf("two first browsers at once: %v, want one first and one new", got)
	}
}
