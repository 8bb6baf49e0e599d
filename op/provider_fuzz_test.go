package op_test

import (
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/storagetest"
)

// fuzzReturnOrigins are the origins of the clients FuzzAllowedReturnURL
// registers, written out by hand (not computed by the code under test).
var fuzzReturnOrigins = []string{
	"https://rp.example", "https://kashidashi.example", "http://localhost:3000",
	"https://[::1]:8443", "https://www.example.co.jp",
}

// FuzzAllowedReturnURL checks the return link of the passkey settings page
// against an independent reading of the URL, the way a browser splits it:
// whatever is accepted is an absolute http(s) URL with no user info, no
// character a browser reads differently from Go (backslash, whitespace,
// controls), never scheme-relative or javascript:, and its origin is one
// a client registered.
func FuzzAllowedReturnURL(f *testing.F) {
	cfg := testConfig("https://id.example")
	cfg.Clients = []op.ClientConfig{
		{ID: "web", Public: true, RedirectURIs: []string{"https://rp.example/cb", "https://KASHIDASHI.example:443/cb"},
			PostLogoutRedirectURIs: []string{"https://www.example.co.jp/bye"}},
		{ID: "spa", Public: true, RedirectURIs: []string{"http://localhost:3000/cb", "https://[::1]:8443/cb"}},
	}
	p, err := op.New(cfg, storagetest.New(f, "sqlite"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatalf("op.New: %v", err)
	}
	for _, o := range fuzzReturnOrigins {
		if !p.AllowedReturnURL(o + "/mypage") {
			f.Fatalf("a registered origin is refused: %s", o)
		}
	}
	f.Add("https://rp.example/mypage?tab=1#top")
	f.Fuzz(func(t *testing.T, raw string) {
		if !p.AllowedReturnURL(raw) {
			return
		}
		lower := strings.ToLower(raw)
		switch {
		case strings.ContainsFunc(raw, func(r rune) bool { return r == '\\' || r <= ' ' || r == 0x7f }):
			t.Fatalf("accepted %q: a browser does not read it the way Go does", raw)
		case strings.HasPrefix(raw, "//") || strings.HasPrefix(raw, "/"):
			t.Fatalf("accepted a relative URL %q", raw)
		case strings.HasPrefix(lower, "javascript:") || strings.HasPrefix(lower, "data:"):
			t.Fatalf("accepted a script URL %q", raw)
		}
		scheme, rest, ok := strings.Cut(lower, "://")
		if !ok || (scheme != "https" && scheme != "http") {
			t.Fatalf("accepted %q: not an absolute http(s) URL", raw)
		}
		authority := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			authority = rest[:i]
		}
		if strings.Contains(authority, "@") {
			t.Fatalf("accepted %q with user info", raw)
		}
		// Browsers percent-decode the host too.
		host, err := url.PathUnescape(authority)
		if err != nil {
			t.Fatalf("accepted %q with a broken escape in the host", raw)
		}
		// An empty port ("https://rp.example:/") is the default one.
		host = strings.TrimSuffix(strings.ToLower(host), ":")
		if scheme == "https" {
			host = strings.TrimSuffix(host, ":443")
		} else {
			host = strings.TrimSuffix(host, ":80")
		}
		if origin := scheme + "://" + host; !slices.Contains(fuzzReturnOrigins, origin) {
			t.Fatalf("accepted %q of origin %q, which no client registered", raw, origin)
		}
	})
}
