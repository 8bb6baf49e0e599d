package demorp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// BackchannelLogoutPath is the demo's backchannel_logout_uri (under BaseURL).
const BackchannelLogoutPath = "/backchannel-logout"

// backchannelEvent is the one event a logout token carries.
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxLogoutTokenAge bounds how old an iat the demo accepts; a logout token
// is signed for each attempt, so a real one is seconds old.
const maxLogoutTokenAge = 5 * time.Minute

// signedOut remembers the IdP sessions (sid) and users (sub) the IdP said
// ended, so the demo session built on one of them ends too: the demo's
// session is a cookie the IdP cannot reach, so the demo checks it here on
// every page. In memory: a demo, not a relying party's session store.
type signedOut struct {
	mu    sync.Mutex
	sids  map[string]time.Time
	subs  map[string]time.Time // sub → iat: sessions authenticated before it end
	jtis  map[string]time.Time // seen, for dropping a redelivered token
	limit int
}

func newSignedOut() *signedOut {
	return &signedOut{sids: map[string]time.Time{}, subs: map[string]time.Time{}, jtis: map[string]time.Time{}, limit: 10000}
}

// note records a verified logout; false for a jti seen before.
func (s *signedOut) note(c *oidc.LogoutTokenClaims) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.jtis[c.JWTID]; seen {
		return false
	}
	if len(s.jtis) >= s.limit {
		// A demo bounds its memory crudely: forget everything older.
		clear(s.jtis)
	}
	now := time.Now()
	s.jtis[c.JWTID] = now
	if c.SessionID != "" {
		s.sids[c.SessionID] = now
	} else {
		s.subs[c.Subject] = c.IssuedAt.AsTime()
	}
	return true
}

// ended reports whether the IdP ended the session an ID token came from.
func (s *signedOut) ended(id *oidc.IDTokenClaims) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id.SessionID != "" {
		if _, ok := s.sids[id.SessionID]; ok {
			return true
		}
	}
	at, ok := s.subs[id.Subject]
	return ok && !id.IssuedAt.AsTime().After(at)
}

// backchannelLogout is the receiver: it validates the logout token as
// OpenID Connect Back-Channel Logout 1.0 section 2.6 says and remembers
// the ended session. 200 when accepted (a duplicate too), 400 otherwise;
// never a redirect, and no cookies are read.
func (d *RP) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	claims, err := d.verifyLogoutToken(r.Context(), r.PostFormValue("logout_token"))
	if err != nil {
		d.logger.Info("demo RP: logout token refused", "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": err.Error()})
		return
	}
	if d.ended.note(claims) {
		d.logger.Info("demo RP: signed out by the IdP", "user", claims.Subject, "sid", claims.SessionID)
	}
	w.WriteHeader(http.StatusOK)
}

// verifyLogoutToken is section 2.6: signature by a key of the issuer's
// JWKS (zitadel's remote key set, the one the demo verifies ID tokens
// with), typ logout+jwt, iss, aud, iat, exp, jti, the event, sub or sid,
// and no nonce.
func (d *RP) verifyLogoutToken(ctx context.Context, raw string) (*oidc.LogoutTokenClaims, error) {
	if raw == "" {
		return nil, errors.New("no logout_token")
	}
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("not a signed JWT: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not exactly one signature")
	}
	if typ, _ := jws.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); typ != "logout+jwt" {
		return nil, fmt.Errorf("typ %q is not logout+jwt", typ)
	}
	payload, err := d.rp.IDTokenVerifier().KeySet.VerifySignature(ctx, jws)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var c oidc.LogoutTokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	now := time.Now()
	iat := c.IssuedAt.AsTime()
	switch {
	case c.Issuer != d.cfg.Issuer:
		return nil, fmt.Errorf("iss %q", c.Issuer)
	case !slices.Contains([]string(c.Audience), d.cfg.ClientID):
		return nil, fmt.Errorf("aud %v does not name %s", c.Audience, d.cfg.ClientID)
	case c.IssuedAt == 0 || iat.After(now.Add(time.Minute)) || iat.Before(now.Add(-maxLogoutTokenAge)):
		return nil, fmt.Errorf("iat %v out of range", iat)
	case c.Expiration != 0 && !c.Expiration.AsTime().After(now):
		return nil, errors.New("expired")
	case c.JWTID == "":
		return nil, errors.New("no jti")
	case c.Subject == "" && c.SessionID == "":
		return nil, errors.New("neither sub nor sid")
	}
	if _, ok := c.Events[backchannelEvent].(map[string]any); !ok {
		return nil, errors.New("no back-channel logout event")
	}
	if _, ok := c.Claims["nonce"]; ok {
		return nil, errors.New("a nonce: this is not a logout token")
	}
	return &c, nil
}
