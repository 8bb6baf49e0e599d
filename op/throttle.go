package op

import (
	"context"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Throttle bounds guessing at the OAuth endpoints; every count lives in
// the store, so the limits hold across replicas. Within Window:
//   - after MaxSecretFailuresPerClient failed secret checks for one client
//     ID (known or not), or MaxSecretFailuresPerAddress from one address,
//     secrets are not checked until old failures leave the window;
//   - after MaxTokenFailuresPerAddress refused token requests from one
//     address, its token requests are refused the same way, except those
//     of a confidential client whose secret was right (tokenThrottled).
//
// At most MaxConcurrentSecretChecks bcrypt comparisons run at once per
// process.
type Throttle struct {
	Window                      time.Duration // default 15m, at most 24h
	MaxSecretFailuresPerClient  int           // default 100
	MaxSecretFailuresPerAddress int           // default 20
	MaxTokenFailuresPerAddress  int           // default 100
	MaxConcurrentSecretChecks   int           // default 4
}

// Throttle defaults. The per-client secret limit is above the per-address
// one: an attacker who fills it locks the client out on replicas that have
// not verified its secret yet, while a relying party's back-end fails a
// secret only when misconfigured. Token requests fail legitimately now and
// then (a code used twice, an expired refresh token), and customers share
// addresses behind carrier NAT, hence the higher token limit; there is no
// per-client token limit, which anyone could fill for the public client.
const (
	DefaultThrottleWindow              = 15 * time.Minute
	DefaultMaxSecretFailuresPerClient  = 100
	DefaultMaxSecretFailuresPerAddress = 20
	DefaultMaxTokenFailuresPerAddress  = 100
	DefaultMaxConcurrentSecretChecks   = 4
	maxThrottleWindow                  = 24 * time.Hour // rate events are swept after that (sqlstore.RateEventRetention)
	rateTokenFailure                   = "token_failure"
)

// tokenThrottled reports whether a token request counts against the
// token-failure limit of its address: only when no client secret was
// verified for it. The limit bounds what anonymous callers (the public
// client, whose ID anyone may use) can throw at the endpoint; a confidential
// client that proved its secret is a known relying party whose codes and
// refresh tokens are 256-bit, and guessing secrets has its own limits
// (secretChecker). Its back-end sends every token request of the website
// from one address, so reserving there would serialise all of its logins on
// one lock across every replica.
func (p *Provider) tokenThrottled(info *requestInfo) bool { return info.verified == nil }

// reserveTokenAttempt takes a token-failure slot for the address of r
// before zitadel runs, and returns what to call with the response status:
// a success gives the slot back. false: the address is throttled and the
// answer has been written.
func (p *Provider) reserveTokenAttempt(w http.ResponseWriter, r *http.Request, info *requestInfo) (func(status int), bool) {
	t := p.cfg.Throttle
	now := p.storage.now()
	key := "ip:" + info.addr
	slot, ok, err := p.store.ReserveRateEvent(r.Context(), rateTokenFailure, key, now, now.Add(-t.Window), t.MaxTokenFailuresPerAddress)
	if err != nil {
		p.log.ErrorContext(r.Context(), "token: reserve throttle slot", "ip", info.addr, "err", err)
		writeOAuthError(w, http.StatusInternalServerError, oidc.ErrServerError())
		return nil, false
	}
	if !ok {
		p.log.WarnContext(r.Context(), "token requests throttled", "ip", info.addr, "window", t.Window)
		w.Header().Set("Retry-After", retryAfterSeconds(t.Window))
		writeOAuthError(w, http.StatusTooManyRequests, oidc.ErrInvalidRequest().
			WithDescription("too many refused token requests from this address; retry later"))
		return nil, false
	}
	return func(status int) {
		// A refusal counts; a success, or a failure of ours (5xx), does not.
		if status >= 400 && status < 500 {
			return
		}
		if err := p.store.ReleaseRateEvent(context.WithoutCancel(r.Context()), rateTokenFailure, key, slot); err != nil {
			p.log.ErrorContext(r.Context(), "token: release throttle slot", "ip", info.addr, "err", err)
		}
	}, true
}
