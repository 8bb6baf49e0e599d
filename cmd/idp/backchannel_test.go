package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/storage/storagetest"
)

// bankReceiver is the bank's backchannel_logout_uri: it keeps the logout
// tokens whose signature verifies against the IdP's JWKS (zitadel's RP key
// set) and whose typ, iss and aud are right; anything else is a test
// failure.
type bankReceiver struct {
	t      *testing.T
	issuer string
	keys   oidc.KeySet
	mu     sync.Mutex
	got    []oidc.LogoutTokenClaims
	bad    []string
}

func (b *bankReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw := r.PostFormValue("logout_token")
	fail := func(why string) {
		b.mu.Lock()
		b.bad = append(b.bad, why)
		b.mu.Unlock()
		http.Error(w, why, http.StatusBadRequest)
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		fail("parse: " + err.Error())
		return
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		fail("typ " + typ)
		return
	}
	payload, err := b.keys.VerifySignature(r.Context(), jws)
	if err != nil {
		fail("signature: " + err.Error())
		return
	}
	var c oidc.LogoutTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Issuer != b.issuer || !slices.Equal([]string(c.Audience), []string{bankClientID}) {
		fail("claims: " + string(payload))
		return
	}
	b.mu.Lock()
	b.got = append(b.got, c)
	b.mu.Unlock()
}

// await waits (on the running server's worker, not a timer the test
// asserts) until the bank holds a logout token for sid.
func (b *bankReceiver) await(sid string) oidc.LogoutTokenClaims {
	b.t.Helper()
	for range 200 {
		b.mu.Lock()
		if len(b.bad) > 0 {
			b.t.Fatalf("the bank refused logout tokens: %v", b.bad)
		}
		for _, c := range b.got {
			if c.SessionID == sid {
				b.mu.Unlock()
				return c
			}
		}
		b.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	b.t.Fatalf("no logout token for sid %s reached the bank", sid)
	return oidc.LogoutTokenClaims{}
}

// Every staff action that ends a customer's sessions tells the bank over
// the back channel, through the running `idp serve` worker: a signed
// logout token whose sid is the one in the ID token the bank got at
// sign-in. The bystander's session is not named.
func TestStaffActionsSendBackchannelLogout(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		bank := &bankReceiver{t: t}
		srv := httptest.NewServer(bank)
		t.Cleanup(srv.Close)
		st, c := stackWithBank(t, flavor, srv.URL+"/backchannel-logout")
		bank.issuer = st.IdPURL
		bank.keys = rp.NewRemoteKeySet(http.DefaultClient, st.IdPURL+"/keys")
		sidOf := func(cu *customer) string {
			jws, err := jose.ParseSignedCompact(cu.tokens.IDToken, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
			if err != nil {
				t.Fatalf("ID token: %v", err)
			}
			payload, err := bank.keys.VerifySignature(t.Context(), jws)
			if err != nil {
				t.Fatalf("ID token signature: %v", err)
			}
			var id oidc.IDTokenClaims
			if err := json.Unmarshal(payload, &id); err != nil || id.SessionID == "" {
				t.Fatalf("ID token without sid: %s", payload)
			}
			return id.SessionID
		}
		bystander := newCustomer(t, st, c, "bystander")
		bystander.enrol()
		bystanderSID := sidOf(bystander)
		for _, args := range [][]string{
			{"users", "delete-passkeys"}, {"users", "lock"}, {"users", "reset-password"}, {"users", "delete", "--yes"},
		} {
			loginID := strings.ReplaceAll(strings.Join(args[1:], ""), "-", "")
			cu := newCustomer(t, st, c, loginID)
			cu.enrol()
			sid := sidOf(cu)
			c.ok(append(slices.Clone(args), loginID)...)
			got := bank.await(sid)
			if got.Subject != cu.user.ID || got.JWTID == "" {
				t.Errorf("idp %v: logout token sub %q jti %q", args, got.Subject, got.JWTID)
			}
		}
		bank.mu.Lock()
		defer bank.mu.Unlock()
		for _, c := range bank.got {
			if c.SessionID == bystanderSID {
				t.Errorf("the bystander's session was logged out")
			}
		}
	})
}
