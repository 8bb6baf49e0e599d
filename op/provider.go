package op

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// Provider is the OpenID provider: zitadel's op.Provider over our store,
// wrapped by the protocol rules zitadel does not enforce itself.
type Provider struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	storage *opStorage
	keys    *keyManager
	zop     *zop.Provider
	// discoveryCORS answers the discovery document's CORS requests as
	// zitadel's router answers its own endpoints.
	discoveryCORS *cors.Cors
	handler       http.Handler
	// bindingKey signs the cookies that tie an authorization request to
	// its browser (see binding.go); derived from CryptoKey so every replica
	// agrees.
	bindingKey []byte
	// returnOrigins are the origins of every registered redirect and
	// post-logout URI, for AllowedReturnURL.
	returnOrigins []string
	metrics       *metrics
	backchannel   *backchannel
}

// supportedClaims are the claims our ID tokens and userinfo can carry.
var supportedClaims = []string{
	"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "at_hash", "c_hash", "azp",
	"preferred_username", "name", "email", "email_verified", "sid",
}

// New validates cfg (filling defaults) and builds the provider. Call
// EnsureKeys before serving.
//
// zitadel v3.51.17 logs through slog's default logger only (its
// op.WithLogger is a no-op), so its few lines about refused requests reach
// logger only if the program makes logger the default at start-up; every
// refusal is also logged here through logger.
func New(cfg Config, store Store, logger *slog.Logger) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("op config: %w", err)
	}
	if logger == nil {
		return nil, errors.New("op: logger is required")
	}
	log := logger.With("component", "op")
	now := func() time.Time { return cfg.Clock().UTC() }
	clients := make(map[string]*client, len(cfg.Clients))
	for _, c := range cfg.Clients {
		idLife := cfg.IDTokenLifetime
		if c.IDTokenLifetime > 0 {
			idLife = c.IDTokenLifetime
		}
		clients[c.ID] = &client{cfg: c, idTokenLifetime: idLife}
	}
	// Every store call of a request notes a lost database on the request,
	// so its error answer becomes a 503 (unavailable.go).
	store = outageNoting{store}
	keys := newKeyManager(cfg, store, log, now)
	secrets, err := newSecretChecker(cfg, store, log, now, clients)
	if err != nil {
		return nil, err
	}
	st := &opStorage{cfg: cfg, store: store, log: log, clients: clients, keys: keys, secrets: secrets, now: now}

	zcfg := &zop.Config{
		CryptoKey:                cfg.CryptoKey,
		DefaultLogoutRedirectURI: cfg.LogoutLandingURL,
		CodeMethodS256:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.Japanese, language.English},
		SupportedClaims:          supportedClaims,
		SupportedScopes:          slices.Clone(knownScopes),
		// Delivery is ours (backchannel.go); zitadel only advertises it.
		BackChannelLogoutSupported:        true,
		BackChannelLogoutSessionSupported: true,
	}
	opts := []zop.Option{zop.WithCORSOptions(corsOptions(cfg.Clients))}
	if cfg.AllowInsecure {
		opts = append(opts, zop.WithAllowInsecure())
	}
	zp, err := zop.NewProvider(zcfg, st, zop.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("create zitadel provider: %w", err)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	bm, err := newBackchannelMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	bind := hmac.New(sha256.New, cfg.CryptoKey[:])
	bind.Write([]byte("idp/op browser binding v1"))
	p := &Provider{cfg: cfg, store: store, log: log, storage: st, keys: keys, zop: zp,
		bindingKey: bind.Sum(nil), returnOrigins: clientOrigins(cfg.Clients, true), metrics: m,
		discoveryCORS: cors.New(*zp.CORSOptions())}
	p.backchannel = &backchannel{
		cfg: cfg.BackchannelLogout, issuer: cfg.Issuer, store: store, keys: keys, clients: clients,
		http: newBackchannelClient(cfg.BackchannelLogout.Timeout), rec: audit.NewRecorder(store, log),
		metrics: bm, log: log, now: now,
	}
	p.handler = p.guard(withUserMemo(zp))
	return p, nil
}

// clientOrigins lists the distinct origins of the clients' redirect URIs
// and, with postLogout, of their post-logout redirect URIs.
func clientOrigins(clients []ClientConfig, postLogout bool) []string {
	var origins []string
	add := func(raws []string) {
		for _, raw := range raws {
			if o, ok := urlOrigin(raw); ok && !slices.Contains(origins, o) {
				origins = append(origins, o)
			}
		}
	}
	for _, c := range clients {
		add(c.RedirectURIs)
		if postLogout {
			add(c.PostLogoutRedirectURIs)
		}
	}
	return origins
}

// urlOrigin returns scheme://host[:port] of an absolute http(s) URL, with
// the scheme and host lower-cased and a default port dropped, so that
// equal origins compare equal as strings.
func urlOrigin(raw string) (string, bool) {
	// Browsers read a backslash as a slash and drop tabs and newlines, so
	// such a URL may not go where Go's parser says it does.
	if strings.ContainsFunc(raw, func(r rune) bool { return r == '\\' || r <= ' ' || r == 0x7f }) {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if host == "" {
		return "", false
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// AllowedReturnURL reports whether raw may be offered as a link back to a
// relying party (the passkey settings page's return link): an absolute
// http(s) URL whose origin is that of a registered redirect or post-logout
// URI. Anything else would make our pages an open redirector.
func (p *Provider) AllowedReturnURL(raw string) bool {
	o, ok := urlOrigin(raw)
	return ok && slices.Contains(p.returnOrigins, o)
}

// corsOptions lets the registered relying parties' origins read discovery,
// keys, token and userinfo responses from a browser, without cookies.
func corsOptions(clients []ClientConfig) *cors.Options {
	return &cors.Options{
		AllowedOrigins:   clientOrigins(clients, false),
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

// Complete marks the auth request done by the SSO session se (its user,
// auth time, amr, acr, and its SID for the ID token's sid and back-channel
// logout), issues the authorization code in the same write, and returns
// the authorization response: the client's redirect URI with code, state
// and iss. It also ends the request's browser binding on w (the code is on
// its way). The browser goes straight to the client: zitadel's callback
// (/authorize/callback) would cost another request and two more database
// round trips per login; it stays for a request completed without a code.
func (p *Provider) Complete(w http.ResponseWriter, r *http.Request, authRequestID string, se *storage.Session) (string, error) {
	ctx := r.Context()
	if !p.storage.storable(ctx, "auth_request_id", authRequestID) {
		return "", fmt.Errorf("complete auth request: unstorable id: %w", storage.ErrNotFound)
	}
	if se == nil || se.UserID == "" || se.AuthTime.IsZero() || len(se.AMR) == 0 {
		return "", fmt.Errorf("complete auth request %s: a session with user, auth time and amr is required", authRequestID)
	}
	// Not zitadel's codes (the callback's: the request ID encrypted under
	// the provider's key): one random secret like a refresh token.
	code, err := newSecret("authorization code")
	if err != nil {
		return "", err
	}
	c := storage.Completion{
		UserID: se.UserID, AuthTime: se.AuthTime.UTC(), AMR: se.AMR, ACR: se.ACR, SID: se.SID,
		CodeHash: storage.HashSecret(code), CodeExpiresAt: p.storage.now().Add(p.cfg.CodeLifetime),
	}
	ar, err := p.complete(ctx, authRequestID, c)
	if err != nil {
		return "", fmt.Errorf("complete auth request %s: %w", authRequestID, err)
	}
	// CreateAuthRequest admits only response_type=code in the query mode.
	redirect, err := zop.AuthResponseURL(ar.RedirectURI, oidc.ResponseType(ar.ResponseType), oidc.ResponseMode(ar.ResponseMode),
		&zop.CodeResponseType{Code: code, State: ar.State}, p.zop.Encoder())
	if err != nil {
		return "", fmt.Errorf("complete auth request %s: authorization response: %w", authRequestID, err)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		return "", fmt.Errorf("complete auth request %s: authorization response %q: %w", authRequestID, redirect, err)
	}
	redirect = addIssuer(u, p.cfg.Issuer)
	http.SetCookie(w, p.bindingCookie(authRequestID, -1))
	p.log.InfoContext(ctx, "auth request completed", "auth_request", authRequestID, "client", ar.ClientID,
		"user", se.UserID, "amr", se.AMR, "acr", se.ACR)
	return redirect, nil
}

// complete records c on request id. A request is completed once:
// completing it again could swap the user of a request whose code is
// already on its way; the store's conditional update enforces that (and
// the expiry) without a read. The request /authorize is answering from
// the SSO session is not stored yet (answerHeld): it is stored completed.
func (p *Provider) complete(ctx context.Context, id string, c storage.Completion) (*storage.AuthRequest, error) {
	info := requestInfoFrom(ctx)
	if ar := info.created; ar != nil && ar.ID == id && !info.stored {
		if c.SID != "" {
			if err := p.store.CreateAuthRequestCompleted(ctx, ar, c); err != nil {
				return nil, err
			}
			info.stored = true
			return ar, nil // what the authorization response needs
		}
		// A session from before SIDs has no row to hold: the pending
		// request first.
		if err := p.store.CreateAuthRequest(ctx, ar); err != nil {
			return nil, err
		}
		info.stored = true
	}
	return p.store.CompleteAuthRequest(ctx, id, c)
}

// RedirectError sends the browser back to the client's redirect_uri with an
// OAuth error, e.g. oidc.ErrLoginRequired() for prompt=none.
func (p *Provider) RedirectError(w http.ResponseWriter, r *http.Request, authRequestID string, err error) {
	lerr := storage.ErrNotFound
	var ar *storage.AuthRequest
	if p.storage.storable(r.Context(), "auth_request_id", authRequestID) {
		ar, lerr = p.store.AuthRequestByID(r.Context(), authRequestID)
	}
	switch {
	case errors.Is(lerr, storage.ErrNotFound):
		p.log.InfoContext(r.Context(), "redirect error: unknown auth request", "auth_request", authRequestID, "err", lerr)
		p.errorPage(w, r, http.StatusBadRequest, ReasonAuthRequestGone)
		return
	case lerr != nil:
		p.log.ErrorContext(r.Context(), "redirect error: load auth request", "auth_request", authRequestID, "err", lerr)
		http.Error(w, "the sign-in could not be finished; try again", http.StatusInternalServerError)
		return
	}
	p.log.InfoContext(r.Context(), "auth request ends with error", "auth_request", authRequestID,
		"client", ar.ClientID, "err", err)
	// The request ends here, so its binding cookie goes too: a client that
	// polls with prompt=none must not pile cookies up in the browser.
	http.SetCookie(w, p.bindingCookie(authRequestID, -1))
	r = r.WithContext(zop.ContextWithIssuer(r.Context(), p.cfg.Issuer))
	zop.AuthRequestError(&issWriter{ResponseWriter: w, issuer: p.cfg.Issuer}, r, authRequest{r: ar}, err, p.zop)
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
