package login

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// finishSignal decodes a finish answer's "signal" (nil when it has none).
func (e *env) finishSignal(r resp) (redirect string, sig *passkey.Signal) {
	e.t.Helper()
	var a finishAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		e.t.Fatalf("finish answer (%d) not JSON: %s", r.status, r.body)
	}
	return a.Redirect, a.Signal
}

// registrationUser is the WebAuthn user entity S8's add ceremony gives the
// authenticator: what the signals must repeat.
func (e *env) registrationUser() (id, name, displayName string) {
	e.t.Helper()
	opts := e.post(pathAccountRegOpt, nil)
	var o struct {
		PublicKey struct {
			User struct{ ID, Name, DisplayName string }
		}
	}
	if err := json.Unmarshal([]byte(opts.body), &o); err != nil || o.PublicKey.User.ID == "" {
		e.t.Fatalf("registration options (%d): %s", opts.status, opts.body)
	}
	u := o.PublicKey.User
	return u.ID, u.Name, u.DisplayName
}

// After a passkey sign-in (F2, and F3 on its way to S5) the finish answer
// tells the device which of the customer's passkeys we still accept and
// their names as the registration gave them: a passkey the support centre
// deleted is absent, another customer's passkeys never appear, and a
// refused assertion carries no signal.
func TestPasskeySignInSignalsTheCustomersPasskeys(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, _, db := enrolledPair(t, flavor)
		a.expect(a.assert(da, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusOK)
		second := newDevice(ua)
		a.expect(a.addOnS8(second), http.StatusOK)
		regID, regName, regDisplay := a.registrationUser()
		// The support centre deletes the first passkey (lost phone).
		if err := a.store.DeleteCredential(context.Background(), ua.ID, da.cred.ID); err != nil {
			t.Fatal(err)
		}

		for _, attachment := range []string{"platform", "cross-platform"} {
			c := a.browser()
			ar := c.authRequest(nil)
			c.get("/login?authRequestID=" + ar)
			r := c.passkeyLogin(second, attachment)
			c.expect(r, http.StatusOK)
			redirect, sig := c.finishSignal(r)
			want := "/cb?id=" + ar
			if attachment == "cross-platform" {
				want = pathCreate
			}
			if redirect != want {
				t.Fatalf("%s: redirect %q, want %q", attachment, redirect, want)
			}
			if sig == nil {
				t.Fatalf("%s: no signal in %s", attachment, r.body)
			}
			if sig.RPID != testRP.ID || sig.UserID != regID || sig.UserID != base64.RawURLEncoding.EncodeToString([]byte(ua.ID)) {
				t.Errorf("%s: signal rpId %q userId %q, want %q and the registration's %q", attachment, sig.RPID, sig.UserID, testRP.ID, regID)
			}
			if sig.Name != regName || sig.DisplayName != regDisplay || sig.Name != ua.LoginID {
				t.Errorf("%s: signal names %q / %q, registration's %q / %q", attachment, sig.Name, sig.DisplayName, regName, regDisplay)
			}
			if !slices.Equal(sig.AcceptedCredentialIDs, []string{credID(second)}) {
				t.Errorf("%s: accepted %v, want only %s (not the deleted %s nor the other customer's %s)",
					attachment, sig.AcceptedCredentialIDs, credID(second), credID(da), credID(db))
			}
		}

		// The deleted passkey is refused, naming only itself.
		c := a.browser()
		c.get("/login?authRequestID=" + c.authRequest(nil))
		r := c.passkeyLogin(da, "platform")
		c.expect(r, http.StatusUnauthorized, `"code":"unknown_credential"`)
		if strings.Contains(r.body, "signal") || strings.Contains(r.body, credID(second)) {
			t.Fatalf("a refused assertion carries the customer's passkeys: %s", r.body)
		}
	})
}

// A customer without passkeys gets an empty list, which is a signal too
// (the device may drop them all), not a missing one.
func TestPasskeySignalListsNoneAsEmpty(t *testing.T) {
	e := newPasskeyEnv(t, "sqlite")
	u := e.createUser("aoi", "s3cret-pass")
	sig := e.h.passkeySignal(&PasskeyLogin{User: u})
	raw, err := json.Marshal(sig)
	if err != nil || !strings.Contains(string(raw), `"allAcceptedCredentialIds":[]`) {
		t.Fatalf("signal of a customer without passkeys: %s (%v)", raw, err)
	}
	// Even a list that strays into another user's rows names only u's.
	other := storage.Credential{ID: []byte("not-aoi"), UserID: "someone-else"}
	if got := e.h.passkeys.Signal(u, []storage.Credential{other}); len(got.AcceptedCredentialIDs) != 0 {
		t.Fatalf("another user's passkey signalled: %v", got.AcceptedCredentialIDs)
	}
}

// S8 carries the signal on every load, not only after a delete on S8, so
// a passkey the support centre deleted leaves the device when the customer
// next looks at S8; the other customer's passkeys are never in it.
func TestS8SignalsOnEveryLoad(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, da, _, _, db := enrolledPair(t, flavor)
		handle := base64.RawURLEncoding.EncodeToString([]byte(ua.ID))
		s8 := a.get(pathAccount)
		a.expect(s8, http.StatusOK, `data-passkey-signal `, `data-rp-id="localhost"`, `data-user-id="`+handle+`"`,
			`data-user-name="aoi"`, `data-user-display-name="テスト 太郎"`, `data-credential-ids="`+credID(da)+`"`)
		if strings.Contains(s8.body, credID(db)) {
			t.Fatal("S8 signals another customer's passkey")
		}
		if err := a.store.DeleteCredential(context.Background(), ua.ID, da.cred.ID); err != nil {
			t.Fatal(err)
		}
		a.expect(a.get(pathAccount), http.StatusOK, `data-user-id="`+handle+`"`, `data-credential-ids=""`)
	})
}

// Without a passkey service S8 has nothing to signal.
func TestS8WithoutPasskeysHasNoSignal(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	e.createUser("hana", "s3cret-pass")
	e.loginWithPassword("hana", "s3cret-pass")
	r := e.get(pathAccount)
	e.expect(r, http.StatusOK, "パスキー設定状況確認")
	if strings.Contains(r.body, "data-passkey-signal") {
		t.Fatal("S8 signals without a passkey service")
	}
}
