package op

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/storage"
)

const (
	defaultSecretCheckWait = time.Second
	rateClientAuthFailure  = "client_auth_failure"
	retryAfterBusy         = time.Second
)

type secretOutcome int

const (
	secretOK        secretOutcome = iota
	secretWrong                   // 401 invalid_client
	secretThrottled               // 429, Retry-After: the window
	secretBusy                    // 503 temporarily_unavailable: every check slot taken
)

// secretChecker is the one place a client secret is checked.
type secretChecker struct {
	cfg     Throttle
	store   Store
	log     *slog.Logger
	now     func() time.Time
	clients map[string]*client
	// dummyHash is compared for unknown client IDs, at the highest cost
	// of the configured secrets, so they cost what a wrong secret costs.
	dummyHash []byte
	slots     chan struct{}
	wait      time.Duration
	hook      func() // tests only: runs inside a slot before each comparison
	joined    func() // tests only: runs when a check joins another's

	mu      sync.Mutex
	flights map[flightKey]*flight
}

// flightKey names one check: the client ID as presented and the
// SHA-256 of the secret (the hash compared against follows from the ID).
type flightKey struct {
	id  string
	sum [sha256.Size]byte
}

// flight is a check in progress; done is closed once outcome and err are
// set.
type flight struct {
	done    chan struct{}
	outcome secretOutcome
	err     error
}

func newSecretChecker(cfg Config, store Store, log *slog.Logger, now func() time.Time, clients map[string]*client) (*secretChecker, error) {
	cost := bcrypt.DefaultCost
	found := false
	for _, c := range cfg.Clients {
		if c.Public {
			continue
		}
		if cc, err := bcrypt.Cost([]byte(c.SecretHash)); err == nil && (!found || cc > cost) {
			cost, found = cc, true
		}
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return nil, fmt.Errorf("dummy client secret: %w", err)
	}
	dummy, err := bcrypt.GenerateFromPassword(random, cost)
	if err != nil {
		return nil, fmt.Errorf("dummy client secret hash: %w", err)
	}
	return &secretChecker{
		cfg: cfg.Throttle, store: store, log: log, now: now, clients: clients,
		dummyHash: dummy, slots: make(chan struct{}, cfg.Throttle.MaxConcurrentSecretChecks), wait: defaultSecretCheckWait,
		flights: map[flightKey]*flight{},
	}, nil
}

// throttleKeyClient keys failures by the client ID as presented, known or
// not, so the throttle tells nothing about which IDs exist; input that is
// no storable ID is keyed by its hash.
func throttleKeyClient(id string) string {
	if !storableParam(id) {
		return "client-hash:" + storage.HashSecret(id)
	}
	return "client:" + id
}

type rateSlot struct{ key, id string }

// check verifies secret for client id presented from addr. Past the cache
// of a secret already verified, known and unknown IDs take the same steps:
// two slot reservations, a check slot and one bcrypt comparison (checkOnce).
// Concurrent checks of the same ID and secret share one such check: a
// burst of token requests from a relying party right after start-up (or
// on a replica that has not seen its secret yet) costs one reservation and
// one comparison, not one each, so it neither queues behind bcrypt nor
// fills the per-address limit with its own right secret. Identical guesses
// sent at once are one guess: they learn one answer and count once.
func (c *secretChecker) check(ctx context.Context, addr, id, secret string) (secretOutcome, error) {
	cl := c.clients[id]
	if cl != nil && cl.cfg.Public {
		return secretWrong, nil // nothing to compare; public IDs are no secret
	}
	sum := sha256.Sum256([]byte(secret))
	if cl != nil && cl.remembers(sum) {
		return secretOK, nil
	}
	key := flightKey{id, sum}
	c.mu.Lock()
	f, running := c.flights[key]
	if !running {
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
	}
	c.mu.Unlock()
	if !running {
		func() {
			defer func() {
				c.mu.Lock()
				delete(c.flights, key)
				c.mu.Unlock()
				close(f.done)
			}()
			// Shared: one caller going away must not fail the others.
			f.outcome, f.err = c.checkOnce(context.WithoutCancel(ctx), addr, id, secret, cl, sum)
		}()
	} else {
		if c.joined != nil {
			c.joined()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return secretBusy, nil
		}
	}
	if f.err != nil {
		return 0, f.err
	}
	switch f.outcome {
	case secretBusy:
		c.log.WarnContext(ctx, "client authentication: every check slot busy", "client", id, "ip", addr)
	case secretWrong:
		c.log.InfoContext(ctx, "client authentication failed", "client", id, "ip", addr)
	}
	return f.outcome, nil
}

// checkOnce reserves the throttle slots and compares secret with the
// client's hash (the dummy for an unknown ID) in a check slot.
func (c *secretChecker) checkOnce(ctx context.Context, addr, id, secret string, cl *client, sum [sha256.Size]byte) (secretOutcome, error) {
	hash := c.dummyHash
	if cl != nil {
		hash = []byte(cl.cfg.SecretHash)
	}
	now := c.now()
	since := now.Add(-c.cfg.Window)
	// Slots are spent before the comparison, so concurrent guesses never
	// exceed the limits; the address first, so a throttled address does
	// not use up the client's.
	var taken []rateSlot
	giveBack := func() {
		for _, s := range taken {
			if err := c.store.ReleaseRateEvent(context.WithoutCancel(ctx), rateClientAuthFailure, s.key, s.id); err != nil {
				c.log.ErrorContext(ctx, "client authentication: release throttle slot", "key", s.key, "err", err)
			}
		}
	}
	for _, l := range []struct {
		key   string
		limit int
	}{{"ip:" + addr, c.cfg.MaxSecretFailuresPerAddress}, {throttleKeyClient(id), c.cfg.MaxSecretFailuresPerClient}} {
		slot, ok, err := c.store.ReserveRateEvent(ctx, rateClientAuthFailure, l.key, now, since, l.limit)
		if err != nil {
			giveBack()
			return 0, fmt.Errorf("client authentication: reserve throttle slot: %w", err)
		}
		if !ok {
			giveBack()
			c.log.WarnContext(ctx, "client authentication throttled", "client", id, "ip", addr, "key", l.key, "window", c.cfg.Window)
			return secretThrottled, nil
		}
		taken = append(taken, rateSlot{l.key, slot})
	}

	if !c.acquire(ctx) {
		giveBack()
		return secretBusy, nil
	}
	if c.hook != nil {
		c.hook()
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(secret))
	<-c.slots
	if err != nil || cl == nil {
		return secretWrong, nil
	}
	giveBack()
	cl.remember(sum)
	return secretOK, nil
}

// acquire takes a check slot, waiting at most c.wait: beyond that the
// request is better answered at once than queued behind bcrypt.
func (c *secretChecker) acquire(ctx context.Context) bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// presentedSecret is a client ID with its secret, from the Basic header or
// the form body (client_secret_post), read as zitadel reads them.
type presentedSecret struct {
	id, secret string
	basic      bool
}

// presentedClientSecret reports the credentials of r, if it carries a
// non-empty secret. A request without one is left to zitadel: an empty
// secret fails at once for every client, known or not.
func presentedClientSecret(r *http.Request) (presentedSecret, bool) {
	if id, secret, ok := r.BasicAuth(); ok {
		id, idErr := url.QueryUnescape(id)
		secret, secretErr := url.QueryUnescape(secret)
		if idErr != nil || secretErr != nil {
			return presentedSecret{}, false // zitadel refuses the header
		}
		return presentedSecret{id: id, secret: secret, basic: true}, secret != ""
	}
	secret := r.Form.Get("client_secret")
	return presentedSecret{id: r.Form.Get("client_id"), secret: secret}, secret != ""
}

// authenticateClient checks the client secret of a request to an endpoint
// that authenticates clients before zitadel sees it. zitadel looks the
// client up first and answers an unknown ID at once, which showed which
// IDs exist by timing; here every ID takes the same path, and the
// throttles and check slots apply to every endpoint alike. It reports
// whether the request may go on; zitadel's own check of the same pair then
// costs nothing (AuthorizeClientIDSecret).
func (p *Provider) authenticateClient(w http.ResponseWriter, r *http.Request, info *requestInfo) bool {
	ps, ok := presentedClientSecret(r)
	if !ok {
		return true
	}
	outcome, err := p.storage.secrets.check(r.Context(), info.addr, ps.id, ps.secret)
	if err != nil {
		p.log.ErrorContext(r.Context(), "client authentication", "client", ps.id, "path", r.URL.Path, "err", err)
		writeOAuthError(w, http.StatusInternalServerError, oidc.ErrServerError())
		return false
	}
	switch outcome {
	case secretOK:
		info.verified = &ps
		return true
	case secretThrottled:
		w.Header().Set("Retry-After", retryAfterSeconds(p.cfg.Throttle.Window))
		writeOAuthError(w, http.StatusTooManyRequests, oidc.ErrInvalidClient().
			WithDescription("too many failed client authentications; retry later"))
	case secretBusy:
		w.Header().Set("Retry-After", retryAfterSeconds(retryAfterBusy))
		writeOAuthError(w, http.StatusServiceUnavailable, &oidc.Error{ErrorType: "temporarily_unavailable",
			Description: "too many client authentications at once; retry later"})
	default:
		if ps.basic {
			// RFC 6749 section 5.2: MUST for a client that used Basic.
			w.Header().Set("WWW-Authenticate", `Basic realm="`+p.cfg.Issuer+`"`)
		}
		writeOAuthError(w, http.StatusUnauthorized, oidc.ErrInvalidClient().WithDescription("client authentication failed"))
	}
	return false
}

func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
