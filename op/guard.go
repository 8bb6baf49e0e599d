package op

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/login/clientaddr"
)

// maxRequestBody bounds every request body; OAuth requests are tiny.
const maxRequestBody = 64 << 10

// endpoint paths of zitadel's router (the defaults).
const (
	pathDiscovery = "/.well-known/openid-configuration"
	pathAuthorize = "/authorize"
	pathCallback  = "/authorize/callback"
	pathToken     = "/oauth/token"
	pathIntrospec = "/oauth/introspect"
	pathUserinfo  = "/userinfo"
	pathRevoke    = "/revoke"
	pathEndSess   = "/end_session"
	pathKeys      = "/keys"
	pathHealth    = "/healthz"
	pathReady     = "/ready"
)

var allowedMethods = map[string][]string{
	pathDiscovery: {http.MethodGet, http.MethodHead},
	pathKeys:      {http.MethodGet, http.MethodHead},
	pathHealth:    {http.MethodGet, http.MethodHead},
	pathReady:     {http.MethodGet, http.MethodHead},
	pathAuthorize: {http.MethodGet, http.MethodPost},
	pathCallback:  {http.MethodGet},
	pathToken:     {http.MethodPost},
	pathIntrospec: {http.MethodPost},
	pathRevoke:    {http.MethodPost},
	pathUserinfo:  {http.MethodGet, http.MethodPost},
	pathEndSess:   {http.MethodGet, http.MethodPost},
}

// noStorePaths answer with tokens, credentials or personal data.
var noStorePaths = map[string]bool{pathToken: true, pathIntrospec: true, pathUserinfo: true, pathRevoke: true}

// guard answers what zitadel would answer with a 500 or not at all
// (unknown paths, wrong methods, oversized or malformed bodies) with a 4xx
// and a log line, and adds the RFC 9207 iss parameter and our restrictions
// to the responses zitadel builds.
func (p *Provider) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods, known := allowedMethods[r.URL.Path]
		if !known {
			p.log.InfoContext(r.Context(), "op: unknown endpoint", "path", r.URL.Path, "method", r.Method)
			p.errorPage(w, r, http.StatusNotFound, ReasonNotFound)
			return
		}
		if noStorePaths[r.URL.Path] {
			// RFC 6749 section 5.1 (MUST), for errors too; Pragma for
			// HTTP/1.0 caches.
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
		}
		// OPTIONS reaches zitadel's CORS middleware for preflights.
		if r.Method != http.MethodOptions && !slices.Contains(methods, r.Method) {
			p.log.InfoContext(r.Context(), "op: method not allowed", "path", r.URL.Path, "method", r.Method)
			w.Header().Set("Allow", strings.Join(methods, ", "))
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		// Parsing here makes zitadel's own ParseForm a no-op, and a body it
		// cannot read a 4xx instead of a server error.
		if err := r.ParseForm(); err != nil {
			status := http.StatusBadRequest
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				status = http.StatusRequestEntityTooLarge
			}
			p.log.InfoContext(r.Context(), "op: unreadable request", "path", r.URL.Path, "err", err)
			http.Error(w, http.StatusText(status), status)
			return
		}
		// sw sees the final status, after an outage turned it into 503.
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		info := &requestInfo{addr: clientaddr.Of(r, p.cfg.TrustProxyHeaders)}
		r = r.WithContext(withRequestInfo(r.Context(), info))
		if outagePaths[r.URL.Path] {
			w = &outageWriter{ResponseWriter: w, ctx: r.Context(), p: p, oauth: r.URL.Path != pathCallback}
		}
		var done func(status int)
		// after runs when zitadel has answered.
		after := func() {}
		switch r.URL.Path {
		case pathToken:
			// The secret first: a client it verified skips the token
			// throttle (tokenThrottled).
			if !p.authenticateClient(w, r, info) {
				return
			}
			if p.tokenThrottled(info) {
				var ok bool
				if done, ok = p.reserveTokenAttempt(w, r, info); !ok {
					return
				}
			}
		case pathIntrospec, pathRevoke:
			if !p.authenticateClient(w, r, info) {
				return
			}
			info.revoked = r.PostForm.Get("token")
		case pathUserinfo:
			// RFC 6750 section 2.3: a token in the URL leaks into logs,
			// history and Referer headers.
			if r.URL.Query().Has("access_token") {
				p.log.InfoContext(r.Context(), "userinfo: access token in the query string refused")
				writeOAuthError(w, http.StatusBadRequest, oidc.ErrInvalidRequest().
					WithDescription("send the access token in the Authorization header or the form body, not the URL"))
				return
			}
		case pathDiscovery:
			p.serveDiscovery(w, r)
			return
		case pathEndSess:
			// zitadel answers a parameter it cannot decode with a 500.
			if err := p.zop.Decoder().Decode(new(oidc.EndSessionRequest), r.Form); err != nil {
				p.log.InfoContext(r.Context(), "end_session: malformed parameters", "err", err)
				http.Error(w, "malformed end_session parameters", http.StatusBadRequest)
				return
			}
		case pathAuthorize:
			base := w
			bw := &bindingWriter{ResponseWriter: &issWriter{ResponseWriter: w, issuer: p.cfg.Issuer}, p: p,
				hold: p.cfg.SessionAnswer != nil && r.Method == http.MethodGet}
			info.deferCreate = bw.hold
			w = bw
			if !p.checkAuthorize(w, r) {
				return
			}
			after = func() {
				if bw.held != "" {
					p.answerHeld(base, r, bw)
				}
			}
			// Whatever zitadel still refuses without a redirect is a
			// browser's dead end: our page instead of its text.
			w = &pageWriter{ResponseWriter: w, r: r, p: p, reason: ReasonAuthorizeRequest}
		case pathCallback:
			id := r.Form.Get("id")
			if id != "" && !p.BrowserBound(r, id) {
				p.log.WarnContext(r.Context(), "authorize callback: request not started in this browser", "auth_request", id)
				p.errorPage(w, r, http.StatusBadRequest, p.unboundReason(r, id))
				return
			}
			iw := &issWriter{ResponseWriter: w, issuer: p.cfg.Issuer}
			if id != "" {
				// Spent only once the code is on its way: a callback that
				// failed (a database restart) must stay retryable in this
				// browser.
				iw.expire = p.bindingCookie(id, -1)
			}
			w = &pageWriter{ResponseWriter: iw, r: r, p: p, reason: ReasonAuthRequestGone}
		}
		next.ServeHTTP(w, r)
		after()
		if done != nil {
			done(sw.status)
		}
		p.metrics.answered(r, sw.status)
		switch {
		case sw.status >= 500:
			p.log.ErrorContext(r.Context(), "op: server error", "path", r.URL.Path, "method", r.Method, "status", sw.status)
		case sw.status >= 400:
			p.log.InfoContext(r.Context(), "op: request refused", "path", r.URL.Path, "method", r.Method, "status", sw.status)
		}
	})
}

// statusWriter remembers the status for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// issWriter adds iss (RFC 9207) to every authorization response redirected
// to a client; zitadel v3.51.17 does not. Redirects to our own pages are
// relative and left alone.
type issWriter struct {
	http.ResponseWriter
	issuer string
	// expire is set on the redirect to the client, if any.
	expire *http.Cookie
}

func (w *issWriter) WriteHeader(status int) {
	if status >= 300 && status < 400 {
		if loc := w.Header().Get("Location"); loc != "" {
			if u, err := url.Parse(loc); err == nil && u.IsAbs() {
				w.Header().Set("Location", addIssuer(u, w.issuer))
				if w.expire != nil {
					http.SetCookie(w.ResponseWriter, w.expire)
				}
			}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// addIssuer sets iss where the response's parameters are: the fragment or
// the query.
func addIssuer(u *url.URL, issuer string) string {
	if u.RawFragment != "" || u.Fragment != "" {
		frag, _ := url.ParseQuery(u.Fragment)
		frag.Set("iss", issuer)
		u.Fragment, u.RawFragment = "", frag.Encode()
		u.Fragment, _ = url.PathUnescape(u.RawFragment)
	} else {
		q := u.Query()
		q.Set("iss", issuer)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// writeOAuthError answers an OAuth error as JSON (RFC 6749 section 5.2) for
// refusals made here, before zitadel sees the request.
func writeOAuthError(w http.ResponseWriter, status int, e *oidc.Error) {
	body, err := json.Marshal(e)
	if err != nil {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
