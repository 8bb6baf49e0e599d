package login

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// plantCookie puts a cookie into e's jar, as an attacker who can write
// cookies for the IdP's host (a sibling subdomain, a plain-http answer) does.
func (e *env) plantCookie(name, value string) {
	u, _ := url.Parse(e.srv.URL)
	e.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// Session fixation on F1 (rules 1 and 4): the attacker starts a flow, plants
// its handle in the victim's browser and waits for the victim's password
// and code to make that flow able to create a passkey. The handle changes
// with every factor, so the attacker's copy is dead from the password on.
func TestRule4PlantedFlowHandleDiesWithEachFactor(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		attacker := newEnv(t, flavor, nil)
		victim := attacker.browser()
		u := attacker.createUser("hana", "s3cret-pass")
		ar := attacker.authRequest(nil)
		attacker.expect(attacker.get("/login?authRequestID="+ar), http.StatusOK)
		planted := attacker.cookie(flowCookie)
		victim.plantCookie(flowCookie, planted)

		victim.expectRedirect(victim.post("/login/passkey", url.Values{"loginID": {"hana"}}), "/login/password")
		seen := len(victim.sink.Messages())
		victim.expectRedirect(victim.post("/login/password", url.Values{"password": {"s3cret-pass"}}), "/login/otp")
		afterPassword := victim.cookie(flowCookie)
		if afterPassword == planted || afterPassword == "" {
			t.Fatal("the flow handle did not change after the password")
		}
		attacker.expect(attacker.get("/login/otp"), http.StatusBadRequest, "操作の有効期限が切れました")

		_, code := victim.otpFromMail(u, seen)
		victim.expectRedirect(victim.post("/login/otp", url.Values{"code": {code}}), "/login/passkey/create")
		if c := victim.cookie(flowCookie); c == afterPassword || c == "" {
			t.Fatal("the flow handle did not change after the code")
		}
		// Someone who copied the handle between password and code is too late.
		attacker.plantCookie(flowCookie, afterPassword)
		attacker.expect(attacker.get("/login/passkey/create"), http.StatusBadRequest, "操作の有効期限が切れました")
		victim.expect(victim.get("/login/passkey/create"), http.StatusOK)
	})
}

// With an https issuer the handles are __Host- cookies: Secure, the whole
// site, no Domain, so no other host can set them.
func TestHostPrefixedCookiesWhenSecure(t *testing.T) {
	e := newEnv(t, "sqlite", func(c *Config) { c.SecureCookies = true })
	ar := e.authRequest(nil)
	res := e.get("/login?authRequestID=" + ar)
	e.expect(res, http.StatusOK)
	var flow *http.Cookie
	for _, c := range (&http.Response{Header: res.header}).Cookies() {
		if strings.HasSuffix(c.Name, flowCookie) {
			flow = c
		}
	}
	if flow == nil || flow.Name != "__Host-"+flowCookie || !flow.Secure || flow.Path != "/" || flow.Domain != "" {
		t.Fatalf("flow cookie %+v, want __Host-%s, Secure, Path=/, no Domain", flow, flowCookie)
	}
}
