package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// A signed-in browser's new authorization request is answered at
// /authorize itself, with the code, under the login page's SSO rules;
// whatever needs a login still goes to S1, with the request's binding
// cookie.
func TestAuthorizeAnswersFromTheSSOSessionAtOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		cu := newCustomer(t, st, c, "returning")
		cu.passwordLogin()

		pk := newPKCE()
		p := cu.get(authorizeURL(st, pk, ""))
		loc, err := url.Parse(p.header.Get("Location"))
		if p.status != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), bankRedirect+"?") {
			t.Fatalf("authorize with an SSO session: %d %q, want 303 to the bank", p.status, p.header.Get("Location"))
		}
		if q := loc.Query(); q.Get("code") == "" || q.Get("state") != "st" || q.Get("iss") != st.IdPURL {
			t.Fatalf("authorization response %s: want code, state and iss", loc)
		}
		for _, ck := range p.header.Values("Set-Cookie") {
			if strings.HasPrefix(ck, "idp_ar_") && !strings.Contains(ck, "Max-Age=0") {
				t.Errorf("a binding cookie for a request already answered: %s", ck)
			}
		}
		if ts := cu.exchange(loc.String(), pk); ts.IDToken == "" {
			t.Fatal("no ID token for the code answered at /authorize")
		}

		// What the session cannot answer goes to S1, bound to this browser.
		maxAge := authorizeURL(st, newPKCE(), "") + "&max_age=0"
		fresh := &customer{t: t, st: st, browser: newBrowser(t)}
		for name, tc := range map[string]struct {
			who *customer
			url string
		}{
			"prompt=login":      {cu, authorizeURL(st, newPKCE(), "login")},
			"max_age=0":         {cu, maxAge},
			"no session":        {fresh, authorizeURL(st, newPKCE(), "")},
			"prompt=none, none": {fresh, authorizeURL(st, newPKCE(), "none")},
		} {
			p := tc.who.get(tc.url)
			if p.status != http.StatusFound || !strings.HasPrefix(p.header.Get("Location"), "/login?authRequestID=") {
				t.Errorf("%s: %d %q, want 302 to S1", name, p.status, p.header.Get("Location"))
				continue
			}
			bound := false
			for _, ck := range p.header.Values("Set-Cookie") {
				bound = bound || strings.HasPrefix(ck, "idp_ar_") && !strings.Contains(ck, "Max-Age=0")
			}
			if !bound {
				t.Errorf("%s: S1's redirect sets no binding cookie", name)
			}
		}
		if status, final, _ := fresh.follow(authorizeURL(st, newPKCE(), "none")); status != http.StatusFound || !strings.Contains(final, "error=login_required") {
			t.Errorf("prompt=none without a session: %d %s, want login_required", status, final)
		}

		// 40 requests at once from the signed-in browser: 40 codes, each
		// exchanged once.
		const n = 40
		codes := make([]string, n)
		pks := make([]pkce, n)
		var wg sync.WaitGroup
		for i := range n {
			pks[i] = newPKCE()
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := cu.get(authorizeURL(st, pks[i], ""))
				if u, err := url.Parse(p.header.Get("Location")); err == nil && p.status == http.StatusSeeOther {
					codes[i] = u.Query().Get("code")
				}
			}()
		}
		wg.Wait()
		seen := map[string]bool{}
		for i, code := range codes {
			if code == "" || seen[code] {
				t.Fatalf("concurrent authorize %d: code %q (seen before: %v)", i, code, seen[code])
			}
			seen[code] = true
			form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {bankRedirect}, "code_verifier": {pks[i].verifier}}
			if ts := cu.token(form); ts.status != http.StatusOK {
				t.Fatalf("exchange %d: %+v", i, ts)
			}
			if ts := cu.token(form); ts.status != http.StatusBadRequest || ts.Error != "invalid_grant" {
				t.Fatalf("second exchange %d: %+v, want invalid_grant", i, ts)
			}
		}
	})
}

// getHalfClosed sends GET u with the browser's cookies over a raw
// connection and half-closes it at once (the client hangs up, so the
// server's request context ends mid-answer); it returns the status of
// whatever answer still comes, 0 for none.
func (cu *customer) getHalfClosed(u string) int {
	cu.t.Helper()
	target, err := url.Parse(u)
	if err != nil {
		cu.t.Fatal(err)
	}
	var cookies []string
	for _, c := range cu.browser.Jar.Cookies(target) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	conn, err := net.Dial("tcp", target.Host)
	if err != nil {
		cu.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nConnection: close\r\n\r\n",
		target.RequestURI(), target.Host, strings.Join(cookies, "; "))
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		cu.t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// 40 signed-in requests to /authorize whose browser hangs up at once: no
// answer is a server error, and the session answers the next request as
// before, with a code that works.
func TestAuthorizeFromTheSessionSurvivesHangUps(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st, c := stackWithCLI(t, flavor)
		cu := newCustomer(t, st, c, "hangup")
		cu.passwordLogin()
		statuses := make([]int, 40)
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = cu.getHalfClosed(authorizeURL(st, newPKCE(), ""))
			}()
		}
		wg.Wait()
		seen := map[int]int{}
		for i, status := range statuses {
			if status >= 500 {
				t.Fatalf("hung-up authorize %d answered %d", i, status)
			}
			seen[status]++
		}
		t.Logf("answers to the hung-up requests, by status (0: none): %v", seen)
		pk := newPKCE()
		p := cu.get(authorizeURL(st, pk, ""))
		if p.status != http.StatusSeeOther || !strings.HasPrefix(p.header.Get("Location"), bankRedirect+"?") {
			t.Fatalf("authorize after the hang-ups: %d %q, want 303 to the bank", p.status, p.header.Get("Location"))
		}
		if ts := cu.exchange(p.header.Get("Location"), pk); ts.IDToken == "" {
			t.Fatal("no ID token after the hang-ups")
		}
	})
}
