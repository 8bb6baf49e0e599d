package audit

import (
	"strings"
	"testing"
	"unicode"

	"github.com/comstockloan/idp/storage"
)

// A client-chosen header always ends storable and free of control
// characters, whatever it was.
func TestAuditableTextEndsStorable(t *testing.T) {
	for _, s := range []string{
		"Mozilla/5.0", "ｌｏａｎ", "tab\there", "nel\u0085", "nul\x00", "bad\xff", "level=ERROR\nforged",
		strings.Repeat("あ", 400),
	} {
		got := auditableText(s, 512)
		if !storage.StorableText(got, 512) || strings.ContainsFunc(got, unicode.IsControl) {
			t.Errorf("auditableText(%.20q) = %.20q: not storable, or keeps a control character", s, got)
		}
	}
}
