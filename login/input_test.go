package login

import (
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage"
)

// storableText is the store's rule with the login pages' refusal of
// control characters on top (the audit recorder repairs to the same rule:
// storage/audit).
func TestStorableTextLayersControlsOnTheStoreRule(t *testing.T) {
	for _, tc := range []struct {
		s     string
		login bool // storableText
		store bool // storage.StorableText
	}{
		{"loan0100", true, true},
		{"ｌｏａｎ０１００", true, true},
		{"loan\t0100", false, true},
		{"loan\u00850100", false, true}, // NEL, a C1 control
		{"loan\x000100", false, false},
		{"loan\xff", false, false},
		{strings.Repeat("a", maxLoginIDLength+1), false, false},
	} {
		if got := storableText(tc.s, maxLoginIDLength); got != tc.login {
			t.Errorf("storableText(%.20q) = %v, want %v", tc.s, got, tc.login)
		}
		if got := storage.StorableText(tc.s, maxLoginIDLength); got != tc.store {
			t.Errorf("storage.StorableText(%.20q) = %v, want %v", tc.s, got, tc.store)
		}
	}
}
