package audit_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/audit"
)

// docs/rules.md's table of event types lists exactly those the code
// writes, and names every detail key.
func TestDocsListEveryEvent(t *testing.T) {
	raw, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "Event types written")
	if !ok {
		t.Fatal(`docs/rules.md has no "Event types written" table`)
	}
	table, _, _ = strings.Cut(table, "\n\nTests:")
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z]+\\.[a-z_]+)` \\|").FindAllStringSubmatch(table, -1) {
		documented = append(documented, m[1])
	}
	var written []string
	for _, e := range audit.Events() {
		written = append(written, e.String())
	}
	slices.Sort(documented)
	slices.Sort(written)
	if !slices.Equal(documented, written) {
		t.Errorf("docs/rules.md lists\n %v\nthe code writes\n %v", documented, written)
	}
	for _, k := range audit.Keys() {
		if !strings.Contains(table, "`"+k.String()+"`") {
			t.Errorf("docs/rules.md does not name the detail key %s", k)
		}
	}
}
