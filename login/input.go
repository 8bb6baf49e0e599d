package login

import (
	"strings"
	"unicode"

	"github.com/comstockloan/idp/storage"
)

// storableText reports whether client input s may reach the store as text:
// storage.StorableText (at most maxBytes, what PostgreSQL can hold) and,
// the login pages' own rule on top, no control characters. A login ID or
// auth request ID with one is never one we issued, and refusing it here
// keeps a tab or newline out of the logs and the audit trail.
func storableText(s string, maxBytes int) bool {
	return storage.StorableText(s, maxBytes) && !strings.ContainsFunc(s, unicode.IsControl)
}
