package storage

import (
	"strings"
	"unicode/utf8"
)

// StorableText reports whether s is text both engines store and look up as
// given, in at most maxBytes: valid UTF-8 without NUL. PostgreSQL refuses
// the other two with an error, even in a WHERE clause, where SQLite stores
// or compares them, so unchecked client input is a 500 on one engine and a
// miss on the other. Callers check client input with it before it reaches
// the store and treat what fails as unknown (or refuse it as bad input);
// rules of their own, such as the login pages' refusal of control
// characters, come on top of it.
func StorableText(s string, maxBytes int) bool {
	return len(s) <= maxBytes && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// RepairText is s made StorableText for text worth keeping even when a
// client made it unstorable (the audit trail's User-Agent): each run of
// invalid UTF-8 and each NUL becomes U+FFFD, and the result is cut to at
// most maxBytes on a character boundary.
func RepairText(s string, maxBytes int) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	if len(s) <= maxBytes {
		return s
	}
	n := max(maxBytes, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
