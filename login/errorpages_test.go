package login

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

const testHome = "https://rp.example/"

// unboundOP is the OP seen from a browser that did not start the request.
type unboundOP struct{ testOP }

func (unboundOP) BrowserBound(*http.Request, string) bool { return false }

func withHome(c *Config) { c.HomeURL = testHome }

// expectWayBack fails unless r is the error page with text and the link to
// the website.
func (e *env) expectWayBack(r resp, status int, text string) {
	e.t.Helper()
	e.expect(r, status, text, `id="error-home" href="`+testHome+`"`, "コムストックローンWEBサイトへ戻る", `href="tel:`)
}

// Every dead end of a login offers the way back: the website's home_url
// on every error page, S1 again where the auth request is still live.
func TestErrorPagesOfferTheWayBack(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, withHome)
		u := e.createUser("sora", "s3cret-pass")

		// A login step with no flow at all (expired, or never begun).
		e.expectWayBack(e.get("/login/password"), http.StatusBadRequest, "操作の有効期限が切れました")

		// Cookies lost at S4: the same browser without its flow cookie.
		e.startF1(u, "s3cret-pass")
		lost := e.browser()
		e.expectWayBack(lost.get("/login/otp"), http.StatusBadRequest, "操作の有効期限が切れました")

		// A POST of a step the flow has left: S1 of the live request too.
		r := e.post("/login/password", url.Values{"password": {"s3cret-pass"}})
		e.expectRedirect(r, "/login/otp")
		ar := e.currentFlowAuthRequest()
		r = e.submit("/login/password/change", url.Values{"current": {"x"}, "new": {"y"}, "confirm": {"y"}})
		e.expectWayBack(r, http.StatusConflict, "操作の有効期限が切れました")
		e.expect(r, http.StatusConflict, `href="/login?authRequestID=`+ar+`"`, "ログイン画面に戻る")

		// An expired login request, and an unknown one.
		expired := e.authRequest(func(a *storage.AuthRequest) { a.ExpiresAt = time.Now().Add(-time.Minute) })
		e.expectWayBack(lost.get("/login?authRequestID="+expired), http.StatusBadRequest, "ログイン要求が見つからないか")
		e.expectWayBack(lost.get("/login?authRequestID=nope"), http.StatusBadRequest, "ログイン要求が見つからないか")

		// A used login link, opened again without a session.
		used := e.authRequest(nil)
		if _, err := e.store.CompleteAuthRequest(context.Background(), used, storage.Completion{
			UserID: u.ID, AuthTime: time.Now(), AMR: []string{"pwd"}, ACR: "acr"}); err != nil {
			t.Fatal(err)
		}
		e.expectWayBack(lost.get("/login?authRequestID="+used), http.StatusBadRequest, "ログイン要求が見つからないか")

		// A live login link opened in another browser: said so, not "expired".
		e.h.op = unboundOP{testOP{e.store}}
		e.expectWayBack(lost.get("/login?authRequestID="+e.authRequest(nil)), http.StatusBadRequest, "別のブラウザで開始されたため")
		e.expectWayBack(lost.get("/login?authRequestID="+expired), http.StatusBadRequest, "ログイン要求が見つからないか")

		// In English too.
		e.expect(lost.get("/login/password?lang=en"), http.StatusBadRequest, `id="error-home" href="`+testHome+`"`, "Back to the COM-STOCK LOAN website")
	})
}

// Back after a sign-in went through reaches pages of a finished login: a
// customer who is signed in is told so, with the way to the website, not
// 「操作の有効期限が切れました」; without a session the expired page stays.
func TestBackAfterSignInSaysSignedIn(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, withHome)
		u := e.createUser("nagi", "s3cret-pass")
		code := e.startF1(u, "s3cret-pass")
		ar := e.currentFlowAuthRequest()
		e.expectRedirect(e.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
		e.expectRedirect(e.post("/login/passkey/create/skip", nil), "/cb?id=")
		for _, back := range []string{"/login/passkey/create", "/login/otp", "/login/password", "/login/passkey", "/login", "/login?authRequestID=" + ar} {
			r := e.get(back)
			e.expect(r, http.StatusOK, `id="signed-in"`, "ログインは完了しています", `id="signed-in-home" href="`+testHome+`"`)
			if strings.Contains(r.body, "有効期限") {
				t.Fatalf("Back to %s after signing in says expired:\n%s", back, r.body)
			}
		}
		e.logout()
		e.expectWayBack(e.get("/login/passkey/create"), http.StatusBadRequest, "操作の有効期限が切れました")
		e.expectWayBack(e.get("/login?authRequestID="+ar), http.StatusBadRequest, "ログイン要求が見つからないか")
	})
}
