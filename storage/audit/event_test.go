package audit_test

import (
	"regexp"
	"testing"

	"github.com/comstockloan/idp/storage/audit"
)

// Every event type has a stored name of the form area.what, no two share
// one, and the zero value names none.
func TestEventNames(t *testing.T) {
	name := regexp.MustCompile(`^[a-z]+\.[a-z_]+$`)
	seen := map[string]audit.Event{}
	for _, e := range audit.Events() {
		s := e.String()
		if !name.MatchString(s) {
			t.Errorf("event %d is named %q", int(e), s)
		}
		if prev, ok := seen[s]; ok {
			t.Errorf("events %d and %d are both %q", int(prev), int(e), s)
		}
		seen[s] = e
	}
	if len(seen) != 32 {
		t.Errorf("%d event types, want the 32 the trail is documented with", len(seen))
	}
	if s := audit.Event(0).String(); name.MatchString(s) {
		t.Errorf("the zero Event is named %q", s)
	}
}

func TestKeyNames(t *testing.T) {
	name := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[string]bool{}
	for _, k := range audit.Keys() {
		s := k.String()
		if !name.MatchString(s) || seen[s] {
			t.Errorf("key %d is named %q (seen before: %v)", int(k), s, seen[s])
		}
		seen[s] = true
	}
	if seen["credential_id"] || !seen["credential"] {
		t.Error("a passkey is named by the key credential")
	}
}
