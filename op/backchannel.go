package op

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// OpenID Connect Back-Channel Logout 1.0, the sending side. The store
// enqueues one row per (ended session, client it signed in to) in the
// transaction that deletes the session (storage.Sessions); this worker,
// on every replica, claims due rows, signs a logout token per row and
// POSTs it to the client's backchannel_logout_uri, retrying with
// exponential backoff until a 2xx or BackchannelLogout.Deadline. Nothing
// here runs on a customer's request, so an unreachable relying party
// never slows a logout.

// backchannelEvent is the logout token's one event (spec section 2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenType is the JWT typ header of a logout token (spec section
// 2.4, so it cannot pass for an ID token).
const logoutTokenType = "logout+jwt"

const (
	// logoutTokenLifetime: a token is signed afresh for every attempt, so
	// it needs to live only as long as one POST and the clock skew.
	logoutTokenLifetime = 2 * time.Minute
	// backchannelBatch is how many logouts one claim takes; they are
	// posted at once, so one slow relying party holds up none of the
	// others of the batch beyond Timeout.
	backchannelBatch = 16
	// Backoff after the n-th failed attempt: backchannelFirstRetry·2^(n-1),
	// at most backchannelMaxRetry.
	backchannelFirstRetry = 10 * time.Second
	backchannelMaxRetry   = time.Hour
	// maxBackchannelAnswer bounds what is read of a relying party's answer
	// (read only so the connection can be reused).
	maxBackchannelAnswer = 4 << 10
)

// backchannelRetryAfter is the wait after the attempts-th failed attempt.
func backchannelRetryAfter(attempts int) time.Duration {
	d := backchannelFirstRetry
	for i := 1; i < attempts && d < backchannelMaxRetry; i++ {
		d *= 2
	}
	return min(d, backchannelMaxRetry)
}

// backchannelLease is how long a claimed row stays with its replica: past
// every timeout of its batch's POSTs, so it is retried by another replica
// only when this one died.
func backchannelLease(timeout time.Duration) time.Duration { return 2*timeout + 30*time.Second }

// backchannel is the delivery worker.
type backchannel struct {
	cfg     BackchannelLogout
	issuer  string
	store   Store
	keys    *keyManager
	clients map[string]*client
	http    *http.Client
	rec     *audit.Recorder
	metrics *backchannelMetrics
	log     *slog.Logger
	now     func() time.Time
}

// newBackchannelClient never follows a redirect (the URI is the
// operator's; a 3xx is an answer, and not a 2xx) and takes no cookies.
func newBackchannelClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = backchannelBatch
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// RunBackchannelLogout delivers due logout tokens every PollInterval until
// ctx ends; a full batch is followed by the next at once. Safe on every
// replica: the store hands each row to one claim at a time.
func (p *Provider) RunBackchannelLogout(ctx context.Context) {
	t := time.NewTicker(p.backchannel.cfg.PollInterval)
	defer t.Stop()
	for {
		n, err := p.DeliverBackchannelLogouts(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.WarnContext(ctx, "backchannel logout: claim failed", "err", err)
		}
		if n == backchannelBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverBackchannelLogouts claims one batch of due logouts, posts them
// concurrently and records each outcome; it returns how many it claimed.
func (p *Provider) DeliverBackchannelLogouts(ctx context.Context) (int, error) {
	return p.backchannel.deliverDue(ctx)
}

func (b *backchannel) deliverDue(ctx context.Context) (int, error) {
	due, err := b.store.ClaimBackchannelLogouts(ctx, b.now(), backchannelLease(b.cfg.Timeout), backchannelBatch)
	if err != nil {
		return 0, fmt.Errorf("claim backchannel logouts: %w", err)
	}
	var wg sync.WaitGroup
	for _, l := range due {
		wg.Go(func() { b.deliver(ctx, l) })
	}
	wg.Wait()
	return len(due), nil
}

// deliver posts one logout and settles its row: deleted when delivered,
// dropped or given up, otherwise due again after the backoff.
func (b *backchannel) deliver(ctx context.Context, l storage.BackchannelLogout) {
	c, ok := b.clients[l.ClientID]
	if !ok || c.cfg.BackchannelLogoutURI == "" {
		// The session signed in to a client that has no back-channel
		// logout (or no longer exists in the configuration).
		b.settle(ctx, l, "dropped")
		return
	}
	err := b.post(ctx, c.cfg.BackchannelLogoutURI, l)
	if err == nil {
		b.log.InfoContext(ctx, "backchannel logout delivered", "client", l.ClientID, "user", l.Subject, "attempts", l.Attempts)
		b.settle(ctx, l, "delivered")
		return
	}
	if ctx.Err() != nil {
		// Shutting down: the lease makes the row due again for whichever
		// replica runs next.
		return
	}
	next := b.now().Add(backchannelRetryAfter(l.Attempts))
	if next.After(l.CreatedAt.Add(b.cfg.Deadline)) {
		b.log.WarnContext(ctx, "backchannel logout given up", "client", l.ClientID, "user", l.Subject,
			"attempts", l.Attempts, "err", err)
		_ = b.rec.Record(ctx, audit.BackchannelLogoutFailed, audit.Entry{
			Actor: audit.System, UserID: l.Subject,
			Detail: audit.Detail{audit.KeyClient: l.ClientID, audit.KeyAttempts: fmt.Sprint(l.Attempts), audit.KeyReason: err.Error()},
		})
		b.settle(ctx, l, "failed")
		return
	}
	b.log.InfoContext(ctx, "backchannel logout failed; retrying", "client", l.ClientID, "user", l.Subject,
		"attempts", l.Attempts, "retry_at", next, "err", err)
	b.metrics.outcome.WithLabelValues("retried").Inc()
	if err := b.store.RetryBackchannelLogout(ctx, l.ID, next, err.Error()); err != nil && !errors.Is(err, storage.ErrNotFound) {
		b.log.ErrorContext(ctx, "backchannel logout: reschedule", "client", l.ClientID, "err", err)
	}
}

// settle deletes a row whose delivery is over and counts the outcome.
func (b *backchannel) settle(ctx context.Context, l storage.BackchannelLogout, outcome string) {
	if outcome == "dropped" {
		b.log.InfoContext(ctx, "backchannel logout dropped: the client has no backchannel_logout_uri", "client", l.ClientID)
	}
	b.metrics.outcome.WithLabelValues(outcome).Inc()
	if err := b.store.DeleteBackchannelLogout(ctx, l.ID); err != nil {
		// The row comes back after its lease: a duplicate the relying
		// party recognises by its jti.
		b.log.ErrorContext(ctx, "backchannel logout: delete settled row", "client", l.ClientID, "err", err)
	}
}

// post sends one logout token; nil means the relying party answered 2xx.
func (b *backchannel) post(ctx context.Context, uri string, l storage.BackchannelLogout) error {
	token, err := b.sign(ctx, l)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	if err != nil {
		return fmt.Errorf("backchannel request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-store")
	resp, err := b.http.Do(req)
	if err != nil {
		// The URL (with the client's URI) is already in the error.
		return fmt.Errorf("backchannel post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBackchannelAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("backchannel post: status %d", resp.StatusCode)
	}
	return nil
}

// sign makes the logout token of l with the current signing key: iss,
// aud, iat, exp, jti (the row's ID, the same on every attempt), events,
// sub and sid, typ logout+jwt, and no nonce (spec section 2.4).
func (b *backchannel) sign(ctx context.Context, l storage.BackchannelLogout) (string, error) {
	key, err := b.keys.signingKey(ctx)
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	now := b.now()
	claims := &oidc.LogoutTokenClaims{
		Issuer: b.issuer, Subject: l.Subject, Audience: oidc.Audience{l.ClientID},
		IssuedAt: oidc.FromTime(now), Expiration: oidc.FromTime(now.Add(logoutTokenLifetime)),
		JWTID: l.ID, Events: map[string]any{backchannelEvent: struct{}{}}, SessionID: l.SID,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("logout token: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{
		Algorithm: key.SignatureAlgorithm(),
		Key:       &jose.JSONWebKey{Key: key.Key(), KeyID: key.ID()},
	}, (&jose.SignerOptions{}).WithType(logoutTokenType))
	if err != nil {
		return "", fmt.Errorf("logout token signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return jws.CompactSerialize()
}

// backchannelMetrics count the deliveries' outcomes.
type backchannelMetrics struct {
	outcome *prometheus.CounterVec
}

func newBackchannelMetrics(reg prometheus.Registerer) (*backchannelMetrics, error) {
	m := &backchannelMetrics{outcome: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idp_backchannel_logouts_total",
		Help: "Back-channel logout attempts by outcome: delivered (2xx), retried (failed, will retry), " +
			"failed (given up at the deadline), dropped (the client has no backchannel_logout_uri).",
	}, []string{"outcome"})}
	for _, o := range []string{"delivered", "retried", "failed", "dropped"} {
		m.outcome.WithLabelValues(o) // exported at 0 before the first event
	}
	if reg != nil {
		if err := reg.Register(m.outcome); err != nil {
			return nil, fmt.Errorf("backchannel metrics: %w", err)
		}
	}
	return m, nil
}
