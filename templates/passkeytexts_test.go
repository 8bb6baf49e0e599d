package templates

import (
	"bytes"
	"html"
	"regexp"
	"testing"
)

// passkey.js has no texts of its own: every page that shows its errors must
// carry the catalogue's, in the page's language.
func TestEveryPasskeyErrorElementCarriesTheCatalogueTexts(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	element := regexp.MustCompile(`<[^>]*data-passkey-error[^>]*>`)
	for _, lang := range Languages {
		pages := 0
		for name := range s.pages[lang] {
			var b bytes.Buffer
			p := &Page{
				Title: "s1.title", PasskeysAvailable: true, PasskeyScript: true,
				Account: &Account{
					CanAdd: true, NeedStepUp: true, Passkeys: []Passkey{{ID: "Y3JlZA", Name: "p"}}, Target: &Passkey{ID: "Y3JlZA", Name: "p"},
				},
			}
			if err := s.Render(&b, lang, name, p); err != nil {
				t.Fatalf("%s/%s: %v", lang, name, err)
			}
			tag := element.Find(b.Bytes())
			if tag == nil {
				continue
			}
			pages++
			for _, kind := range []string{"cancelled", "already", "unsupported", "failed"} {
				m := regexp.MustCompile(`data-msg-` + kind + `="([^"]*)"`).FindSubmatch(tag)
				if want := Text(lang, "passkey.msg_"+kind); m == nil || html.UnescapeString(string(m[1])) != want {
					t.Errorf("%s/%s: data-msg-%s = %q, want %q", lang, name, kind, m, want)
				}
			}
		}
		// S2, S5, S8 and S8's delete confirmation run ceremonies.
		if pages < 4 {
			t.Errorf("%s: %d pages show passkey errors, want at least 4", lang, pages)
		}
	}
}
