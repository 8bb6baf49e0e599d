package op_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// receiver is a relying party's backchannel_logout_uri: it validates every
// logout token as Back-Channel Logout 1.0 section 2.6 says, against the
// issuer's published keys (zitadel's RP key set), and answers with the
// status status() names.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string
	status func() int
	keys   oidc.KeySet

	mu     sync.Mutex
	got    []*oidc.LogoutTokenClaims
	errs   []error
	posted atomic.Int32
}

func newReceiver(t *testing.T, status func() int) *receiver {
	rc := &receiver{t: t, status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) uri() string { return rc.srv.URL + "/backchannel-logout" }

// attach points the receiver at the provider once it runs.
func (rc *receiver) attach(issuer string) {
	rc.issuer = issuer
	rc.keys = rp.NewRemoteKeySet(http.DefaultClient, issuer+"/keys")
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.posted.Add(1)
	claims, err := rc.validate(r)
	rc.mu.Lock()
	if err != nil {
		rc.errs = append(rc.errs, err)
	} else {
		rc.got = append(rc.got, claims)
	}
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(rc.status())
}

func (rc *receiver) validate(r *http.Request) (*oidc.LogoutTokenClaims, error) {
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		return nil, fmt.Errorf("content type %q", ct)
	}
	raw := r.PostFormValue("logout_token")
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("typ %q, want logout+jwt", typ)
	}
	payload, err := rc.keys.VerifySignature(r.Context(), jws)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var claims oidc.LogoutTokenClaims
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	now := time.Now()
	switch {
	case claims.Issuer != rc.issuer:
		return nil, fmt.Errorf("iss %q", claims.Issuer)
	case !slices.Equal([]string(claims.Audience), []string{webClientID}):
		return nil, fmt.Errorf("aud %v", claims.Audience)
	case claims.IssuedAt.AsTime().After(now.Add(time.Minute)) || claims.IssuedAt.AsTime().Before(now.Add(-5*time.Minute)):
		return nil, fmt.Errorf("iat %v", claims.IssuedAt.AsTime())
	case !claims.Expiration.AsTime().After(now):
		return nil, fmt.Errorf("expired at %v", claims.Expiration.AsTime())
	case claims.JWTID == "":
		return nil, errors.New("no jti")
	case claims.Subject == "" && claims.SessionID == "":
		return nil, errors.New("neither sub nor sid")
	}
	event, ok := claims.Events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
	if !ok || len(claims.Events) != 1 || len(event) != 0 {
		return nil, fmt.Errorf("events %v", claims.Events)
	}
	if _, ok := claims.Claims["nonce"]; ok {
		return nil, errors.New("a nonce in a logout token")
	}
	return &claims, nil
}

func (rc *receiver) tokens() []*oidc.LogoutTokenClaims {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.errs) > 0 {
		rc.t.Fatalf("the relying party refused logout tokens: %v", rc.errs)
	}
	return slices.Clone(rc.got)
}

// clock is the provider's clock, moved by tests instead of sleeping.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// backchannelEnv is a provider whose web client registered rc, with its
// own clock and metrics.
func backchannelEnv(t *testing.T, flavor string, rc *receiver, mutate func(*op.Config)) (*env, *clock, *prometheus.Registry) {
	clk := &clock{}
	reg := prometheus.NewRegistry()
	e := newEnv(t, flavor, func(c *op.Config) {
		c.Clients[0].BackchannelLogoutURI = rc.uri()
		c.Clients[0].BackchannelLogoutSessionRequired = true
		c.Clock = clk.now
		c.Metrics = reg
		if mutate != nil {
			mutate(c)
		}
	})
	rc.attach(e.issuer)
	return e, clk, reg
}

func outcomes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "idp_backchannel_logouts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func deliver(t *testing.T, e *env) int {
	t.Helper()
	n, err := e.p.DeliverBackchannelLogouts(t.Context())
	if err != nil {
		t.Fatalf("deliver: %v", err)
	}
	return n
}

// The logout token a relying party receives when the session that signed
// in to it ends is valid by the spec's section 2.6 and names the sid of
// the ID token it got from that session; the sid is not the session's
// secret row key. Discovery advertises it.
func TestBackchannelLogoutReachesTheRelyingPartyWithTheIDTokensSid(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		rc := newReceiver(t, func() int { return http.StatusOK })
		e, _, reg := backchannelEnv(t, flavor, rc, nil)

		resp := e.get(e.issuer + "/.well-known/openid-configuration")
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if doc["backchannel_logout_supported"] != true || doc["backchannel_logout_session_supported"] != true {
			t.Errorf("discovery: backchannel_logout_supported %v, session %v", doc["backchannel_logout_supported"], doc["backchannel_logout_session_supported"])
		}

		tr, params := e.login("openid offline_access")
		id := e.verifyIDToken(tr.IDToken, params.Get("nonce"))
		se := e.lastSession.Load()
		if id.SessionID == "" || id.SessionID != se.SID || id.SessionID == se.ID || strings.Contains(tr.IDToken, se.ID) {
			t.Fatalf("ID token sid %q: want the session's public sid %q, never its row key", id.SessionID, se.SID)
		}
		if refreshed := e.refresh(tr.RefreshToken); e.verifyIDToken(refreshed.IDToken, "").SessionID != se.SID {
			t.Errorf("a refreshed ID token lost the sid")
		}

		if n := deliver(t, e); n != 0 {
			t.Fatalf("delivered %d before any session ended", n)
		}
		if err := e.store.DeleteSession(t.Context(), se.ID); err != nil {
			t.Fatal(err)
		}
		if n := deliver(t, e); n != 1 {
			t.Fatalf("claimed %d logouts, want 1", n)
		}
		got := rc.tokens()
		if len(got) != 1 {
			t.Fatalf("the relying party got %d logout tokens", len(got))
		}
		if got[0].SessionID != id.SessionID || got[0].Subject != id.Subject {
			t.Errorf("logout token sid %q sub %q, want the ID token's %q %q", got[0].SessionID, got[0].Subject, id.SessionID, id.Subject)
		}
		if n := deliver(t, e); n != 0 || rc.posted.Load() != 1 {
			t.Errorf("after delivery: %d claimed again, %d posts", n, rc.posted.Load())
		}
		if o := outcomes(t, reg); o["delivered"] != 1 || o["retried"] != 0 {
			t.Errorf("metrics %v", o)
		}
	})
}

// A relying party answering 500 gets the same logout (same jti) again
// after the backoff, not before; one never reachable is given up at the
// deadline, counted, audited, and its row goes.
func TestBackchannelLogoutRetriesWithBackoffUntilTheDeadline(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		var fail atomic.Bool
		fail.Store(true)
		rc := newReceiver(t, func() int {
			if fail.Load() {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		e, clk, reg := backchannelEnv(t, flavor, rc, func(c *op.Config) { c.BackchannelLogout.Deadline = time.Minute })
		ctx := t.Context()

		e.login("openid")
		if err := e.store.DeleteSession(ctx, e.lastSession.Load().ID); err != nil {
			t.Fatal(err)
		}
		if n := deliver(t, e); n != 1 {
			t.Fatalf("first attempt: claimed %d", n)
		}
		clk.advance(9 * time.Second)
		if n := deliver(t, e); n != 0 {
			t.Fatalf("retried before the backoff: claimed %d", n)
		}
		clk.advance(time.Second)
		fail.Store(false)
		if n := deliver(t, e); n != 1 {
			t.Fatalf("second attempt: claimed %d", n)
		}
		got := rc.tokens()
		if len(got) != 2 || got[0].JWTID != got[1].JWTID {
			t.Fatalf("want the same logout twice (one jti), got %d tokens", len(got))
		}
		if o := outcomes(t, reg); o["retried"] != 1 || o["delivered"] != 1 {
			t.Errorf("metrics %v", o)
		}

		// Never reachable: attempts at +0, +10s, +30s; the next would be
		// at +70s, past the one-minute deadline.
		fail.Store(true)
		e.login("openid")
		if err := e.store.DeleteSession(ctx, e.lastSession.Load().ID); err != nil {
			t.Fatal(err)
		}
		for i, wait := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
			clk.advance(wait)
			if n := deliver(t, e); n != 1 {
				t.Fatalf("attempt %d: claimed %d", i+1, n)
			}
		}
		clk.advance(time.Hour)
		if n := deliver(t, e); n != 0 {
			t.Fatalf("a logout past its deadline was tried again (%d)", n)
		}
		if o := outcomes(t, reg); o["failed"] != 1 || o["retried"] != 3 {
			t.Errorf("metrics %v", o)
		}
		events, err := e.store.ListAudit(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var failed []storage.AuditEvent
		for _, ev := range events {
			if ev.Type == "backchannel.failed" {
				failed = append(failed, ev)
			}
		}
		if len(failed) != 1 || failed[0].UserID != e.user.ID || failed[0].Detail["client"] != webClientID ||
			failed[0].Detail["attempts"] != "3" || !strings.Contains(failed[0].Detail["reason"], "500") {
			t.Errorf("audit of the given-up logout: %+v", failed)
		}
	})
}

// A relying party that hangs or cannot be reached costs one Timeout of its
// own claim and is retried; the other logouts of the batch are delivered
// meanwhile. The hanging receiver is released by the test, not by a timer.
func TestBackchannelLogoutHangingOrUnreachableRelyingPartyIsRetried(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) })
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURI := dead.URL + "/gone"
		dead.Close()
		rc := newReceiver(t, func() int { return http.StatusOK })
		e, clk, reg := backchannelEnv(t, flavor, rc, func(c *op.Config) {
			c.BackchannelLogout.Timeout = 300 * time.Millisecond
			c.Clients[1].BackchannelLogoutURI = hang.URL + "/bcl"
			c.Clients = append(c.Clients, op.ClientConfig{ID: "dead", Public: true, RedirectURIs: []string{"http://localhost:4000/cb"},
				BackchannelLogoutURI: deadURI})
		})
		ctx := t.Context()
		se := &storage.Session{ID: "s", UserID: e.user.ID, AuthTime: clk.now(), AMR: []string{"pwd"}, ExpiresAt: clk.now().Add(time.Hour)}
		if err := e.store.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{webClientID, spaClientID, "dead"} {
			ar := &storage.AuthRequest{ID: "ar-" + c, ClientID: c, RedirectURI: "x", ResponseType: "code", ExpiresAt: clk.now().Add(time.Hour)}
			if err := e.store.CreateAuthRequest(ctx, ar); err != nil {
				t.Fatal(err)
			}
			if _, err := e.store.CompleteAuthRequest(ctx, ar.ID, storage.Completion{
				UserID: e.user.ID, AuthTime: clk.now(), AMR: []string{"pwd"}, SID: se.SID}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.store.DeleteSession(ctx, se.ID); err != nil {
			t.Fatal(err)
		}
		if n := deliver(t, e); n != 3 {
			t.Fatalf("claimed %d, want 3", n)
		}
		if got := rc.tokens(); len(got) != 1 || got[0].SessionID != se.SID {
			t.Fatalf("the reachable relying party got %d tokens", len(got))
		}
		if o := outcomes(t, reg); o["delivered"] != 1 || o["retried"] != 2 {
			t.Errorf("metrics %v", o)
		}
		clk.advance(10 * time.Second)
		if n := deliver(t, e); n != 2 {
			t.Errorf("retry: claimed %d, want the 2 undelivered", n)
		}
	})
}

// 40 sessions ending at once (40 logouts on S8, say) are each delivered
// exactly once, by two replicas draining the queue side by side.
func TestBackchannelLogout40ConcurrentLogoutsAcrossReplicas(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		rc := newReceiver(t, func() int { return http.StatusOK })
		e, _, _ := backchannelEnv(t, flavor, rc, nil)
		sids := map[string]bool{}
		var ids []string
		for range 40 {
			e.login("openid")
			se := e.lastSession.Load()
			sids[se.SID] = true
			ids = append(ids, se.ID)
		}
		var wg sync.WaitGroup
		errs := make([]error, len(ids))
		for i, id := range ids {
			wg.Go(func() { errs[i] = e.store.DeleteSession(context.Background(), id) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		// Another replica: same issuer, key and database.
		second := newEnvOn(t, e.store, func(c *op.Config) {
			c.Issuer, c.CryptoKey = e.issuer, e.cfg.CryptoKey
			c.Clients[0].BackchannelLogoutURI = rc.uri()
		})
		for {
			var a, b int
			wg.Go(func() { a = deliver(t, e) })
			wg.Go(func() { b = deliver(t, second) })
			wg.Wait()
			if a+b == 0 {
				break
			}
		}
		got := rc.tokens()
		seen := map[string]bool{}
		for _, c := range got {
			if seen[c.JWTID] || !sids[c.SessionID] {
				t.Fatalf("logout %s (sid %s) delivered twice or for an unknown session", c.JWTID, c.SessionID)
			}
			seen[c.JWTID] = true
		}
		if len(got) != 40 {
			t.Fatalf("delivered %d logouts, want 40", len(got))
		}
	})
}

// A client without a backchannel_logout_uri is never posted to; its rows
// are dropped and counted.
func TestBackchannelLogoutClientWithoutURIIsDropped(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		rc := newReceiver(t, func() int { return http.StatusOK })
		e, _, reg := backchannelEnv(t, flavor, rc, func(c *op.Config) {
			c.Clients[0].BackchannelLogoutURI = ""
			c.Clients[0].BackchannelLogoutSessionRequired = false
		})
		e.login("openid")
		if err := e.store.DeleteSession(t.Context(), e.lastSession.Load().ID); err != nil {
			t.Fatal(err)
		}
		if n := deliver(t, e); n != 1 || rc.posted.Load() != 0 {
			t.Fatalf("claimed %d, posted %d", n, rc.posted.Load())
		}
		if o := outcomes(t, reg); o["dropped"] != 1 {
			t.Errorf("metrics %v", o)
		}
		if n := deliver(t, e); n != 0 {
			t.Errorf("a dropped logout came back")
		}
	})
}
