package op

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/rs/cors"
	zop "github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/comstockloan/idp/storage"
)

// Provider is the OpenID provider: zitadel's op.Provider over our store,
// wrapped by the protocol rules zitadel does not enforce itself.
type Provider struct {
	cfg     Config
	store   storage.Store
	log     *slog.Logger
	storage *opStorage
	keys    *keyManager
	zop     *zop.Provider
	handler http.Handler
}

// supportedClaims are the claims our ID tokens and userinfo can carry.
var supportedClaims = []string{
	"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash", "azp",
	"preferred_username", "name", "email", "email_verified",
}

// New validates cfg (filling defaults) and builds the provider. Call
// EnsureKeys before serving.
func New(cfg Config, store storage.Store, logger *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("op config: %w", err)
	}
	if logger == nil {
		return nil, errors.New("op: logger is required")
	}
	log := logger.With("component", "op")
	now := func() time.Time { return time.Now().UTC() }
	clients := make(map[string]*client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		idLife := cfg.IDTokenLifetime
		if c.IDTokenLifetime > 0 {
			idLife = c.IDTokenLifetime
		}
		clients[c.ID] = &client{cfg: c, idTokenLifetime: idLife}
	}
	keys := newKeyManager(cfg, store, log, now)
	st := &opStorage{cfg: cfg, store: store, log: log, clients: clients, keys: keys, now: now}

	zcfg := &zop.Config{
		CryptoKey:                cfg.CryptoKey,
		DefaultLogoutRedirectURI: cfg.LogoutLandingURL,
		CodeMethodS256:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.Japanese, language.English},
		SupportedClaims:          supportedClaims,
		SupportedScopes:          slices.Clone(knownScopes),
	}
	opts := []zop.Option{zop.WithCORSOptions(corsOptions(cfg.Clients))}
	if cfg.AllowInsecure {
		opts = append(opts, zop.WithAllowInsecure())
	}
	zp, err := zop.NewProvider(zcfg, st, zop.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("create zitadel provider: %w", err)
	}
	p := &Provider{cfg: cfg, store: store, log: log, storage: st, keys: keys, zop: zp}
	p.handler = p.guard(zp)
	return p, nil
}

// corsOptions lets the registered relying parties' origins read discovery,
// keys, token and userinfo responses from a browser, without cookies.
func corsOptions(clients []ClientConfig) *cors.Options {
	var origins []string
	for _, c := range clients {
		for _, raw := range c.RedirectURIs {
			if u, err := url.Parse(raw); err == nil && u.Host != "" {
				o := u.Scheme + "://" + u.Host
				if !slices.Contains(origins, o) {
					origins = append(origins, o)
				}
			}
		}
	}
	return &cors.Options{
		AllowedOrigins:   origins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:   []string{"Authorization", "Content-Type", "Accept"},
		AllowCredentials: false,
		MaxAge:           600,
	}
}

// Handler serves every OpenID endpoint; mount it last (PathPrefix("/")).
func (p *Provider) Handler() http.Handler { return p.handler }

// IssuerInterceptor puts the issuer in the request context of the login
// routes, which zitadel helpers need.
func (p *Provider) IssuerInterceptor(h http.Handler) http.Handler {
	return zop.NewIssuerInterceptor(p.zop.IssuerFromRequest).Handler(h)
}

// Complete marks the auth request done and returns the URL to send the
// browser to (the op callback).
func (p *Provider) Complete(ctx context.Context, authRequestID, userID string, authTime time.Time, amr []string, acr string) (string, error) {
	ar, err := p.store.AuthRequestByID(ctx, authRequestID)
	if err != nil {
		return "", fmt.Errorf("complete auth request %s: %w", authRequestID, err)
	}
	if ar.CodeHash != "" || ar.ConsumedAt != nil {
		return "", fmt.Errorf("complete auth request %s: code already issued: %w", authRequestID, storage.ErrConflict)
	}
	if userID == "" || authTime.IsZero() || len(amr) == 0 {
		return "", fmt.Errorf("complete auth request %s: user, auth time and amr are required", authRequestID)
	}
	if err := p.store.CompleteAuthRequest(ctx, authRequestID, userID, authTime.UTC(), amr, acr); err != nil {
		return "", fmt.Errorf("complete auth request %s: %w", authRequestID, err)
	}
	p.log.InfoContext(ctx, "auth request completed", "auth_request_id", authRequestID, "client_id", ar.ClientID,
		"user_id", userID, "amr", amr, "acr", acr)
	return zop.AuthCallbackURL(p.zop)(zop.ContextWithIssuer(ctx, p.cfg.Issuer), authRequestID), nil
}

// RedirectError sends the browser back to the client's redirect_uri with an
// OAuth error, e.g. oidc.ErrLoginRequired() for prompt=none.
func (p *Provider) RedirectError(w http.ResponseWriter, r *http.Request, authRequestID string, err error) {
	ar, lerr := p.store.AuthRequestByID(r.Context(), authRequestID)
	if lerr != nil {
		p.log.InfoContext(r.Context(), "redirect error: unknown auth request", "auth_request_id", authRequestID, "error", lerr)
		http.Error(w, "unknown or expired authorization request", http.StatusBadRequest)
		return
	}
	p.log.InfoContext(r.Context(), "auth request ends with error", "auth_request_id", authRequestID,
		"client_id", ar.ClientID, "error", err)
	r = r.WithContext(zop.ContextWithIssuer(r.Context(), p.cfg.Issuer))
	zop.AuthRequestError(&issWriter{ResponseWriter: w, issuer: p.cfg.Issuer}, r, authRequest{ar}, err, p.zop)
}

// ClientName returns the display name of a client for the login pages.
func (p *Provider) ClientName(clientID string) (string, error) {
	c, ok := p.storage.clients[clientID]
	if !ok {
		return "", fmt.Errorf("client %q: %w", clientID, storage.ErrNotFound)
	}
	if c.cfg.Name == "" {
		return c.cfg.ID, nil
	}
	return c.cfg.Name, nil
}
