package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the repository, seen from this package's directory.
const repoRoot = "../.."

// markdownLink is a Markdown link's target, without its #fragment.
var markdownLink = regexp.MustCompile(`\]\(([^)#\s]*)(#[^)\s]*)?\)`)

// TestDocsStandAlone: a clone is all a reader has. The README, docs/ and
// every comment link only inside the repository — no product spec or
// manual beside it — and every relative link in the Markdown resolves to a
// file of the repository.
func TestDocsStandAlone(t *testing.T) {
	outside := []string{"../shared", "SPEC.md", "passkey-login-manual"}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", ".idp-dev":
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(path)
		if ext != ".go" && ext != ".md" && ext != ".html" && ext != ".yaml" && ext != ".js" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text, rel := string(b), strings.TrimPrefix(path, root+string(filepath.Separator))
		checked++
		for _, s := range outside {
			if strings.Contains(text, s) && rel != "cmd/idp/docs_test.go" {
				t.Errorf("%s mentions %q, which is not in the repository", rel, s)
			}
		}
		if ext != ".md" {
			return nil
		}
		for _, m := range markdownLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			resolved := filepath.Clean(filepath.Join(filepath.Dir(path), target))
			if !strings.HasPrefix(resolved, root+string(filepath.Separator)) {
				t.Errorf("%s links %q, outside the repository", rel, target)
				continue
			}
			if _, err := os.Stat(resolved); err != nil {
				t.Errorf("%s links %q, which does not exist", rel, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("only %d files checked: the walk did not find the repository", checked)
	}
}
