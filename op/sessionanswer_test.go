package op_test

import (
	"crypto/rand"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// sessionAnswerEnv is an env whose /authorize asks answer first, as the
// login pages' SSO rules do in the real server.
func sessionAnswerEnv(t *testing.T, store storage.Store, answer func(e *env, w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool) *env {
	var e *env
	e = newEnvOn(t, store, func(c *op.Config) {
		c.SessionAnswer = func(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
			return answer(e, w, r, ar)
		}
	})
	return e
}

// liveSession stores an SSO session of the seeded user, with a SID.
func (e *env) liveSession(r *http.Request) *storage.Session {
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	se := &storage.Session{ID: storage.HashSecret(rand.Text()), UserID: e.user.ID, AuthTime: at, AMR: []string{"pwd"}, ACR: testACR,
		CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(time.Hour)}
	if err := e.store.CreateSession(r.Context(), se); err != nil {
		e.t.Fatalf("create session: %v", err)
	}
	return se
}

// A request answered from the session at /authorize is stored completed,
// in one write, and its code works; one the session cannot answer is
// stored pending and goes to the login page, bound to the browser.
func TestSessionAnswerAtAuthorize(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		var sessionEnded bool
		e := sessionAnswerEnv(t, storagetest.New(t, flavor), func(e *env, w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
			var se *storage.Session
			switch r.URL.Query().Get("nonce") {
			case "decline":
				return false
			case "no-sid":
				se = unsavedSession(e.user.ID, time.Now().Add(-time.Minute).Truncate(time.Second), "pwd")
			case "ended":
				se = e.liveSession(r)
				if err := e.store.DeleteSession(r.Context(), se.ID); err != nil {
					t.Fatal(err)
				}
			default:
				se = e.liveSession(r)
			}
			next, err := e.p.Complete(w, r, ar.ID, se)
			if err != nil {
				sessionEnded = errors.Is(err, storage.ErrNotFound)
				http.Error(w, err.Error(), http.StatusConflict)
				return true
			}
			http.Redirect(w, r, next, http.StatusSeeOther)
			return true
		})
		for _, nonce := range []string{"answer", "no-sid"} {
			pk := newPKCE()
			params := authParams(webClientID, webRedirect, "openid", pk)
			params.Set("nonce", nonce)
			res := e.get(e.authorizeURL(params))
			res.Body.Close()
			loc, err := res.Location()
			if res.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), webRedirect+"?") {
				t.Fatalf("%s: %d %v, want 303 to the client", nonce, res.StatusCode, loc)
			}
			if q := loc.Query(); q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer || q.Get("code") == "" {
				t.Fatalf("%s: authorization response %s", nonce, loc)
			}
			ar, _, err := e.store.AuthRequestByCode(t.Context(), storage.HashSecret(loc.Query().Get("code")))
			if err != nil || !ar.Done || ar.UserID != e.user.ID || (nonce == "answer") != (ar.SessionID != "") {
				t.Fatalf("%s: stored request %+v, %v", nonce, ar, err)
			}
			if tr := e.exchange(loc.Query().Get("code"), webRedirect, pk); tr.status != http.StatusOK || tr.IDToken == "" {
				t.Fatalf("%s: exchange: %d %q", nonce, tr.status, tr.Error)
			}
		}

		// Declined: stored pending, and the login page takes it on.
		pk := newPKCE()
		params := authParams(webClientID, webRedirect, "openid", pk)
		params.Set("nonce", "decline")
		res := e.get(e.authorizeURL(params))
		res.Body.Close()
		login, err := res.Location()
		if res.StatusCode != http.StatusFound || err != nil || login.Path != "/login" {
			t.Fatalf("declined: %d %v, want 302 to the login page", res.StatusCode, login)
		}
		id := login.Query().Get("authRequestID")
		if ar, err := e.store.AuthRequestByID(t.Context(), id); err != nil || ar.Done {
			t.Fatalf("declined request: %+v %v, want stored pending", ar, err)
		}
		if !e.p.BrowserBound(requestWithCookies(e, login.RequestURI()), id) {
			t.Fatal("declined request: the browser is not bound to it")
		}
		res = e.get(login.String())
		res.Body.Close()
		next, _ := res.Location()
		if tr := e.exchange(next.Query().Get("code"), webRedirect, pk); tr.status != http.StatusOK {
			t.Fatalf("declined request signed in at the login page: exchange %d %q", tr.status, tr.Error)
		}

		// The session ended before the answer: nothing is stored.
		params = authParams(webClientID, webRedirect, "openid", newPKCE())
		params.Set("nonce", "ended")
		res = e.get(e.authorizeURL(params))
		res.Body.Close()
		if res.StatusCode != http.StatusConflict || !sessionEnded {
			t.Fatalf("ended session: %d (ErrNotFound %v), want the completion refused", res.StatusCode, sessionEnded)
		}
	})
}

// A database gone when the declined request is stored: the client hears
// server_error at its redirect URI, with state and iss, as from zitadel.
func TestSessionAnswerDeclinedDuringAnOutage(t *testing.T) {
	dsn, proxy := storagetest.PostgresBehindProxy(t)
	e := sessionAnswerEnv(t, storagetest.Open(t, dsn), func(*env, http.ResponseWriter, *http.Request, *storage.AuthRequest) bool {
		proxy.Cut()
		return false
	})
	params := authParams(webClientID, webRedirect, "openid", newPKCE())
	res := e.get(e.authorizeURL(params))
	res.Body.Close()
	proxy.Resume()
	loc, err := res.Location()
	if res.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), webRedirect+"?") {
		t.Fatalf("authorize while the database is away: %d %v, want the error at the client", res.StatusCode, loc)
	}
	if q := loc.Query(); q.Get("error") != "server_error" || q.Get("state") != params.Get("state") || q.Get("iss") != e.issuer {
		t.Fatalf("error response %s", loc)
	}
}

// requestWithCookies is a request to path carrying e's browser cookies.
func requestWithCookies(e *env, path string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, e.issuer+path, nil)
	for _, c := range e.client.Jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	return r
}
