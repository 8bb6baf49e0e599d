package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"

	"github.com/comstockloan/idp/storage/storagetest"
)

// S8 パスキー設定状況確認 from the RP's 「各種お手続き」 link: list, add on
// this device, rename, delete (with the device told which passkeys remain),
// and deleting the last passkey returns the account to the password path.
func TestPasskeyManagementPage(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		b := newBrowser(t)
		b.withoutConditionalUI()
		phone := b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, true)

		enrolDemoPasskey(b, st)

		// A password + OTP session may see S8 but not add a second passkey
		// (rule 1: a phished password and OTP must never add one).
		b.click("#account")
		b.waitPath("/account/passkeys")
		if got := b.eval(`String(document.querySelectorAll("#s8-passkeys li[data-passkey-id]").length)`); got != "1" {
			t.Fatalf("S8 lists %s passkeys, want 1", got)
		}
		if got := b.eval(`document.querySelector("[data-passkey-kind]").dataset.passkeyKind`); got != "synced" {
			t.Errorf("kind = %q, want synced (backup-eligible)", got)
		}
		if b.eval(`document.querySelector("#s8-add-button") ? "y" : ""`) != "" || b.eval(`document.querySelector("#s8-add-blocked") ? "y" : ""`) == "" {
			t.Errorf("a password + OTP session is offered to add a second passkey")
		}
		b.click("#s8-return")
		b.waitFor(signedIn)

		// Sign in with the passkey; the session may now add one on this
		// device (the phone leaves, the PC's own authenticator stays).
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passkeyButtonLogin(b, st)
		b.waitFor(signedIn)
		b.removeAuthenticator(phone)
		pc := b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
		seen := len(st.Sink.Messages())
		b.click("#account")
		b.waitPath("/account/passkeys")
		b.click("#s8-add-button")
		b.waitFor(`document.querySelectorAll("#s8-passkeys li[data-passkey-id]").length === 2 ? "y" : ""`)
		if got := b.eval(`[...document.querySelectorAll("[data-passkey-kind]")].map(e => e.dataset.passkeyKind).sort().join(",")`); got != "device,synced" {
			t.Errorf("kinds = %q, want device,synced", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		notice, err := st.Sink.WaitForNew(ctx, "demo@example.com", seen)
		cancel()
		if err != nil || notice.Subject != st.Config.SMTP.PasskeySubject {
			t.Errorf("new-passkey notice: %+v, %v", notice.Subject, err)
		}

		// Rename the PC's passkey.
		pcID := b.eval(`document.querySelector('li:has([data-passkey-kind="device"])').dataset.passkeyId`)
		row := `li[data-passkey-id="` + pcID + `"] `
		b.fill(row+"[data-passkey-rename-input]", "会社のPC")
		b.submit(row + "[data-passkey-rename-submit]")
		if got := b.text(`li[data-passkey-id="` + pcID + `"] [data-passkey-name]`); got != "会社のPC" {
			t.Errorf("renamed passkey shows %q", got)
		}

		// Delete it: confirmation, then the device is told which passkeys
		// remain and drops this one.
		b.click(row + "a[data-passkey-delete]")
		b.waitPath("/account/passkeys/delete")
		b.submit("#s8-delete-confirm")
		b.waitFor(`document.querySelector("#s8-deleted-info") ? "y" : ""`)
		if body := b.text("#s8-deleted-info"); !strings.Contains(body, "端末") {
			t.Errorf("after delete S8 says %q; want the manual's note that the passkey stays on the device", body)
		}
		for i := 0; i < 50 && len(b.credentials(pc)) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if n := len(b.credentials(pc)); n != 0 {
			t.Errorf("device still holds the deleted passkey (%d) after signalAllAcceptedCredentials", n)
		}

		// Delete the last one: the account is back on the password path.
		b.click("a[data-passkey-delete]")
		b.waitPath("/account/passkeys/delete")
		if b.eval(`document.querySelector("#s8-delete-last") ? "y" : ""`) == "" {
			t.Errorf("confirmation of the last passkey's delete does not warn")
		}
		b.submit("#s8-delete-confirm")
		b.waitFor(`document.querySelector("#s8-back-to-password") ? "y" : ""`)
		u, _ := st.Server.Store.UserByLoginID(t.Context(), "demo")
		if n, _ := st.Server.Store.CountCredentials(t.Context(), u.ID); n != 0 {
			t.Fatalf("%d passkeys left", n)
		}
		b.click("#s8-return")
		b.waitFor(signedIn)
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		passwordLogin(b, st, "/login", "demo", "demo-pass-2026")
		b.waitFor(signedIn)
		b.click("#logout")
		b.waitFor(`document.querySelector("#login") ? "y" : ""`)
		enrolUntilS5(b, st, "demo", "demo-pass-2026", "demo@example.com")
	})
}

func TestHelpPage(t *testing.T) {
	st := startStack(t, "sqlite")
	b := newBrowser(t)
	b.navigate(st.RPURL + "/login")
	b.waitPath("/login")
	b.click(`a[href="/help"]`)
	b.waitPath("/help")
	body := b.eval("document.body.innerText")
	for _, want := range []string{"よくあるご質問", "Windows Hello", "iCloud キーチェーン", "Google パスワードマネージャー", "info@jsfnet.com", "03-6264-9738", "comstock@jsf.co.jp"} {
		if !strings.Contains(body, want) {
			t.Errorf("help page lacks %q", want)
		}
	}
}
