package login

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	netmail "net/mail"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/comstockloan/idp/login/clientaddr"
	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// OP is what the pages need from the OpenID provider (*op.Provider).
type OP interface {
	// Complete marks the auth request done by the SSO session s (its
	// user and proof, and its SID: the ID token's sid, and the client's
	// back-channel logout when s ends) and returns where to send the
	// browser: the authorization response to the client. It may set
	// cookies on w, so it runs before the answer is written.
	Complete(w http.ResponseWriter, r *http.Request, authRequestID string, s *storage.Session) (string, error)
	// RedirectError sends the browser back to the client with an OAuth error.
	RedirectError(w http.ResponseWriter, r *http.Request, authRequestID string, err error)
	ClientName(clientID string) (string, error)
	// BrowserBound reports whether r comes from the browser that started
	// the auth request. A request ID in a URL is not a secret: without this
	// check an attacker could send a signed-in victim to
	// /login?authRequestID=<attacker's request> and collect the code.
	BrowserBound(r *http.Request, authRequestID string) bool
	// IDTokenHintSubject returns the subject of an ID token the OP signed
	// (expired ones included), for RP-initiated logout.
	IDTokenHintSubject(ctx context.Context, hint string) (string, error)
	// AllowedReturnURL reports whether S8 may link back to u: its origin
	// is the origin of some registered client's redirect URI or
	// post-logout redirect URI.
	AllowedReturnURL(u string) bool
}

// Mailer delivers the one-time password mail (*mail.SMTPSender).
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// PasskeyLogin is the outcome of a successful passkey assertion: User,
// Credential, CrossDevice (the authenticator was cross-platform, e.g. a
// phone via QR code) and AMR. It is the passkey package's own type, so
// *passkey.Service satisfies Passkeys without an adapter; for the same
// reason login/passkey must never import login.
type PasskeyLogin = passkey.LoginResult

// Passkeys runs the WebAuthn ceremonies (*passkey.Service).
type Passkeys interface {
	BeginLogin(ctx context.Context, flowID string, conditional bool) (json.RawMessage, error)
	FinishLogin(ctx context.Context, flowID string, assertionJSON []byte) (*PasskeyLogin, error)
	// FinishStepUp is FinishLogin accepting only userID's passkeys; another
	// user's is a *passkey.WrongUserError, with nothing written.
	FinishStepUp(ctx context.Context, flowID, userID string, assertionJSON []byte) (*PasskeyLogin, error)
	BeginRegistration(ctx context.Context, user *storage.User, flowID string) (json.RawMessage, error)
	FinishRegistration(ctx context.Context, user *storage.User, flowID string, attestationJSON []byte, onlyIfFirst bool) (*storage.Credential, error)
	// Signal is the WebAuthn Signal API data of user and their passkeys
	// creds (passkeysignal.go).
	Signal(user *storage.User, creds []storage.Credential) passkey.Signal
}

// Deps are the collaborators of the Handler. Passkeys may be nil: the
// pages then say passkeys are unavailable and the JSON endpoints answer 503.
type Deps struct {
	Store    Store
	OP       OP
	Mailer   Mailer
	Passkeys Passkeys
	Logger   *slog.Logger
	// Metrics receives the login counters (metrics.go); nil keeps them
	// unexported.
	Metrics prometheus.Registerer
}

var _ Passkeys = (*passkey.Service)(nil)

// Handler serves the login pages.
type Handler struct {
	cfg      Config
	store    Store
	op       OP
	mailer   Mailer
	passkeys Passkeys
	log      *slog.Logger
	rec      *audit.Recorder
	pages    *templates.Set
	verifier *password.Verifier
	csrf     *http.CrossOriginProtection
	otpMail  templates.OTPMail
	now      func() time.Time
	// bcryptCost paces how often the verifier's bcrypt padding is re-read.
	bcryptCost bcryptCostCache
	metrics    *metrics
	// after counts the work still running after its response (the new
	// sign-in mail); Drain waits for it.
	after sync.WaitGroup
}

// New checks the dependencies, applies Config defaults and parses the pages.
func New(cfg Config, deps Deps) (*Handler, error) {
	if deps.Store == nil || deps.OP == nil || deps.Mailer == nil || deps.Logger == nil {
		return nil, errors.New("login: Store, OP, Mailer and Logger are required")
	}
	cfg.Defaults()
	if cfg.NewDeviceMail && cfg.Issuer == "" {
		return nil, errNoIssuer
	}
	if len(cfg.OTPKey) == 0 {
		cfg.OTPKey = make([]byte, 32)
		_, _ = rand.Read(cfg.OTPKey) // crypto/rand.Read never fails (Go 1.24+)
	}
	pages, err := templates.Load()
	if err != nil {
		return nil, fmt.Errorf("login: loading templates: %w", err)
	}
	limiter := password.NewLimiter(cfg.PasswordHashing, cfg.Password)
	verifier, err := password.NewVerifier(cfg.Password, limiter)
	if err != nil {
		return nil, fmt.Errorf("login: password verifier: %w", err)
	}
	m, err := newMetrics(deps.Metrics, limiter)
	if err != nil {
		return nil, err
	}
	if deps.Passkeys != nil {
		deps.Passkeys = countedPasskeys{Passkeys: deps.Passkeys, m: m}
	}
	h := &Handler{
		cfg:      cfg,
		store:    deps.Store,
		op:       deps.OP,
		mailer:   deps.Mailer,
		passkeys: deps.Passkeys,
		log:      deps.Logger,
		rec:      audit.NewRecorder(deps.Store, deps.Logger),
		pages:    pages,
		verifier: verifier,
		csrf:     http.NewCrossOriginProtection(),
		otpMail:  otpMailFAQ(cfg.OTP.From, cfg.OTP.Subject),
		now:      func() time.Time { return time.Now().UTC() },
		metrics:  m,
	}
	h.csrf.SetDenyHandler(http.HandlerFunc(h.crossOriginDenied))
	return h, nil
}

// otpMailFAQ is the sender and subject the FAQ (S9) names, so it matches
// the mail customers actually receive when the config changes them.
func otpMailFAQ(from, subject string) templates.OTPMail {
	addr := from
	if a, err := netmail.ParseAddress(from); err == nil {
		addr = a.Address
	}
	_, domain, _ := strings.Cut(addr, "@")
	return templates.OTPMail{From: addr, Subject: subject, Domain: domain}
}

// Paths of the pages; the templates use the same literals.
const (
	pathLogin           = "/login"
	pathPasskey         = "/login/passkey"
	pathPassword        = "/login/password"
	pathOTP             = "/login/otp"
	pathOTPResend       = "/login/otp/resend"
	pathCreate          = "/login/passkey/create"
	pathCreateSkip      = "/login/passkey/create/skip"
	pathChangePassword  = "/login/password/change"
	pathPasskeyLoginOpt = "/login/passkey/login/options"
	pathPasskeyLoginFin = "/login/passkey/login/finish"
	pathPasskeyRegOpt   = "/login/passkey/register/options"
	pathPasskeyRegFin   = "/login/passkey/register/finish"
	pathHelp            = "/help"
)

// Register mounts every login route, the help page and /static/ on r.
func (h *Handler) Register(r *mux.Router) {
	page := func(path string, get, post http.HandlerFunc) {
		var allow []string
		if get != nil {
			r.Handle(path, h.protect(get)).Methods(http.MethodGet, http.MethodHead)
			allow = append(allow, http.MethodGet, http.MethodHead)
		}
		if post != nil {
			r.Handle(path, h.protect(post)).Methods(http.MethodPost)
			allow = append(allow, http.MethodPost)
		}
		// Any other method lands here rather than on the OP's catch-all,
		// so the customer sees our page instead of a bare 404/405.
		r.Handle(path, securityHeaders(true, h.withLanguage(h.methodNotAllowed(allow))))
	}
	page(pathLogin, h.getLogin, h.postLogin)
	page(pathPasskey, h.getPasskey, h.postPasskey)
	page(pathPassword, h.getPassword, h.postPassword)
	page(pathOTP, h.getOTP, h.postOTP)
	page(pathOTPResend, nil, h.postOTPResend)
	page(pathCreate, h.getCreate, nil)
	page(pathCreateSkip, nil, h.postCreateSkip)
	page(pathChangePassword, h.getChangePassword, h.postChangePassword)
	page(pathOffer, h.getOffer, h.postOffer)
	page(pathOfferSkip, nil, h.postOfferSkip)
	page(pathPasskeyLoginOpt, nil, h.passkeyLoginOptions)
	page(pathPasskeyLoginFin, nil, h.passkeyLoginFinish)
	page(pathPasskeyRegOpt, nil, h.passkeyRegisterOptions)
	page(pathPasskeyRegFin, nil, h.passkeyRegisterFinish)
	page(pathHelp, h.getHelp, nil)
	h.registerAccount(page)
	h.registerEnrolLink(page)
	files := http.FileServerFS(templates.Static())
	static := http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		files.ServeHTTP(w, r)
	}))
	r.PathPrefix("/static/").Handler(securityHeaders(false, static)).Methods(http.MethodGet, http.MethodHead)
}

// protect adds the security headers, the language choice and the
// cross-origin (CSRF) check every login route gets.
func (h *Handler) protect(next http.HandlerFunc) http.Handler {
	return securityHeaders(true, h.withLanguage(h.csrf.Handler(next)))
}

func securityHeaders(noStore bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// No form-action: a login POST ends in a redirect to the client,
		// which browsers would check against form-action.
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		if noStore {
			hd.Set("Cache-Control", "no-store")
		} else {
			hd.Set("Cache-Control", "public, max-age=3600")
		}
		next.ServeHTTP(w, r)
	})
}

func (h *Handler) methodNotAllowed(allow []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h.log.InfoContext(r.Context(), "method not allowed", "method", r.Method, "path", r.URL.Path)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		h.renderError(w, r, http.StatusMethodNotAllowed, "err.method_not_allowed", "")
	}
}

func (h *Handler) crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	h.log.WarnContext(r.Context(), "cross-origin request refused", "method", r.Method, "path", r.URL.Path,
		"origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	h.renderError(w, r, http.StatusForbidden, "err.cross_origin", "")
}

// render writes a full page. It renders into a buffer first so a template
// failure never leaves a half-written page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, p *templates.Page) {
	lang := languageFrom(r.Context())
	p.SiteName = h.cfg.SiteName
	p.Support = templates.Support(h.cfg.Support)
	p.OTPMail = h.otpMail
	if p.ErrorArgs == nil {
		p.ErrorArgs = h.messageArgs(p.Error)
	}
	if p.SwitchURL == "" {
		p.SwitchURL = switchURL(r, lang)
	}
	var buf bytes.Buffer
	if err := h.pages.Render(&buf, lang, name, p); err != nil {
		h.log.ErrorContext(r.Context(), "rendering page", "page", name, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(templates.Text(lang, "err.internal") + "\n"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// messageArgs are the configured values the next steps of a refusal
// name: how long to wait and the centre's phone.
func (h *Handler) messageArgs(key string) []any {
	switch key {
	case "err.too_many_attempts":
		return []any{minutes(h.cfg.PasswordThrottle.Window), h.cfg.Support.Phone}
	case "err.resend_limit":
		// The hourly cap frees a send at most an hour after the oldest.
		return []any{minutes(time.Hour), h.cfg.Support.Phone}
	}
	return nil
}

// minutes is d in whole minutes, at least 1, as the texts count waits.
func minutes(d time.Duration) int {
	return max(1, int((d+time.Minute-1)/time.Minute))
}

// renderError shows the error page. Every one offers the way back to the
// website (home_url), where a login starts afresh; loginURL (may be
// empty) adds S1 of an auth request that is still live.
func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, key, loginURL string) {
	h.render(w, r, status, "error", &templates.Page{Title: "error.title", Error: key, LoginURL: loginURL, HomeURL: h.cfg.HomeURL})
}

// opErrorKeys are the texts of the OP's refusals (op.PageReason values).
var opErrorKeys = map[string]string{
	"authorize_request": "err.authorize_request",
	"auth_request_gone": "err.auth_request",
	"other_browser":     "err.other_browser",
	"not_found":         "err.not_found",
}

// OPErrorPage shows a refusal of the OP that must not be redirected to a
// client (op.Config.ErrorPage, wired by the idp command): an /authorize
// request without a registered client and redirect_uri, a callback from
// another browser, an unknown path. It is our error page in the
// customer's language, with the centre's contact and the way back to the
// website, so the OP itself stays free of HTML.
func (h *Handler) OPErrorPage(w http.ResponseWriter, r *http.Request, status int, reason string) {
	key, ok := opErrorKeys[reason]
	if !ok {
		h.log.WarnContext(r.Context(), "OP refusal without a text of its own", "reason", reason, "path", r.URL.Path)
		key = "err.authorize_request"
	}
	securityHeaders(true, h.withLanguage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.renderError(w, r, status, key, "")
	}))).ServeHTTP(w, r)
}

// internalError logs err and shows the generic apology (never the detail).
func (h *Handler) internalError(w http.ResponseWriter, r *http.Request, msg string, err error) {
	h.log.ErrorContext(r.Context(), msg, "path", r.URL.Path, "err", err)
	h.renderError(w, r, failureStatus(w, err), "err.internal", "")
}

// unavailableRetry is what a 503 asks the browser to wait.
const unavailableRetry = 5 * time.Second

// failureStatus is the status of a failure that is ours, not the
// client's: 503 with Retry-After while the database cannot serve (a
// restart, a failover: trying again soon will work), 500 otherwise.
func failureStatus(w http.ResponseWriter, err error) int {
	status := errorStatus(err)
	if status == http.StatusServiceUnavailable {
		retryAfter(w, unavailableRetry)
	}
	return status
}

// errorStatus is failureStatus for a caller that sets no headers.
func errorStatus(err error) int {
	if errors.Is(err, storage.ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// pageOfPost is the GET page that shows the state a POST-only path
// answers with, for the language switch.
var pageOfPost = map[string]string{
	pathOTPResend:        pathOTP,
	pathCreateSkip:       pathCreate,
	pathOfferSkip:        pathOffer,
	pathAccountRename:    pathAccount,
	pathAccountDelete:    pathAccount, // its GET page needs the passkey's id
	pathAccountEndOthers: pathAccount,
}

// switchURL is the current page in the other language. For POST answers it
// points at the GET page of the same path (or of the step the POST-only
// path belongs to), so the switch never leads to a 405.
func switchURL(r *http.Request, lang string) string {
	q := url.Values{}
	path := r.URL.Path
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		q = r.URL.Query()
	} else if p, ok := pageOfPost[path]; ok {
		path = p
	}
	q.Set("lang", otherLang(lang))
	return path + "?" + q.Encode()
}

func (h *Handler) getHelp(w http.ResponseWriter, r *http.Request) {
	p := &templates.Page{Title: "help.title"}
	if f, err := h.currentFlow(r); err == nil && f.AuthRequestID != "" {
		p.LoginURL = loginURL(f.AuthRequestID)
	}
	h.render(w, r, http.StatusOK, "help", p)
}

func loginURL(authRequestID string) string {
	if authRequestID == "" {
		return pathLogin // S1 of the current flow (an S8 sign-in)
	}
	return pathLogin + "?authRequestID=" + url.QueryEscape(authRequestID)
}

// audit records a security event; a failure is logged by the recorder, not
// fatal, because the customer's action already happened.
func (h *Handler) audit(r *http.Request, ev audit.Event, userID string, detail audit.Detail) {
	h.record(r.Context(), ev, h.auditEntry(r, userID, detail))
}

// auditEntry is what audit records of r, for work that records it after
// the response (when r is no longer the handler's to read).
func (h *Handler) auditEntry(r *http.Request, userID string, detail audit.Detail) audit.Entry {
	actor := audit.System
	if userID != "" {
		actor = audit.User(userID)
	}
	return audit.Entry{Time: h.now(), Actor: actor, UserID: userID, IP: h.clientIP(r), UserAgent: r.UserAgent(), Detail: detail}
}

func (h *Handler) record(ctx context.Context, ev audit.Event, e audit.Entry) {
	h.metrics.audited(ev, e.Detail)
	_ = h.rec.Record(ctx, ev, e)
}

// clientIP is the address the audit trail and throttles use.
func (h *Handler) clientIP(r *http.Request) string {
	return clientaddr.Of(r, h.cfg.TrustProxyHeaders)
}
