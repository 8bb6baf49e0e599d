package templates

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"
)

func TestEveryPageRendersInEveryLanguage(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range Languages {
		for name := range s.pages[lang] {
			var b bytes.Buffer
			p := &Page{Title: "s1.title", SiteName: "コムストックローン", Error: "err.credentials", PasswordAllowed: true, PasskeysAvailable: true}
			if err := s.Render(&b, lang, name, p); err != nil {
				t.Fatalf("%s/%s: %v", lang, name, err)
			}
			out := b.String()
			if !strings.Contains(out, "COM-STOCK LOAN") || !strings.Contains(out, `lang="`+lang+`"`) {
				t.Errorf("%s/%s lacks brand header or lang attribute", lang, name)
			}
			if strings.Contains(out, "<script>") {
				t.Errorf("%s/%s has an inline script (CSP forbids it)", lang, name)
			}
		}
	}
}

func TestLoginPageUsesManualLabels(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Render(&b, "ja", "login", &Page{Title: "s1.title", PasswordAllowed: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"パスキーでログイン", "当社推奨方式", "パスキー認証について", "または", "ログイン ID :", "ログインパスワード :", "ログイン &gt;"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("S1 lacks %q", want)
		}
	}
}

func TestUnknownLanguageFallsBackToJapanese(t *testing.T) {
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Render(&b, "fr", "help", &Page{Title: "help.title"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "よくあるご質問") {
		t.Error("fallback page is not Japanese")
	}
	if err := s.Render(&b, "ja", "nope", &Page{}); err == nil {
		t.Error("unknown page rendered")
	}
}

func TestStaticHasStylesheet(t *testing.T) {
	if _, err := fs.Stat(Static(), "style.css"); err != nil {
		t.Fatal(err)
	}
}
