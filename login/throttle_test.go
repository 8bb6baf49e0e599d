package login

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage/storagetest"
)

// Password guessing pauses after MaxPerLoginID failures for one login ID,
// known or not (the answer must not tell which: rule 7), and the pause
// holds even for the right password.
func TestPasswordGuessingIsThrottledPerLoginID(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newEnv(t, flavor, func(c *Config) {
			c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 3, MaxPerAddress: 100}
		})
		e.createUser("hana", "s3cret-pass")
		ar := e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		for _, id := range []string{"hana", "nobody"} {
			for i := 0; i < 3; i++ {
				e.expect(e.submit("/login", url.Values{"loginID": {id}, "password": {"wrong-pass"}}), http.StatusUnauthorized, "ログインIDまたはパスワードが正しくありません。")
			}
			e.expect(e.submit("/login", url.Values{"loginID": {id}, "password": {"wrong-pass"}}), http.StatusTooManyRequests, "一時的にログインを制限しています")
		}
		e.expect(e.submit("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), http.StatusTooManyRequests, "一時的にログインを制限しています")
		if e.storedAuthRequest(ar).Done {
			t.Fatal("signed in while throttled")
		}
		// Old failures leave the window and the right password works again.
		e.clock.Advance(16 * time.Minute)
		ar = e.authRequest(nil)
		e.get("/login?authRequestID=" + ar)
		e.expectRedirect(e.post("/login", url.Values{"loginID": {"hana"}, "password": {"s3cret-pass"}}), "/cb?id="+ar)
	})
}

// One address trying many login IDs is paused too, at S3 as at S1.
func TestPasswordGuessingIsThrottledPerAddress(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) {
		c.PasswordThrottle = PasswordThrottle{Window: 15 * time.Minute, MaxPerLoginID: 100, MaxPerAddress: 2}
	})
	e.createUser("hana", "s3cret-pass")
	ar := e.authRequest(nil)
	e.get("/login?authRequestID=" + ar)
	e.expect(e.submit("/login", url.Values{"loginID": {"a1"}, "password": {"x-pass-1"}}), http.StatusUnauthorized)
	e.expect(e.submit("/login", url.Values{"loginID": {"a2"}, "password": {"x-pass-2"}}), http.StatusUnauthorized)
	e.expect(e.post("/login/passkey", url.Values{"loginID": {"hana"}}), http.StatusSeeOther)
	e.expect(e.submit("/login/password", url.Values{"password": {"s3cret-pass"}}), http.StatusTooManyRequests, "一時的にログインを制限しています")
}
