package server

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

type answer struct {
	status int
	header http.Header
	body   string
}

func fetch(t *testing.T, rawURL, acceptLanguage string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

// The /authorize refusals that must not go back to a client and unknown
// paths are the login pages' error page, in the customer's language, with
// the centre's contact and the way back to the website: no more zitadel's
// "unable to retrieve client by id" or Go's "404 page not found".
func TestAuthorizeRefusalsAndUnknownPathsAreOurErrorPage(t *testing.T) {
	_, srv, _ := openTestServer(t, storagetest.DSN(t, "sqlite"))
	authorize := func(mod func(url.Values)) string {
		q := url.Values{"client_id": {testClientID}, "redirect_uri": {testRedirect}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"st-1"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
		mod(q)
		return srv.URL + "/authorize?" + q.Encode()
	}
	cases := []struct {
		name, url string
		status    int
		ja, en    string
	}{
		{"unknown client", authorize(func(q url.Values) { q.Set("client_id", "nobody") }), 400,
			"ログインの要求に誤りがあるため", "The sign-in request is not valid"},
		{"unregistered redirect_uri", authorize(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }), 400,
			"ログインの要求に誤りがあるため", "The sign-in request is not valid"},
		{"unregistered redirect_uri, response_type=token", authorize(func(q url.Values) {
			q.Set("redirect_uri", "https://evil.example/cb")
			q.Set("response_type", "token")
		}), 400, "ログインの要求に誤りがあるため", "The sign-in request is not valid"},
		{"missing parameters", srv.URL + "/authorize", 400, "ログインの要求に誤りがあるため", "The sign-in request is not valid"},
		{"callback of an unknown request", srv.URL + "/authorize/callback?id=nope", 400,
			"ログイン要求が見つからないか", "The sign-in request was not found"},
		{"unknown path", srv.URL + "/no/such/page", 404, "お探しのページは見つかりませんでした。", "The page you are looking for was not found."},
	}
	for _, c := range cases {
		for _, lang := range []struct{ accept, tag, text, title, home string }{
			{"", `<html lang="ja">`, c.ja, "<title>エラー | ", "コムストックローンWEBサイトへ戻る"},
			{"en-US,en;q=0.9", `<html lang="en">`, c.en, "<title>Error | ", "Back to the COM-STOCK LOAN website"},
		} {
			a := fetch(t, c.url, lang.accept)
			if a.status != c.status || a.header.Get("Location") != "" || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
				t.Errorf("%s (%q): %d %s Location=%q, want %d, our page, no redirect", c.name, lang.accept, a.status,
					a.header.Get("Content-Type"), a.header.Get("Location"), c.status)
				continue
			}
			for _, want := range []string{lang.tag, lang.title, `<main>`, `<h1>`, lang.text, `href="tel:`, `id="error-home" href="http://localhost:3000/"`, lang.home} {
				if !strings.Contains(a.body, want) {
					t.Errorf("%s (%q): page lacks %q:\n%s", c.name, lang.accept, want, a.body)
				}
			}
			for _, leak := range []string{"unable to retrieve client", "redirect_uri is missing", "404 page not found", "is missing in"} {
				if strings.Contains(a.body, leak) {
					t.Errorf("%s: page shows the library's %q", c.name, leak)
				}
			}
		}
	}
	// A registered pair gets the error back at its redirect_uri, with
	// state and iss (RFC 6749 section 4.1.2.1, RFC 9207).
	a := fetch(t, authorize(func(q url.Values) { q.Set("response_type", "token") }), "")
	loc, err := url.Parse(a.header.Get("Location"))
	if a.status != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), testRedirect+"?") ||
		loc.Query().Get("error") != "unsupported_response_type" || loc.Query().Get("state") != "st-1" || loc.Query().Get("iss") != "http://localhost:8080" {
		t.Errorf("response_type=token: %d Location %q, want a 302 to %s with error, state and iss", a.status, a.header.Get("Location"), testRedirect)
	}
}
