package passkey_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/passkey/passkeytest"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

const (
	rpID     = "localhost"
	rpOrigin = "http://localhost:8080"
)

var relyingParty = virtualwebauthn.RelyingParty{ID: rpID, Name: "コムストックローン", Origin: rpOrigin}

// harness is one fresh store with a Service on top of it.
type harness struct {
	t     *testing.T
	ctx   context.Context
	store storage.Store
	svc   *passkey.Service
}

// eachStore runs fn against a fresh migrated store of every flavour.
func eachStore(t *testing.T, fn func(h *harness)) {
	t.Helper()
	storagetest.Each(t, func(t *testing.T, flavor string) {
		store := storagetest.New(t, flavor)
		svc, err := passkey.New(passkey.Config{
			RPID:          rpID,
			RPDisplayName: "コムストックローン",
			Origins:       []string{rpOrigin},
		}, store, slog.New(slog.NewTextHandler(t.Output(), nil)))
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		fn(&harness{t: t, ctx: t.Context(), store: store, svc: svc})
	})
}

func (h *harness) user(id, loginID string) *storage.User {
	h.t.Helper()
	now := time.Now().UTC()
	u := &storage.User{ID: id, LoginID: loginID, Email: loginID + "@example.jp", DisplayName: "山田 太郎",
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA", CreatedAt: now, UpdatedAt: now}
	if err := h.store.CreateUser(h.ctx, u); err != nil {
		h.t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// device is a virtual authenticator holding one passkey of one user.
type device struct {
	auth virtualwebauthn.Authenticator
	cred virtualwebauthn.Credential
}

func newDevice(u *storage.User, opts virtualwebauthn.AuthenticatorOptions) *device {
	opts.UserHandle = []byte(u.ID)
	d := &device{auth: virtualwebauthn.NewAuthenticatorWithOptions(opts), cred: passkeytest.NewCredential()}
	d.auth.AddCredential(d.cred)
	return d
}

// challengeOf extracts the challenge from Begin* output.
func challengeOf(t *testing.T, options json.RawMessage) string {
	t.Helper()
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		t.Fatalf("no challenge in options %s: %v", options, err)
	}
	return o.PublicKey.Challenge
}

// assertGone fails unless the ceremony row for challenge was deleted. It
// asks with a "now" long before any expiry, so an expired-but-present row
// would still be found.
func (h *harness) assertGone(challenge string) {
	h.t.Helper()
	_, err := h.store.TakeWebAuthnSession(h.ctx, challenge, time.Unix(0, 0))
	if !errors.Is(err, storage.ErrNotFound) {
		h.t.Fatalf("webauthn session %s still stored after finish (err=%v)", challenge, err)
	}
}

// beginRegistration returns the options and the attestation a device
// produces for them with rp.
func (h *harness) attest(u *storage.User, flowID string, d *device, rp virtualwebauthn.RelyingParty) (json.RawMessage, []byte) {
	h.t.Helper()
	options, err := h.svc.BeginRegistration(h.ctx, u, flowID)
	if err != nil {
		h.t.Fatalf("BeginRegistration: %v", err)
	}
	ao, err := virtualwebauthn.ParseAttestationOptions(string(options))
	if err != nil {
		h.t.Fatalf("parse attestation options: %v", err)
	}
	return options, []byte(virtualwebauthn.CreateAttestationResponse(rp, d.auth, d.cred, *ao))
}

func (h *harness) register(u *storage.User, flowID string, d *device, onlyIfFirst bool) (*storage.Credential, error) {
	h.t.Helper()
	options, attestation := h.attest(u, flowID, d, relyingParty)
	c, err := h.svc.FinishRegistration(h.ctx, u, flowID, attestation, onlyIfFirst)
	h.assertGone(challengeOf(h.t, options))
	return c, err
}

func (h *harness) mustRegister(u *storage.User, d *device) *storage.Credential {
	h.t.Helper()
	c, err := h.register(u, "flow-reg-"+u.ID, d, false)
	if err != nil {
		h.t.Fatalf("FinishRegistration: %v", err)
	}
	return c
}

// assertion begins a login in flowID and returns the options and the
// device's answer for rp, with the browser's authenticatorAttachment when
// attachment is not empty.
func (h *harness) assertion(flowID string, d *device, rp virtualwebauthn.RelyingParty, attachment string) (json.RawMessage, []byte) {
	h.t.Helper()
	options, err := h.svc.BeginLogin(h.ctx, flowID, false)
	if err != nil {
		h.t.Fatalf("BeginLogin: %v", err)
	}
	ao, err := virtualwebauthn.ParseAssertionOptions(string(options))
	if err != nil {
		h.t.Fatalf("parse assertion options: %v", err)
	}
	resp := []byte(virtualwebauthn.CreateAssertionResponse(rp, d.auth, d.cred, *ao))
	if attachment != "" {
		resp = withField(h.t, resp, "authenticatorAttachment", attachment)
	}
	return options, resp
}

func (h *harness) login(flowID string, d *device) (*passkey.LoginResult, error) {
	h.t.Helper()
	options, resp := h.assertion(flowID, d, relyingParty, "")
	res, err := h.svc.FinishLogin(h.ctx, flowID, resp)
	h.assertGone(challengeOf(h.t, options))
	return res, err
}

func withField(t *testing.T, resp []byte, key string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatalf("decode response: %v", err)
	}
	m[key] = value
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("encode response: %v", err)
	}
	return out
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}
