package login

import (
	"net/http"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// A passkey whose counter goes back (a copy of the key signing behind the
// original's back) still signs in, but the trail records it once, with
// both counters, and S8 warns the customer.
func TestSignCountRegressionIsAuditedAndShownOnS8(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		e := newPasskeyEnv(t, flavor)
		u := e.createUser("mika", "s3cret-pass")
		d := e.enrol(u, "s3cret-pass")
		login := func() {
			e.t.Helper()
			e.logout()
			e.get("/login?authRequestID=" + e.authRequest(nil))
			e.expect(e.passkeyLogin(d, "platform"), http.StatusOK, `"redirect":"/cb?id=`)
		}
		d.cred.Counter = 7
		login()
		if countEvents(e, "passkey.sign_count_regressed") != 0 {
			t.Fatal("a growing counter was recorded as a regression")
		}
		if r := e.get(pathAccount); strings.Contains(r.body, "data-passkey-clone-warning") {
			t.Fatal("S8 warns about a passkey whose counter grows")
		}
		d.cred.Counter = 3
		login()
		if !hasEvent(e.audit(), "passkey.sign_count_regressed", u.ID, map[string]string{"credential": credID(d), "from": "7", "to": "3"}) {
			t.Fatalf("no passkey.sign_count_regressed event with the counters: %+v", e.audit())
		}
		e.expect(e.get(pathAccount), http.StatusOK, "data-passkey-clone-warning", "不審な利用の兆候")
	})
}

func countEvents(e *env, typ string) int {
	n := 0
	for _, ev := range e.audit() {
		if ev.Type == typ {
			n++
		}
	}
	return n
}
