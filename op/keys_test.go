package op_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	return sig.Signatures[0].Header.KeyID
}

func (e *env) jwksKids() []string {
	e.t.Helper()
	resp := e.get(e.issuer + "/keys")
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		e.t.Fatalf("jwks: %v", err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

// fakeClock is the time of a provider and of its store in the tests that
// would otherwise wait for a key to come due.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// newClockedEnv is newEnv with a provider and store that share one fake
// clock, starting at the present (to the microsecond the databases keep).
func newClockedEnv(t *testing.T, store storage.Store, clock *fakeClock, mutate func(*op.Config)) *env {
	t.Helper()
	return newEnvOn(t, store, func(c *op.Config) {
		c.Clock = clock.Now
		if mutate != nil {
			mutate(c)
		}
	})
}

func startClock() *fakeClock {
	return &fakeClock{now: time.Now().UTC().Truncate(time.Microsecond)}
}

func TestKeyRotationWhileTokensAreLive(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		clock := startClock()
		e := newClockedEnv(t, storagetest.New(t, flavor).WithClock(clock.Now), clock, func(c *op.Config) {
			c.SigningAlgorithm = "ES256"
		})
		old, params := e.login("openid")
		oldKid := kidOf(t, old.IDToken)

		// A routine rotation does nothing while the key is far from retiring.
		if err := e.p.RotateKeys(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		if kids := e.jwksKids(); len(kids) != 1 {
			t.Fatalf("unforced rotation added a key: %v", kids)
		}
		if err := e.p.RotateKeys(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		kids := e.jwksKids()
		if len(kids) != 2 {
			t.Fatalf("after forced rotation the JWKS has %v", kids)
		}
		// Published but not yet signing.
		early, _ := e.login("openid")
		if kidOf(t, early.IDToken) != oldKid {
			t.Errorf("the new key signed before its publish delay")
		}
		// A second forced rotation while a successor is pending adds nothing.
		if err := e.p.RotateKeys(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if n := len(e.jwksKids()); n != 2 {
			t.Errorf("second forced rotation: %d keys", n)
		}

		clock.Advance(op.DefaultKeyPublishDelay - time.Second)
		late, _ := e.login("openid")
		if kidOf(t, late.IDToken) != oldKid {
			t.Errorf("the new key signed a second before its publish delay ended")
		}
		clock.Advance(time.Second)
		fresh, freshParams := e.login("openid")
		newKid := kidOf(t, fresh.IDToken)
		if newKid == oldKid {
			t.Fatalf("new tokens still signed with the old key %s once the publish delay passed", oldKid)
		}
		// Both verify against the published JWKS.
		e.verifyIDToken(old.IDToken, params.Get("nonce"))
		e.verifyIDToken(fresh.IDToken, freshParams.Get("nonce"))
		if kids := e.jwksKids(); len(kids) != 2 {
			t.Errorf("JWKS after switch-over: %v (old key must stay until its tokens expire)", kids)
		}
	})
}

func TestTwoProvidersOnOneDatabaseMakeOneKey(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		dsn := storagetest.DSN(t, flavor)
		a := newEnvOn(t, storagetest.Open(t, dsn), nil)
		b := newEnvOn(t, storagetest.Open(t, dsn), func(c *op.Config) { c.CryptoKey = a.cryptoKey() })
		ctx := context.Background()
		keys, err := a.store.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("two providers created %d keys", len(keys))
		}

		// Concurrent start-ups and forced rotations on both replicas.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for _, e := range []*env{a, b, a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- e.p.EnsureKeys(ctx)
				errs <- e.p.RotateKeys(ctx, true)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		keys, err = a.store.ListSigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		active, pending := 0, 0
		for _, k := range keys {
			switch {
			case k.ActiveFrom.After(now):
				pending++
			case now.Before(k.RetireAt):
				active++
			}
		}
		if active != 1 || pending != 1 {
			t.Errorf("after concurrent rotations: %d active, %d pending keys (want 1 and 1)", active, pending)
		}
		// A token signed on one replica verifies on the other.
		// A token signed on one replica is verifiable with the other's JWKS.
		tr, _ := a.login("openid")
		kid := kidOf(t, tr.IDToken)
		found := false
		for _, k := range b.jwksKids() {
			found = found || k == kid
		}
		if !found {
			t.Errorf("replica b does not publish the key %s replica a signs with", kid)
		}
	})
}

// rotationTap is a real store that hands the outcome of every key
// rotation pass to passes once armed, and waits until the test takes it:
// the test moves the clock between passes instead of sleeping through them.
type rotationTap struct {
	storage.Store
	passes chan error
}

func (s *rotationTap) RotateSigningKeys(ctx context.Context, plan func([]storage.SigningKey) ([]storage.SigningKey, []string, error)) error {
	err := s.Store.RotateSigningKeys(ctx, plan)
	if s.passes != nil {
		select {
		case s.passes <- err:
		case <-ctx.Done():
		}
	}
	return err
}

func TestRunKeyRotationHandsOverSeamlessly(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		clock := startClock()
		tap := &rotationTap{Store: storagetest.New(t, flavor).WithClock(clock.Now)}
		e := newClockedEnv(t, tap, clock, func(c *op.Config) { c.SigningAlgorithm = "ES256" })
		tap.passes = make(chan error)
		pass := func() {
			t.Helper()
			select {
			case err := <-tap.passes:
				if err != nil {
					t.Fatalf("rotation pass: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("RunKeyRotation made no rotation pass")
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			e.p.RunKeyRotation(ctx, 10*time.Millisecond)
			close(done)
		}()
		pass()
		if keys, err := e.store.ListSigningKeys(context.Background()); err != nil || len(keys) != 1 {
			t.Fatalf("a pass far from retirement left %d keys (%v), want 1", len(keys), err)
		}

		// A minute into the publish delay before the key retires: the next
		// pass that reads the moved clock must publish a successor. The
		// pass after the one under way when the clock moved surely does.
		const overdue = time.Minute
		clock.Advance(op.DefaultKeyRotationPeriod - op.DefaultKeyPublishDelay + overdue)
		pass()
		pass()
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("RunKeyRotation did not stop with its context")
		}
		keys, err := e.store.ListSigningKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 2 {
			t.Fatalf("%d keys after the current one neared retirement, want 2", len(keys))
		}
		first, next := keys[0], keys[1]
		if next.ActiveFrom.Before(first.ActiveFrom) {
			first, next = next, first
		}
		if !next.ActiveFrom.Equal(first.RetireAt) {
			t.Errorf("successor active from %v, predecessor retires %v: want no gap", next.ActiveFrom, first.RetireAt)
		}
		if published, want := next.ActiveFrom.Sub(next.CreatedAt), op.DefaultKeyPublishDelay-overdue; published != want {
			t.Errorf("successor published %v before it signs, want %v (the publish delay less the time the rotation was overdue)", published, want)
		}
	})
}

// Switching signing_algorithm must not leave discovery denying the
// algorithm that still signs, nor keep the old one signing for a whole
// rotation period.
func TestSigningAlgorithmChange(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		dsn := storagetest.DSN(t, flavor)
		rs := newEnvOn(t, storagetest.Open(t, dsn), nil) // RS256, the default
		es := newEnvOn(t, storagetest.Open(t, dsn), func(c *op.Config) {
			c.CryptoKey = rs.cryptoKey()
			c.SigningAlgorithm = "ES256"
		})
		tr, _ := es.login("openid")
		if alg := algOf(t, tr.IDToken); alg != "RS256" {
			t.Fatalf("before rotation the ES256 replica signed with %s, want the still active RS256 key", alg)
		}
		resp := es.get(es.issuer + "/.well-known/openid-configuration")
		var doc struct {
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		err := json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if err != nil || !slices.Contains(doc.Algs, "RS256") || !slices.Contains(doc.Algs, "ES256") {
			t.Errorf("discovery lists %v (%v), want RS256 and ES256", doc.Algs, err)
		}
		// A routine rotation, far from retirement, still publishes an ES256 successor.
		if err := es.p.RotateKeys(context.Background(), false); err != nil {
			t.Fatal(err)
		}
		keys, err := es.store.ListSigningKeys(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var algs []string
		for _, k := range keys {
			algs = append(algs, k.Algorithm)
		}
		if len(keys) != 2 || !slices.Contains(algs, "ES256") {
			t.Errorf("after the algorithm change the keys are %v, want an ES256 successor", algs)
		}
	})
}

func algOf(t *testing.T, raw string) string {
	t.Helper()
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("parse JWT: %v", err)
	}
	return sig.Signatures[0].Header.Algorithm
}
