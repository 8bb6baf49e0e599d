package passkey_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// The fuzz targets below replay bodies across runs and worker processes,
// so everything a valid body depends on is fixed: the keys (P-256 PKCS#8
// with full-length coordinates), credential IDs, user IDs and the
// challenge the pinned ceremonies carry.
const (
	fuzzLoginKey = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420b3e7d3fbe3652c0accb5e1882bea150a09b6a388d6525d4582214b2ac1287d49a144034200041cf7cef3b23bdc57716c44e2d15c4144d27001bf3293e61fd9361d6a29376b3f5bba0c00917fd968fe64bece23c65316e011705f10feccd682ed51a495c96619"
	fuzzRegKey   = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104207898ceb4e00238bd705ae75f35bacbf51b037d967e46ecc600288ab7e03fd633a14403420004f5ae01266eca528caefbad0589f83144c2dd78ea537957d6a655db9c2781dfd35377c6f1073a033e3887bbf7e1d09c6d28ece6a9bb583febfb4a5da7526ee21f"
	fuzzFlowID   = "flow-fuzz"
)

var fuzzChallenge = bytes.Repeat([]byte("fuzz-challenge-"), 3)[:32]

// fuzzRig is a Service on one SQLite store for a whole fuzzing run, with
// a user holding the login passkey and a user without any.
type fuzzRig struct {
	ctx                        context.Context
	store                      storage.Store
	svc                        *passkey.Service
	owner                      *storage.User // holds loginDev's passkey
	newcomer                   *storage.User // registers regDev's passkey
	loginDev                   *device
	regDev                     *device
	loginPub                   *ecdsa.PublicKey
	loginCeremony, regCeremony storage.WebAuthnSession
}

func fixedDevice(t testing.TB, u *storage.User, keyHex, credID string) (*device, *ecdsa.PublicKey) {
	t.Helper()
	der, err := hex.DecodeString(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{
		auth: virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: []byte(u.ID)}),
		cred: virtualwebauthn.NewCredentialWithImportedKey(virtualwebauthn.KeyTypeEC2, der),
	}
	d.cred.ID = []byte(credID)
	d.auth.Aaguid = [16]byte{}
	d.auth.AddCredential(d.cred)
	return d, &k.(*ecdsa.PrivateKey).PublicKey
}

func newFuzzRig(f *testing.F) *fuzzRig {
	f.Helper()
	store := storagetest.New(f, "sqlite")
	svc, err := passkey.New(passkey.Config{RPID: rpID, RPDisplayName: "コムストックローン", Origins: []string{rpOrigin},
		Timeout: 24 * time.Hour}, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	g := &fuzzRig{ctx: context.Background(), store: store, svc: svc}
	now := time.Now().UTC()
	newUser := func(id string) *storage.User {
		u := &storage.User{ID: id, LoginID: id, Email: id + "@example.jp", DisplayName: "山田 太郎",
			PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", CreatedAt: now, UpdatedAt: now}
		if err := store.CreateUser(g.ctx, u); err != nil {
			f.Fatal(err)
		}
		return u
	}
	g.owner, g.newcomer = newUser("fuzz-owner"), newUser("fuzz-newcomer")
	g.loginDev, g.loginPub = fixedDevice(f, g.owner, fuzzLoginKey, "fuzz-login-credential-id")
	g.regDev, _ = fixedDevice(f, g.newcomer, fuzzRegKey, "fuzz-registration-credential")

	// Register the login passkey through a real ceremony.
	options, err := svc.BeginRegistration(g.ctx, g.owner, "flow-setup")
	if err != nil {
		f.Fatal(err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		f.Fatal(err)
	}
	att := virtualwebauthn.CreateAttestationResponse(relyingParty, g.loginDev.auth, g.loginDev.cred, *ao)
	if _, err := svc.FinishRegistration(g.ctx, g.owner, "flow-setup", []byte(att), true); err != nil {
		f.Fatalf("registering the login passkey: %v", err)
	}

	// Pin one ceremony of each kind to fuzzChallenge: begin it for real,
	// then store the same session data under the fixed challenge.
	pin := func(options json.RawMessage, err error) storage.WebAuthnSession {
		if err != nil {
			f.Fatal(err)
		}
		var o struct {
			PublicKey struct{ Challenge string } `json:"publicKey"`
		}
		if err := json.Unmarshal(options, &o); err != nil {
			f.Fatal(err)
		}
		ws, err := store.TakeWebAuthnSession(g.ctx, o.PublicKey.Challenge, time.Now())
		if err != nil {
			f.Fatal(err)
		}
		var data webauthn.SessionData
		if err := json.Unmarshal(ws.Data, &data); err != nil {
			f.Fatal(err)
		}
		data.Challenge = base64.RawURLEncoding.EncodeToString(fuzzChallenge)
		if ws.Data, err = json.Marshal(data); err != nil {
			f.Fatal(err)
		}
		ws.Challenge = data.Challenge
		return *ws
	}
	g.loginCeremony = pin(svc.BeginLogin(g.ctx, fuzzFlowID, false))
	g.regCeremony = pin(svc.BeginRegistration(g.ctx, g.newcomer, fuzzFlowID))
	return g
}

// arm stores ws afresh, replacing what an earlier input left.
func (g *fuzzRig) arm(t testing.TB, ws storage.WebAuthnSession) {
	t.Helper()
	if _, err := g.store.TakeWebAuthnSession(g.ctx, ws.Challenge, time.Unix(0, 0)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	if err := g.store.SaveWebAuthnSession(g.ctx, &ws); err != nil {
		t.Fatal(err)
	}
}

// credentials is every stored passkey of both users.
func (g *fuzzRig) credentials(t *testing.T) []storage.Credential {
	t.Helper()
	var all []storage.Credential
	for _, u := range []*storage.User{g.owner, g.newcomer} {
		cs, err := g.store.CredentialsByUser(g.ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cs...)
	}
	return all
}

func (g *fuzzRig) validAssertion(counter uint32) []byte {
	d := *g.loginDev
	d.cred.Counter = counter
	return []byte(virtualwebauthn.CreateAssertionResponse(relyingParty, d.auth, d.cred,
		virtualwebauthn.AssertionOptions{Challenge: fuzzChallenge, RelyingPartyID: rpID}))
}

func (g *fuzzRig) validAttestation() []byte {
	return []byte(virtualwebauthn.CreateAttestationResponse(relyingParty, g.regDev.auth, g.regDev.cred,
		virtualwebauthn.AttestationOptions{Challenge: fuzzChallenge, RelyingPartyID: rpID, RelyingPartyName: "コムストックローン",
			UserID: base64.RawURLEncoding.EncodeToString([]byte(g.newcomer.ID)), UserName: g.newcomer.LoginID}))
}

// b64 decodes the base64url fields of a WebAuthn response JSON.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// signedClientData checks, independently of the library, what any accepted
// body must carry: client data of typ for our challenge and origin, and
// authenticator data for our RP ID with the user present and verified.
func signedClientData(t *testing.T, clientDataJSON, authData []byte, typ string) {
	t.Helper()
	var cd struct{ Type, Challenge, Origin string }
	if err := json.Unmarshal(clientDataJSON, &cd); err != nil {
		t.Fatalf("accepted client data %q: %v", clientDataJSON, err)
	}
	if ch, err := b64(cd.Challenge); err != nil || !bytes.Equal(ch, fuzzChallenge) || cd.Type != typ || cd.Origin != rpOrigin {
		t.Fatalf("accepted client data %+v", cd)
	}
	rpHash := sha256.Sum256([]byte(rpID))
	if len(authData) < 37 || !bytes.Equal(authData[:32], rpHash[:]) {
		t.Fatalf("accepted authenticator data for another RP ID: %x", authData)
	}
	if flags := authData[32]; flags&0x01 == 0 || flags&0x04 == 0 {
		t.Fatalf("accepted authenticator data without user presence and verification (flags %08b)", flags)
	}
}

// FuzzFinishLogin mutates a valid assertion of a registered passkey against
// a live login ceremony. A refused body leaves every passkey row as it was
// (sign count, last use, clone flag); an accepted one is signed by that
// passkey's key over our RP ID and challenge, signs in its owner, and never
// lowers the stored sign count.
func FuzzFinishLogin(f *testing.F) {
	g := newFuzzRig(f)
	// The seeds must be accepted, or the fuzzer only ever sees refusals.
	g.arm(f, g.loginCeremony)
	if _, err := g.svc.FinishLogin(g.ctx, fuzzFlowID, g.validAssertion(0)); err != nil {
		f.Fatalf("the valid assertion is refused: %v", err)
	}
	f.Add(g.validAssertion(0))
	f.Add(g.validAssertion(7))
	f.Fuzz(func(t *testing.T, body []byte) {
		g.arm(t, g.loginCeremony)
		before := g.credentials(t)
		res, err := g.svc.FinishLogin(g.ctx, fuzzFlowID, body)
		after := g.credentials(t)
		if err != nil {
			if res != nil {
				t.Fatalf("FinishLogin returned a result with error %v", err)
			}
			if !errors.Is(err, passkey.ErrVerification) && !errors.Is(err, passkey.ErrUnknownCredential) &&
				!errors.Is(err, passkey.ErrCeremonyExpired) && !errors.Is(err, passkey.ErrWrongFlow) {
				t.Fatalf("bad body refused with an infrastructure error: %v", err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("refused body (%v) changed the stored passkeys:\n%+v\n%+v", err, before, after)
			}
			return
		}

		var resp struct {
			RawID    string `json:"rawId"`
			Response struct {
				ClientDataJSON, AuthenticatorData, Signature, UserHandle string
			} `json:"response"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("accepted a body encoding/json cannot read: %v", err)
		}
		cdj, err1 := b64(resp.Response.ClientDataJSON)
		ad, err2 := b64(resp.Response.AuthenticatorData)
		sig, err3 := b64(resp.Response.Signature)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("accepted a body with fields that are not base64url: %v", err)
		}
		signedClientData(t, cdj, ad, "webauthn.get")
		cdHash := sha256.Sum256(cdj)
		digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
		if !ecdsa.VerifyASN1(g.loginPub, digest[:], sig) {
			t.Fatal("accepted an assertion whose signature the passkey's key did not make")
		}
		if res.User.ID != g.owner.ID || !bytes.Equal(res.Credential.ID, g.loginDev.cred.ID) {
			t.Fatalf("signed in %q with credential %q", res.User.ID, res.Credential.ID)
		}
		if len(before) != len(after) {
			t.Fatalf("a login changed the number of passkeys: %d -> %d", len(before), len(after))
		}
		stored, err := g.store.CredentialByID(g.ctx, g.loginDev.cred.ID)
		if err != nil {
			t.Fatal(err)
		}
		old := before[0].SignCount
		reported := binary.BigEndian.Uint32(ad[33:37])
		if want := max(old, reported); stored.SignCount != want {
			t.Fatalf("sign count %d after %d reported over %d stored, want %d", stored.SignCount, reported, old, want)
		}
	})
}

// FuzzFinishRegistration mutates a valid attestation against a live
// registration ceremony of a user without a passkey. A refused body stores
// nothing; an accepted one stores exactly one passkey, of that user, for
// our RP ID and challenge (the attestation format is "none", so its key is
// the browser's word). The passkey is removed again after each input.
func FuzzFinishRegistration(f *testing.F) {
	g := newFuzzRig(f)
	g.arm(f, g.regCeremony)
	c, err := g.svc.FinishRegistration(g.ctx, g.newcomer, fuzzFlowID, g.validAttestation(), true)
	if err != nil {
		f.Fatalf("the valid attestation is refused: %v", err)
	}
	if err := g.store.DeleteCredential(g.ctx, g.newcomer.ID, c.ID); err != nil {
		f.Fatal(err)
	}
	f.Add(g.validAttestation())
	f.Fuzz(func(t *testing.T, body []byte) {
		g.arm(t, g.regCeremony)
		before := g.credentials(t)
		c, err := g.svc.FinishRegistration(g.ctx, g.newcomer, fuzzFlowID, body, true)
		after := g.credentials(t)
		if err != nil {
			if c != nil {
				t.Fatalf("FinishRegistration returned a credential with error %v", err)
			}
			if !errors.Is(err, passkey.ErrVerification) && !errors.Is(err, passkey.ErrAlreadyRegistered) &&
				!errors.Is(err, passkey.ErrCeremonyExpired) && !errors.Is(err, passkey.ErrWrongFlow) {
				t.Fatalf("bad body refused with an infrastructure error: %v", err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("refused body (%v) changed the stored passkeys:\n%+v\n%+v", err, before, after)
			}
			return
		}
		defer func() {
			if err := g.store.DeleteCredential(g.ctx, g.newcomer.ID, c.ID); err != nil {
				t.Fatalf("cleanup: %v", err)
			}
		}()
		if len(after) != len(before)+1 {
			t.Fatalf("an accepted registration changed the number of passkeys by %d", len(after)-len(before))
		}
		stored, err := g.store.CredentialByID(g.ctx, c.ID)
		if err != nil || stored.UserID != g.newcomer.ID || !bytes.Equal(stored.PublicKey, c.PublicKey) {
			t.Fatalf("stored %+v (err %v) for accepted %+v", stored, err, c)
		}
		parsed, err := protocol.ParseCredentialCreationResponseBytes(body)
		if err != nil {
			t.Fatalf("accepted a body that does not parse: %v", err)
		}
		cdj, err := b64(mustJSONField(t, body, "response", "clientDataJSON"))
		if err != nil {
			t.Fatalf("accepted client data that is not base64url: %v", err)
		}
		ad := parsed.Response.AttestationObject.RawAuthData
		signedClientData(t, cdj, ad, "webauthn.create")
		if !bytes.Equal(parsed.Response.AttestationObject.AuthData.AttData.CredentialID, c.ID) {
			t.Fatalf("stored credential ID %q, the body attests %q", c.ID, parsed.Response.AttestationObject.AuthData.AttData.CredentialID)
		}
	})
}

// mustJSONField is the string at path in a JSON object.
func mustJSONField(t *testing.T, body []byte, path ...string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("accepted a body encoding/json cannot read: %v", err)
	}
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}
