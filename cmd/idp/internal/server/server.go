// Package server assembles the identity provider from its parts: the store,
// the OpenID provider, the WebAuthn service, the mailer and the login pages,
// behind one router. `idp serve` and `idp dev` both build it here.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/telemetry"
	"github.com/comstockloan/idp/login"
	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

// maxRequestBody bounds every request body: the largest legitimate one is a
// WebAuthn attestation of a few kilobytes.
const maxRequestBody = 64 << 10

// Server is one assembled IdP process.
type Server struct {
	Store    *sqlstore.Store
	Provider *op.Provider
	handler  http.Handler
	// metrics serves /metrics, on its own listener (ServeMetrics).
	metrics http.Handler
	// pages may still be sending mails when the listener has stopped.
	pages  *login.Handler
	logger *slog.Logger
	audit  config.Audit
	// readiness and pinging are /readyz's (health.go).
	readiness atomic.Int32
	pinging   atomic.Bool
}

// Options are the parts that only development mode adds.
type Options struct {
	// Extra mounts additional handlers (e.g. the dev mailbox) before the
	// OpenID provider's catch-all route.
	Extra func(r *mux.Router)
	// DevMailURL is shown on the one-time-password page in development.
	DevMailURL string
}

// Open connects to the database, applies migrations, makes sure a signing
// key exists and builds the handler.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) (*Server, error) {
	auditKey, err := AuditKey(cfg)
	if err != nil {
		return nil, err
	}
	store, err := sqlstore.Open(ctx, cfg.Database, logger)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	store.WithAuditKey(auditKey).WithPool(sqlstore.Pool{
		MaxOpenConns:    cfg.DatabasePool.MaxOpenConns,
		MaxIdleConns:    cfg.DatabasePool.MaxIdleConns,
		ConnMaxLifetime: cfg.DatabasePool.ConnMaxLifetime,
		ConnMaxIdleTime: cfg.DatabasePool.ConnMaxIdleTime,
	})
	s, err := build(ctx, cfg, store, logger, opts)
	if err != nil {
		store.Close()
		return nil, err
	}
	return s, nil
}

func build(ctx context.Context, cfg *config.Config, store *sqlstore.Store, logger *slog.Logger, opts Options) (*Server, error) {
	if err := store.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	reg := telemetry.NewRegistry()
	if err := telemetry.RegisterDBStats(reg, store.DB().DB); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	httpMetrics, err := telemetry.NewHTTPMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	opCfg, err := OPConfig(cfg)
	if err != nil {
		return nil, err
	}
	opCfg.Metrics = reg
	// The OP's refusals a browser must see are the login pages' error
	// page, and its SSO answers at /authorize are the login pages' rules;
	// the pages need the provider, so both are bound once both exist
	// (before anything is served).
	var pages *login.Handler
	opCfg.ErrorPage = func(w http.ResponseWriter, r *http.Request, status int, reason op.PageReason) {
		pages.OPErrorPage(w, r, status, string(reason))
	}
	opCfg.SessionAnswer = func(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
		return pages.SessionAnswer(w, r, ar)
	}
	provider, err := op.New(opCfg, store, logger)
	if err != nil {
		return nil, fmt.Errorf("openid provider: %w", err)
	}
	if err := provider.EnsureKeys(ctx); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	passkeyCfg := passkey.Config{
		RPID:           cfg.WebAuthn.RPID,
		RPDisplayName:  cfg.WebAuthn.RPName,
		Origins:        cfg.WebAuthn.Origins,
		RelatedOrigins: cfg.WebAuthn.RelatedOrigins,
	}
	passkeys, err := passkey.New(passkeyCfg, store, logger)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	relatedOrigins, err := passkey.RelatedOrigins(passkeyCfg)
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	mailer := &mail.SMTPSender{
		Host:     cfg.SMTP.Host,
		Port:     cfg.SMTP.Port,
		TLS:      cfg.SMTP.TLS,
		Username: cfg.SMTP.Username,
		Password: cfg.SMTP.Password,
		From:     cfg.SMTP.From,
	}
	loginCfg := LoginConfig(cfg, opts.DevMailURL)
	secret, err := cfg.CryptoKeyBytes()
	if err != nil {
		return nil, fmt.Errorf("crypto_key: %w", err)
	}
	if loginCfg.OTPKey, err = login.OTPKey(secret[:]); err != nil {
		return nil, err
	}
	pages, err = login.New(loginCfg, login.Deps{
		Store:    store,
		OP:       provider,
		Mailer:   mailer,
		Passkeys: passkeys,
		Logger:   logger,
		Metrics:  reg,
	})
	if err != nil {
		return nil, fmt.Errorf("login pages: %w", err)
	}

	s := &Server{
		Store:    store,
		Provider: provider,
		metrics:  telemetry.Handler(reg, logger),
		pages:    pages,
		logger:   logger,
		audit:    cfg.Audit,
	}
	r := mux.NewRouter()
	r.Use(nameRoute, provider.IssuerInterceptor)
	r.Handle(pathHealthz, probe(s.healthz))
	r.Handle(pathReadyz, probe(s.readyz))
	r.Handle(pathReadyAlias, probe(s.readyz))
	pages.Register(r)
	if relatedOrigins != nil {
		r.Path(passkey.PathRelatedOrigins).Methods(http.MethodGet, http.MethodHead).Handler(relatedOrigins)
	}
	if opts.Extra != nil {
		opts.Extra(r)
	}
	// RP-initiated logout must also end our own SSO session.
	r.Path("/end_session").Handler(pages.EndSession(provider.Handler()))
	r.PathPrefix("/").Handler(provider.Handler())

	// The request ID first, so that every later log line of the request
	// carries it; the latency histogram outside the panic handler, so that
	// a panic's 500 is counted too.
	s.handler = telemetry.RequestID(httpMetrics.Middleware(
		recoverPanics(logger, strictTransport(cfg.Issuer, limitBodies(r)))))
	return s, nil
}

// nameRoute labels the request's latency with the template of the route
// mux matched; the OpenID provider's catch-all is labelled by endpoint,
// and only for paths it serves.
func nameRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := telemetry.RouteOther
		if cur := mux.CurrentRoute(r); cur != nil {
			if tpl, err := cur.GetPathTemplate(); err == nil {
				route = tpl
			}
		}
		if route == "/" {
			route = telemetry.RouteOther
			if op.Endpoint(r.URL.Path) {
				route = r.URL.Path
			}
		}
		telemetry.NameRoute(r, route)
		next.ServeHTTP(w, r)
	})
}

// AuditKey derives the audit trail's MAC key from crypto_key; every command
// that appends to or verifies the trail uses it.
func AuditKey(cfg *config.Config) ([]byte, error) {
	secret, err := cfg.CryptoKeyBytes()
	if err != nil {
		return nil, fmt.Errorf("crypto_key: %w", err)
	}
	return storage.AuditKey(secret[:])
}

// Serve serves on l until ctx ends, then shuts down gracefully. It also runs
// the housekeeping loops (expired rows, key rotation, audit sealing,
// back-channel logout delivery) every replica may run: all are safe to run
// concurrently against one database.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go s.sweep(ctx, time.Minute)
	go s.sealAudit(ctx)
	go s.Provider.RunKeyRotation(ctx, time.Hour)
	go s.Provider.RunBackchannelLogout(ctx)
	return s.serveHTTP(ctx, l, s.handler)
}

// ServeMetrics serves /metrics on l until ctx ends. It is a listener of
// its own (metrics_listen) so that the load, failure rates and pool state
// are never served to the internet beside the login pages.
func (s *Server) ServeMetrics(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics)
	return s.serveHTTP(ctx, l, mux)
}

// ShutdownTimeout is how long a stopping server lets requests in flight
// finish (the orchestrator's grace period must cover it).
const ShutdownTimeout = 10 * time.Second

func (s *Server) serveHTTP(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close lets the mails sent after their response finish, for at most
// ShutdownTimeout, and releases the database.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := s.pages.Drain(ctx); err != nil {
		s.logger.Warn("closing with mails unsent", "err", err)
	}
	return s.Store.Close()
}

func (s *Server) sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.Store.DeleteExpired(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			s.logger.Warn("sweep expired rows", "err", err)
		case n > 0:
			s.logger.Debug("swept expired rows", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sealAudit links new audit events into the keyed chain and writes the
// periodic checkpoints; a replica finding another one sealing skips a turn.
func (s *Server) sealAudit(ctx context.Context) {
	t := time.NewTicker(s.audit.SealInterval)
	defer t.Stop()
	for {
		_, err := s.Store.SealAudit(ctx, storage.AuditSealOptions{Now: time.Now(), CheckpointEvery: s.audit.CheckpointInterval})
		if err != nil && ctx.Err() == nil {
			s.logger.Warn("seal audit trail", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// OPConfig maps the file's settings onto package op's.
func OPConfig(cfg *config.Config) (op.Config, error) {
	key, err := cfg.CryptoKeyBytes()
	if err != nil {
		return op.Config{}, fmt.Errorf("crypto_key: %w", err)
	}
	iss, _ := url.Parse(cfg.Issuer)
	c := op.Config{
		Issuer:               cfg.Issuer,
		CryptoKey:            key,
		SigningAlgorithm:     cfg.Keys.Algorithm,
		KeyRotationPeriod:    cfg.Keys.RotationPeriod,
		KeyPublishDelay:      cfg.Keys.PublishDelay,
		AccessTokenLifetime:  cfg.Lifetimes.AccessToken,
		IDTokenLifetime:      cfg.Lifetimes.IDToken,
		RefreshTokenLifetime: cfg.Lifetimes.RefreshToken,
		AuthRequestLifetime:  cfg.Lifetimes.AuthRequest,
		CodeLifetime:         cfg.Lifetimes.Code,
		AllowInsecure:        iss != nil && iss.Scheme == "http",
		// One address rule for every throttle: the login pages get the
		// same flag.
		TrustProxyHeaders: cfg.TrustProxyHeaders,
		Throttle:          op.Throttle(cfg.OAuthThrottle),
		BackchannelLogout: op.BackchannelLogout(cfg.BackchannelLogout),
	}
	for _, cl := range cfg.Clients {
		c.Clients = append(c.Clients, op.ClientConfig{
			ID:                     cl.ID,
			Name:                   cl.Name,
			SecretHash:             cl.SecretHash,
			Public:                 cl.Public,
			RedirectURIs:           cl.RedirectURIs,
			PostLogoutRedirectURIs: cl.PostLogoutRedirectURIs,
			Scopes:                 cl.Scopes,
			AccessTokenLifetime:    cl.AccessTokenLifetime,
			IDTokenLifetime:        cl.IDTokenLifetime,
			RefreshTokenLifetime:   cl.RefreshTokenLifetime,

			BackchannelLogoutURI:             cl.BackchannelLogoutURI,
			BackchannelLogoutSessionRequired: cl.BackchannelLogoutSessionRequired,
		})
	}
	return c, nil
}

// LoginConfig maps the file's settings onto package login's.
func LoginConfig(cfg *config.Config, devMailURL string) login.Config {
	iss, _ := url.Parse(cfg.Issuer)
	return login.Config{
		SiteName: cfg.SiteName,
		Support: login.SupportContact{
			Name:  cfg.Support.Name,
			Email: cfg.Support.Email,
			Phone: cfg.Support.Phone,
			Hours: cfg.Support.Hours,
		},
		SecureCookies:        iss != nil && iss.Scheme == "https",
		SessionLifetime:      cfg.Lifetimes.Session,
		FlowLifetime:         cfg.Lifetimes.LoginFlow,
		RecentAuth:           cfg.Lifetimes.RecentAuth,
		PasskeyOfferInterval: cfg.Lifetimes.PasskeyOfferDeclined,
		Password: login.PasswordParams{
			MemoryKiB:   cfg.Password.MemoryKiB,
			Iterations:  cfg.Password.Iterations,
			Parallelism: cfg.Password.Parallelism,
		},
		OTP: login.OTPConfig{
			Lifetime:        cfg.OTP.Lifetime,
			MaxAttempts:     cfg.OTP.MaxAttempts,
			ResendInterval:  cfg.OTP.ResendInterval,
			MaxSendsPerHour: cfg.OTP.MaxSendsPerHour,
			From:            cfg.SMTP.From,
			Subject:         cfg.SMTP.Subject,
		},
		ACR: login.ACRConfig{
			Passkey:     cfg.ACR.Passkey,
			PasswordOTP: cfg.ACR.PasswordOTP,
			Password:    cfg.ACR.Password,
		},
		DevMailURL:            devMailURL,
		PasskeyMailSubject:    cfg.SMTP.PasskeySubject,
		HomeURL:               cfg.HomeURL,
		TrustProxyHeaders:     cfg.TrustProxyHeaders,
		EnrolmentLinkLifetime: cfg.Lifetimes.EnrolmentLink,
		EnrolmentMailSubject:  cfg.SMTP.EnrolmentSubject,
		Issuer:                cfg.Issuer,
		NewDeviceMail:         cfg.Devices.NewDeviceMail,
		NewDeviceMailSubject:  cfg.SMTP.NewDeviceSubject,
		KnownDevices:          cfg.Devices.Remember,
		PasswordThrottle: login.PasswordThrottle{
			Window:        cfg.Password.ThrottleWindow,
			MaxPerLoginID: cfg.Password.MaxFailuresPerLoginID,
			MaxPerAddress: cfg.Password.MaxFailuresPerAddress,
		},
		CeremonyLimit: login.CeremonyLimit{MaxPerAddress: cfg.WebAuthn.MaxCallsPerAddress},
		PasswordHashing: password.LimiterConfig{
			MemoryBudget: int64(cfg.Password.HashMemoryMiB) << 20,
			Queue:        cfg.Password.HashQueue,
			MaxWait:      cfg.Password.HashMaxWait,
		},
	}
}

// strictTransport sends HSTS on every answer of an https issuer, so a
// browser that once reached the IdP never again sends its cookies (or
// follows a downgraded link) over plain http. Without includeSubDomains:
// the IdP cannot vouch for the loan website's other hosts.
func strictTransport(issuer string, next http.Handler) http.Handler {
	if u, err := url.Parse(issuer); err != nil || u.Scheme != "https" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		next.ServeHTTP(w, r)
	})
}

func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in any handler into a logged 500 instead of a
// dropped connection; a panic is a bug, and its stack belongs in the log.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.ErrorContext(r.Context(), "panic in handler", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
