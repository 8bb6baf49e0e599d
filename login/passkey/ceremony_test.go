package passkey_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/descope/virtualwebauthn"
	"github.com/google/uuid"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
)

func TestRegistrationOptions(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-opts", "loan0001")
		first := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		existing := h.mustRegister(u, first)

		options, err := h.svc.BeginRegistration(h.ctx, u, "flow-opts")
		if err != nil {
			t.Fatalf("BeginRegistration: %v", err)
		}
		var o struct {
			PublicKey struct {
				RP   struct{ ID, Name string } `json:"rp"`
				User struct {
					ID          string `json:"id"`
					Name        string `json:"name"`
					DisplayName string `json:"displayName"`
				} `json:"user"`
				Attestation            string `json:"attestation"`
				AuthenticatorSelection struct {
					AuthenticatorAttachment *string `json:"authenticatorAttachment"`
					ResidentKey             string  `json:"residentKey"`
					RequireResidentKey      bool    `json:"requireResidentKey"`
					UserVerification        string  `json:"userVerification"`
				} `json:"authenticatorSelection"`
				ExcludeCredentials []struct {
					ID   string `json:"id"`
					Type string `json:"type"`
				} `json:"excludeCredentials"`
				Hints []string `json:"hints"`
			} `json:"publicKey"`
		}
		if err := json.Unmarshal(options, &o); err != nil {
			t.Fatalf("decode %s: %v", options, err)
		}
		pk := o.PublicKey
		if pk.RP.ID != rpID || pk.RP.Name != "コムストックローン" {
			t.Errorf("rp = %+v", pk.RP)
		}
		if pk.User.ID != base64.RawURLEncoding.EncodeToString([]byte(u.ID)) || pk.User.Name != u.LoginID || pk.User.DisplayName != u.DisplayName {
			t.Errorf("user entity = %+v, want handle of %q, name %q", pk.User, u.ID, u.LoginID)
		}
		sel := pk.AuthenticatorSelection
		if sel.ResidentKey != "required" || !sel.RequireResidentKey || sel.UserVerification != "required" || sel.AuthenticatorAttachment != nil {
			t.Errorf("authenticatorSelection = %+v, want resident key + UV required, no attachment", sel)
		}
		if pk.Attestation != "none" {
			t.Errorf("attestation = %q, want none", pk.Attestation)
		}
		// This device first, then a phone: never the security-key prompt
		// first on Windows, and still no attachment forced.
		if strings.Join(pk.Hints, ",") != "client-device,hybrid" {
			t.Errorf("hints = %v, want [client-device hybrid]", pk.Hints)
		}
		want := base64.RawURLEncoding.EncodeToString(existing.ID)
		if len(pk.ExcludeCredentials) != 1 || pk.ExcludeCredentials[0].ID != want || pk.ExcludeCredentials[0].Type != "public-key" {
			t.Errorf("excludeCredentials = %+v, want [%s]", pk.ExcludeCredentials, want)
		}
	})
}

func TestLoginOptions(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		for _, conditional := range []bool{false, true} {
			options, err := h.svc.BeginLogin(h.ctx, "flow-login-opts", conditional)
			if err != nil {
				t.Fatalf("BeginLogin: %v", err)
			}
			var o struct {
				Mediation string                     `json:"mediation"`
				PublicKey map[string]json.RawMessage `json:"publicKey"`
			}
			if err := json.Unmarshal(options, &o); err != nil {
				t.Fatalf("decode %s: %v", options, err)
			}
			if string(o.PublicKey["userVerification"]) != `"required"` || string(o.PublicKey["rpId"]) != `"localhost"` {
				t.Errorf("options %s: want userVerification required and rpId localhost", options)
			}
			if string(o.PublicKey["hints"]) != `["client-device","hybrid"]` {
				t.Errorf("hints = %s, want [\"client-device\",\"hybrid\"]", o.PublicKey["hints"])
			}
			if allow, ok := o.PublicKey["allowCredentials"]; ok && string(allow) != "[]" && string(allow) != "null" {
				t.Errorf("allowCredentials = %s, want empty", allow)
			}
			wantMediation := ""
			if conditional {
				wantMediation = "conditional"
			}
			if o.Mediation != wantMediation {
				t.Errorf("mediation = %q, want %q", o.Mediation, wantMediation)
			}
			ws, err := h.store.TakeWebAuthnSession(h.ctx, challengeOf(t, options), time.Now())
			if err != nil {
				t.Fatalf("ceremony not stored: %v", err)
			}
			if ws.Ceremony != passkey.CeremonyLogin || ws.FlowID != "flow-login-opts" || ws.UserID != "" || !ws.ExpiresAt.After(time.Now().Add(4*time.Minute)) {
				t.Errorf("stored session = %+v", ws)
			}
		}
	})
}

func TestRegisterAndLogin(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-happy", "loan0002")
		device := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		synced := newDevice(u, virtualwebauthn.AuthenticatorOptions{BackupEligible: true, BackupState: true})

		c, err := h.register(u, "flow-1", device, true)
		if err != nil {
			t.Fatalf("first registration: %v", err)
		}
		if !bytes.Equal(c.ID, device.cred.ID) || c.UserID != u.ID || !c.UserVerified || !c.UserPresent || c.BackupEligible {
			t.Errorf("stored credential = %+v", c)
		}
		if c.Name == "" || !bytes.Equal(c.AAGUID, device.auth.Aaguid[:]) {
			t.Errorf("name %q, aaguid %x", c.Name, c.AAGUID)
		}
		s, err := h.register(u, "flow-2", synced, false)
		if err != nil {
			t.Fatalf("second registration: %v", err)
		}
		if !s.BackupEligible || !s.BackupState {
			t.Errorf("synced credential flags = %+v", s)
		}

		res, err := h.login("flow-3", device)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if res.User.ID != u.ID || !bytes.Equal(res.Credential.ID, device.cred.ID) || res.CrossDevice {
			t.Errorf("result = %+v", res)
		}
		if !slices.Equal(res.AMR, []string{"hwk", "user", "mfa"}) {
			t.Errorf("AMR = %v", res.AMR)
		}
		stored, err := h.store.CredentialByID(h.ctx, device.cred.ID)
		if err != nil {
			t.Fatalf("CredentialByID: %v", err)
		}
		if stored.LastUsedAt == nil || stored.CloneWarning {
			t.Errorf("after login: %+v", stored)
		}

		options, resp := h.assertion("flow-4", synced, relyingParty, "cross-platform")
		res, err = h.svc.FinishLogin(h.ctx, "flow-4", resp)
		if err != nil {
			t.Fatalf("cross-device login: %v", err)
		}
		h.assertGone(challengeOf(t, options))
		if !res.CrossDevice || !slices.Equal(res.AMR, []string{"swk", "user", "mfa"}) {
			t.Errorf("cross-device result: CrossDevice=%v AMR=%v", res.CrossDevice, res.AMR)
		}

		_, resp = h.assertion("flow-5", device, relyingParty, "platform")
		if res, err = h.svc.FinishLogin(h.ctx, "flow-5", resp); err != nil || res.CrossDevice {
			t.Fatalf("platform login: %v, %+v", err, res)
		}
	})
}

func TestSignCounter(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-count", "loan0003")
		d := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		d.cred.Counter = 1
		h.mustRegister(u, d)

		d.cred.Counter = 5
		if _, err := h.login("flow-a", d); err != nil {
			t.Fatalf("login with counter 5: %v", err)
		}
		c, _ := h.store.CredentialByID(h.ctx, d.cred.ID)
		if c.SignCount != 5 || c.CloneWarning {
			t.Fatalf("after counter 5: count %d clone %v", c.SignCount, c.CloneWarning)
		}

		// A regression still signs in (policy), but flags the credential.
		d.cred.Counter = 3
		res, err := h.login("flow-b", d)
		if err != nil {
			t.Fatalf("login with regressed counter must still succeed: %v", err)
		}
		c, _ = h.store.CredentialByID(h.ctx, d.cred.ID)
		if !c.CloneWarning || !res.Credential.CloneWarning || c.SignCount != 5 {
			t.Fatalf("after regression: count %d clone %v", c.SignCount, c.CloneWarning)
		}
	})
}

func TestLoginRejections(t *testing.T) {
	cases := []struct {
		name string
		// attack alters the prepared ceremony; it returns the flow to
		// finish in and the response to post.
		attack func(h *harness, u, other *storage.User, d, od *device) (flow string, options json.RawMessage, resp []byte)
		want   error
	}{
		{"foreign origin", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			rp := relyingParty
			rp.Origin = "https://evil.example"
			o, r := h.assertion("f", d, rp, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"wrong rpIdHash", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			rp := relyingParty
			rp.ID = "evil.example"
			o, r := h.assertion("f", d, rp, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"UV flag missing", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			d.auth.Options.UserNotVerified = true
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"UP flag missing", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			d.auth.Options.UserNotPresent = true
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"another user's handle", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			// The other user's passkey signs validly, but claims to be u.
			od.auth.Options.UserHandle = []byte(u.ID)
			o, r := h.assertion("f", od, relyingParty, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"BE flag mismatch", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			d.auth.Options.BackupEligible = true
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"tampered signature", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			o, r := h.assertion("f", d, relyingParty, "")
			var raw map[string]any
			if err := json.Unmarshal(r, &raw); err != nil {
				h.t.Fatalf("decode: %v", err)
			}
			raw["response"].(map[string]any)["signature"] = base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 70))
			out, _ := json.Marshal(raw)
			return "f", o, out
		}, passkey.ErrVerification},
		{"finished under another flow", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			o, r := h.assertion("flow-begun", d, relyingParty, "")
			return "flow-other", o, r
		}, passkey.ErrWrongFlow},
		{"registration challenge used to log in", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			o, err := h.svc.BeginRegistration(h.ctx, u, "f")
			if err != nil {
				h.t.Fatalf("BeginRegistration: %v", err)
			}
			ao := &virtualwebauthn.AssertionOptions{Challenge: mustDecode(h.t, challengeOf(h.t, o)), RelyingPartyID: rpID}
			return "f", o, []byte(virtualwebauthn.CreateAssertionResponse(relyingParty, d.auth, d.cred, *ao))
		}, passkey.ErrWrongFlow},
		{"expired challenge", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			o, r := h.assertion("f", d, relyingParty, "")
			ch := challengeOf(h.t, o)
			ws, err := h.store.TakeWebAuthnSession(h.ctx, ch, time.Now())
			if err != nil {
				h.t.Fatalf("take: %v", err)
			}
			ws.CreatedAt = time.Now().Add(-10 * time.Minute).UTC()
			ws.ExpiresAt = time.Now().Add(-5 * time.Minute).UTC()
			if err := h.store.SaveWebAuthnSession(h.ctx, ws); err != nil {
				h.t.Fatalf("save: %v", err)
			}
			return "f", o, r
		}, passkey.ErrCeremonyExpired},
		{"unknown challenge", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			ao := &virtualwebauthn.AssertionOptions{Challenge: bytes.Repeat([]byte{7}, 32), RelyingPartyID: rpID}
			o := json.RawMessage(`{"publicKey":{"challenge":"` + base64.RawURLEncoding.EncodeToString(ao.Challenge) + `"}}`)
			return "f", o, []byte(virtualwebauthn.CreateAssertionResponse(relyingParty, d.auth, d.cred, *ao))
		}, passkey.ErrCeremonyExpired},
		{"deleted credential", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			if err := h.store.DeleteCredential(h.ctx, u.ID, d.cred.ID); err != nil {
				h.t.Fatalf("DeleteCredential: %v", err)
			}
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrUnknownCredential},
		{"locked user", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			if err := h.store.SetUserLocked(h.ctx, u.ID, true); err != nil {
				h.t.Fatalf("SetUserLocked: %v", err)
			}
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrLocked},
		{"malformed user handle", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			d.auth.Options.UserHandle = []byte{0xff, 0x00, 'u'}
			o, r := h.assertion("f", d, relyingParty, "")
			return "f", o, r
		}, passkey.ErrVerification},
		{"NUL in the challenge", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			o, r := h.assertion("f", d, relyingParty, "")
			var raw map[string]any
			if err := json.Unmarshal(r, &raw); err != nil {
				h.t.Fatalf("decode: %v", err)
			}
			cd := `{"type":"webauthn.get","challenge":"\u0000` + challengeOf(h.t, o) + `","origin":"` + rpOrigin + `"}`
			raw["response"].(map[string]any)["clientDataJSON"] = base64.RawURLEncoding.EncodeToString([]byte(cd))
			out, _ := json.Marshal(raw)
			// The real challenge stays unused; take it so the check below holds.
			if _, err := h.store.TakeWebAuthnSession(h.ctx, challengeOf(h.t, o), time.Now()); err != nil {
				h.t.Fatalf("take: %v", err)
			}
			return "f", o, out
		}, passkey.ErrVerification},
		{"garbage", func(h *harness, u, other *storage.User, d, od *device) (string, json.RawMessage, []byte) {
			return "f", nil, []byte(`{"id":"x","type":"public-key","response":{}}`)
		}, passkey.ErrVerification},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachStore(t, func(h *harness) {
				t := h.t
				u := h.user("u-victim", "loan0004")
				other := h.user("u-other", "loan0005")
				d := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
				od := newDevice(other, virtualwebauthn.AuthenticatorOptions{})
				h.mustRegister(u, d)
				h.mustRegister(other, od)
				before, _ := h.store.CredentialByID(h.ctx, d.cred.ID)

				flow, options, resp := tc.attack(h, u, other, d, od)
				res, err := h.svc.FinishLogin(h.ctx, flow, resp)
				if res != nil {
					t.Fatalf("ceremony succeeded: %+v", res)
				}
				wantErr(t, err, tc.want)
				if options != nil {
					h.assertGone(challengeOf(t, options))
				}
				if before != nil {
					after, err := h.store.CredentialByID(h.ctx, d.cred.ID)
					if err == nil && (after.LastUsedAt != nil || after.SignCount != before.SignCount) {
						t.Errorf("failed login wrote back credential use: %+v", after)
					}
				}
				if errors.Is(tc.want, passkey.ErrUnknownCredential) {
					var uc *passkey.UnknownCredentialError
					if !errors.As(err, &uc) || uc.CredentialID != base64.RawURLEncoding.EncodeToString(d.cred.ID) || uc.RPID != rpID {
						t.Errorf("unknown credential error %#v does not carry the credential ID", err)
					}
				}
			})
		})
	}
}

func TestReplayedAssertion(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-replay", "loan0006")
		d := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		h.mustRegister(u, d)
		_, resp := h.assertion("f", d, relyingParty, "")
		if _, err := h.svc.FinishLogin(h.ctx, "f", resp); err != nil {
			t.Fatalf("first finish: %v", err)
		}
		res, err := h.svc.FinishLogin(h.ctx, "f", resp)
		if res != nil {
			t.Fatalf("replay succeeded")
		}
		wantErr(t, err, passkey.ErrCeremonyExpired)
	})
}

func TestRegistrationRejections(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-reg", "loan0007")
		other := h.user("u-reg-other", "loan0008")
		d := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		h.mustRegister(u, d)

		// The same authenticator credential again, for the same user and
		// for someone else.
		_, err := h.register(u, "f1", d, false)
		wantErr(t, err, passkey.ErrAlreadyRegistered)
		_, err = h.register(other, "f2", d, false)
		wantErr(t, err, passkey.ErrAlreadyRegistered)

		// A first-passkey enrolment for a user who has one.
		_, err = h.register(u, "f3", newDevice(u, virtualwebauthn.AuthenticatorOptions{}), true)
		wantErr(t, err, passkey.ErrHasPasskey)

		// UV missing at registration.
		nouv := newDevice(u, virtualwebauthn.AuthenticatorOptions{UserNotVerified: true})
		_, err = h.register(u, "f4", nouv, false)
		wantErr(t, err, passkey.ErrVerification)

		// Foreign origin.
		options, att := h.attest(u, "f5", newDevice(u, virtualwebauthn.AuthenticatorOptions{}), virtualwebauthn.RelyingParty{ID: rpID, Origin: "https://evil.example"})
		_, err = h.svc.FinishRegistration(h.ctx, u, "f5", att, false)
		wantErr(t, err, passkey.ErrVerification)
		h.assertGone(challengeOf(t, options))

		// Another flow, and another user than the one the ceremony was begun for.
		options, att = h.attest(u, "f6", newDevice(u, virtualwebauthn.AuthenticatorOptions{}), relyingParty)
		_, err = h.svc.FinishRegistration(h.ctx, u, "f7", att, false)
		wantErr(t, err, passkey.ErrWrongFlow)
		h.assertGone(challengeOf(t, options))
		options, att = h.attest(u, "f8", newDevice(u, virtualwebauthn.AuthenticatorOptions{}), relyingParty)
		_, err = h.svc.FinishRegistration(h.ctx, other, "f8", att, false)
		wantErr(t, err, passkey.ErrWrongFlow)
		h.assertGone(challengeOf(t, options))

		// A login challenge cannot finish a registration.
		lo, err := h.svc.BeginLogin(h.ctx, "f9", false)
		if err != nil {
			t.Fatalf("BeginLogin: %v", err)
		}
		ao := virtualwebauthn.AttestationOptions{Challenge: mustDecode(t, challengeOf(t, lo)), RelyingPartyID: rpID}
		fresh := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
		_, err = h.svc.FinishRegistration(h.ctx, u, "f9", []byte(virtualwebauthn.CreateAttestationResponse(relyingParty, fresh.auth, fresh.cred, ao)), false)
		wantErr(t, err, passkey.ErrWrongFlow)
		h.assertGone(challengeOf(t, lo))

		// None of the failures stored anything.
		creds, err := h.store.CredentialsByUser(h.ctx, u.ID)
		if err != nil || len(creds) != 1 {
			t.Fatalf("credentials of %s = %d (%v), want 1", u.ID, len(creds), err)
		}
		if n, _ := h.store.CountCredentials(h.ctx, other.ID); n != 0 {
			t.Fatalf("other user has %d credentials", n)
		}
	})
}

var (
	zeroAAGUID   = make([]byte, 16)
	icloudAAGUID = uuid.MustParse("fbfc3007-154e-4ecc-8c0b-6e020557d7bd")
	googleAAGUID = uuid.MustParse("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4")
	titanAAGUID  = uuid.MustParse("42b4fb4a-2866-43b2-9bf7-6c6669c2e5d3")
	bwAAGUID     = uuid.MustParse("d548826e-79b4-db40-a3d8-11116f7e8349")
)

func TestProviderOf(t *testing.T) {
	phone := []string{"hybrid", "internal"}
	for _, c := range []struct {
		what       string
		aaguid     []byte
		transports []string
		want       passkey.Provider
	}{
		{"iCloud", icloudAAGUID[:], phone, passkey.Provider{Key: "provider.icloud"}},
		{"Google", googleAAGUID[:], phone, passkey.Provider{Key: "provider.google"}},
		{"a password manager", bwAAGUID[:], []string{"internal"}, passkey.Provider{Product: "Bitwarden"}},
		{"a known security key", titanAAGUID[:], []string{"nfc", "usb"}, passkey.Provider{Key: "provider.security_key", Product: "Google Titan Security Key v2"}},
		{"an unknown security key", zeroAAGUID, []string{"usb"}, passkey.Provider{Key: "provider.security_key"}},
		{"unknown on this device", zeroAAGUID, []string{"internal"}, passkey.Provider{}},
		{"unknown, no transports", zeroAAGUID, nil, passkey.Provider{}},
	} {
		if got := passkey.ProviderOf(c.aaguid, c.transports); got != c.want {
			t.Errorf("%s: ProviderOf = %+v, want %+v", c.what, got, c.want)
		}
	}
}

func TestDefaultName(t *testing.T) {
	created := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC) // 26th in Japan
	for _, c := range []struct {
		what       string
		aaguid     []byte
		transports []string
		taken      []string
		want       string
	}{
		{"unknown", zeroAAGUID, []string{"internal"}, nil, "パスキー (2026/11/26)"},
		{"unknown, second that day", zeroAAGUID, []string{"internal"}, []string{"パスキー (2026/11/26)"}, "パスキー (2026/11/26) 2"},
		{"unknown, third that day", zeroAAGUID, nil, []string{"パスキー (2026/11/26)", "パスキー (2026/11/26) 2"}, "パスキー (2026/11/26) 3"},
		{"unknown, the first renamed", zeroAAGUID, nil, []string{"会社のPC"}, "パスキー (2026/11/26)"},
		{"iCloud", icloudAAGUID[:], []string{"internal", "hybrid"}, nil, "iCloud キーチェーン"},
		{"a second iCloud", icloudAAGUID[:], nil, []string{"iCloud キーチェーン"}, "iCloud キーチェーン 2"},
		{"Google", googleAAGUID[:], nil, nil, "Google パスワードマネージャー"},
		{"a known security key", titanAAGUID[:], []string{"usb"}, nil, "Google Titan Security Key v2"},
		{"an unknown security key", zeroAAGUID, []string{"nfc"}, nil, "セキュリティキー"},
	} {
		if got := passkey.DefaultName(c.aaguid, c.transports, created, c.taken); got != c.want {
			t.Errorf("%s: DefaultName = %q, want %q", c.what, got, c.want)
		}
	}
	// The list's longest names leave room for a number within S8's 50.
	long := uuid.MustParse("5ca1ab1e-fa57-1337-f1d0-a117371ca702")
	name := passkey.DefaultName(long[:], nil, created, nil)
	again := passkey.DefaultName(long[:], nil, created, []string{name})
	if n := utf8.RuneCountInString(again); n > 50 || !strings.HasPrefix(again, name) || again == name {
		t.Errorf("long names: %q then %q (%d characters)", name, again, n)
	}
}

// Registration names the passkey from its AAGUID, and two passkeys with no
// AAGUID added the same day get different names.
func TestRegistrationNamesPasskeysApart(t *testing.T) {
	eachStore(t, func(h *harness) {
		t := h.t
		u := h.user("u-names", "loan0042")
		var names []string
		var created time.Time
		for i, id := range [][]byte{zeroAAGUID, zeroAAGUID, googleAAGUID[:]} {
			d := newDevice(u, virtualwebauthn.AuthenticatorOptions{})
			copy(d.auth.Aaguid[:], id)
			c, err := h.register(u, fmt.Sprintf("flow-names-%d", i), d, false)
			if err != nil {
				t.Fatalf("registration %d: %v", i, err)
			}
			names = append(names, c.Name)
			if i == 0 {
				created = c.CreatedAt
			}
		}
		today := created.In(time.FixedZone("JST", 9*60*60)).Format("2006/01/02")
		want := []string{"パスキー (" + today + ")", "パスキー (" + today + ") 2", "Google パスワードマネージャー"}
		if !slices.Equal(names, want) {
			t.Errorf("names = %q, want %q", names, want)
		}
	})
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return b
}
