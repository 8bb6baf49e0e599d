package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// The WebAuthn Signal API (passkey.js): after every passkey sign-in and on
// every S8 load the device is told which of the customer's passkeys we
// accept (signalAllAcceptedCredentials) and how they are named
// (signalCurrentUserDetails). Chromium's virtual authenticator applies
// both, so the tests read the device's state, not the calls.

const (
	hanakoLoginID  = "hanako"
	hanakoName     = "山田 花子"
	hanakoPassword = "hanako-pass-2026"
	hanakoEmail    = "hanako@example.com"
)

// createHanako stores a customer whose display name differs from her
// login ID, so a signal that mixed them up would show.
func createHanako(t *testing.T, st *devstack.Stack) *storage.User {
	t.Helper()
	c := st.Config.Password
	hash, err := password.Hash(password.Params{MemoryKiB: c.MemoryKiB, Iterations: c.Iterations, Parallelism: c.Parallelism}, hanakoPassword)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	u := &storage.User{ID: rand.Text(), LoginID: hanakoLoginID, Email: hanakoEmail, DisplayName: hanakoName,
		PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := st.Server.Store.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

// twoPasskeys gives Hanako two passkeys: the first by F1 on a phone, the
// second added on S8 on this PC after a passkey sign-in. She is left
// signed in, on S8, with the PC's own authenticator holding its passkey
// and a second one (a passkey provider the phone's passkey synced to;
// Chromium allows one discoverable passkey per user and authenticator)
// holding the phone's.
func twoPasskeys(b *browser, st *devstack.Stack) (pc, synced authenticator, phoneKey, pcKey *cdpwebauthn.Credential) {
	b.t.Helper()
	phone := b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, true)
	enrolUntilS5(b, st, hanakoLoginID, hanakoPassword, hanakoEmail)
	b.click("button[data-passkey-register]")
	b.waitFor(signedIn)
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	passkeyButtonLogin(b, st)
	b.waitFor(signedIn)
	phoneKey = b.credentials(phone)[0]
	b.removeAuthenticator(phone)

	pc = b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
	b.click("#account")
	b.waitPath("/account/passkeys")
	b.click("#s8-add-button")
	b.waitFor(`document.querySelectorAll("#s8-passkeys li[data-passkey-id]").length === 2 ? "y" : ""`)
	pcKey = b.credentials(pc)[0]
	synced = b.addAuthenticator(cdpwebauthn.AuthenticatorTransportHybrid, true)
	b.addCredential(synced, phoneKey)
	return pc, synced, phoneKey, pcKey
}

// deleteOnServer is the support centre deleting one passkey (lost phone);
// the device keeps its copy.
func deleteOnServer(t *testing.T, st *devstack.Stack, u *storage.User, id []byte) {
	t.Helper()
	if err := st.Server.Store.DeleteCredential(t.Context(), u.ID, id); err != nil {
		t.Fatalf("delete passkey: %v", err)
	}
}

// waitHolds waits until a holds exactly the passkeys want (by ID, in
// any order) and returns them.
func (b *browser) waitHolds(a authenticator, want ...[]byte) []*cdpwebauthn.Credential {
	b.t.Helper()
	var got []*cdpwebauthn.Credential
	for range 50 {
		got = b.credentials(a)
		if sameIDs(got, want) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("the device holds %v, want %v", idsOf(got), encodeIDs(want))
	return nil
}

func sameIDs(got []*cdpwebauthn.Credential, want [][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(c *cdpwebauthn.Credential) bool { return bytes.Equal(c.CredentialID, w) }) {
			return false
		}
	}
	return true
}

func idsOf(cs []*cdpwebauthn.Credential) []string {
	ids := make([][]byte, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.CredentialID)
	}
	return encodeIDs(ids)
}

func encodeIDs(ids [][]byte) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		out = append(out, base64.RawURLEncoding.EncodeToString(id))
	}
	return out
}

// untouched leaves a waiting for a touch that never comes, so another
// authenticator answers the ceremony: the customer uses the PC's own
// passkey, not the synced one.
func (b *browser) untouched(a authenticator) {
	b.t.Helper()
	_, err := chromedp.Call(b.ctx, cdpwebauthn.SetAutomaticPresenceSimulation,
		cdpwebauthn.SetAutomaticPresenceSimulationParams{AuthenticatorID: a.id, Enabled: false})
	if err != nil {
		b.fail(err)
	}
}

// A passkey the support centre deleted leaves the device the next time
// the customer opens S8, although she never picked it; the passkey we
// still accept stays.
func TestSignalAPIS8DropsAPasskeyDeletedByStaff(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := startStack(t, flavor)
		u := createHanako(t, st)
		b := newBrowser(t)
		b.withoutConditionalUI()
		pc, synced, phoneKey, pcKey := twoPasskeys(b, st)
		b.navigate(st.IdPURL + "/account/passkeys")
		b.waitPath("/account/passkeys")
		b.waitHolds(synced, phoneKey.CredentialID) // both still accepted: nothing to drop

		deleteOnServer(t, st, u, phoneKey.CredentialID)
		b.navigate(st.IdPURL + "/account/passkeys")
		b.waitPath("/account/passkeys")
		b.waitHolds(synced)
		b.waitHolds(pc, pcKey.CredentialID)
	})
}

// Signing in with another passkey drops the deleted one from the device
// before the browser follows the redirect, and relabels the passkey the
// device holds with our login ID and display name.
func TestSignalAPISignInDropsDeletedPasskeyAndRelabels(t *testing.T) {
	st := startStack(t, "postgres")
	u := createHanako(t, st)
	b := newBrowser(t)
	b.withoutConditionalUI()
	pc, synced, phoneKey, pcKey := twoPasskeys(b, st)

	// The PC's passkey went stale in the device's list: old names.
	b.removeAuthenticator(pc)
	pc = b.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal, false)
	stale := *pcKey
	stale.UserName, stale.UserDisplayName = "old-hanako", "旧 名前"
	b.addCredential(pc, &stale)

	deleteOnServer(t, st, u, phoneKey.CredentialID)
	b.navigate(st.RPURL + "/")
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	b.untouched(synced)
	passkeyButtonLogin(b, st)
	b.waitFor(signedIn)

	b.waitHolds(synced)
	var kept *cdpwebauthn.Credential
	for range 50 {
		kept = b.waitHolds(pc, pcKey.CredentialID)[0]
		if kept.UserName == hanakoLoginID && kept.UserDisplayName == hanakoName {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("the device labels the passkey %q / %q, want %q / %q (signalCurrentUserDetails)",
		kept.UserName, kept.UserDisplayName, hanakoLoginID, hanakoName)
}

// A browser without the Signal API loses nothing: the passkey sign-in and
// S8 work as before, and the device keeps what it has.
func TestSignalAPIAbsentBrowserStillSignsIn(t *testing.T) {
	st := startStack(t, "sqlite")
	u := createHanako(t, st)
	b := newBrowser(t)
	b.withoutConditionalUI()
	_, err := chromedp.Call(b.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `if (window.PublicKeyCredential) {
			delete PublicKeyCredential.signalAllAcceptedCredentials;
			delete PublicKeyCredential.signalCurrentUserDetails;
			delete PublicKeyCredential.signalUnknownCredential;
		}`,
	})
	if err != nil {
		b.fail(err)
	}
	_, synced, phoneKey, _ := twoPasskeys(b, st)
	if got := b.eval(`typeof PublicKeyCredential.signalAllAcceptedCredentials + " " + typeof PublicKeyCredential.signalCurrentUserDetails`); got != "undefined undefined" {
		t.Fatalf("the Signal API is still there: %s", got)
	}
	deleteOnServer(t, st, u, phoneKey.CredentialID)
	b.navigate(st.IdPURL + "/account/passkeys")
	b.waitPath("/account/passkeys")
	b.navigate(st.RPURL + "/")
	b.click("#logout")
	b.waitFor(`document.querySelector("#login") ? "y" : ""`)
	b.untouched(synced)
	passkeyButtonLogin(b, st)
	b.waitFor(signedIn)
	if got := claim(b, "preferred_username"); got != hanakoLoginID {
		t.Errorf("signed in as %q", got)
	}
	// Nothing told the device: it still offers the deleted passkey (which
	// the server refuses with guidance, TestDeletedPasskeyIsRefusedWithGuidance).
	if n := len(b.credentials(synced)); n != 1 {
		t.Errorf("the device dropped the deleted passkey without the Signal API (%d left)", n)
	}
}
