package login

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// storableText reports whether client input s may reach the store as text:
// at most maxBytes, valid UTF-8, no control characters. PostgreSQL refuses
// NUL and invalid UTF-8 with an error, so unchecked input would turn a
// customer's typo (or a probe) into a 500 on PostgreSQL and not on SQLite.
func storableText(s string, maxBytes int) bool {
	return len(s) <= maxBytes && utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}
