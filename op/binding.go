package op

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// bindingCookiePrefix names the cookies that tie an authorization request to
// the browser that sent it; the request ID completes the name so that
// several tabs can each run a login.
const bindingCookiePrefix = "idp_ar_"

// The authorization request ID travels in URLs (/login?authRequestID=…,
// /authorize/callback?id=…), and zitadel's callback mints a code for
// whoever presents a completed ID. Without a binding, an attacker could
// start a request, send the victim the login link on our real domain (a
// passkey happily signs it), and collect the victim's code at the callback
// from the attacker's own browser. The binding cookie, set on the browser
// that called /authorize, lets the login pages and the callback refuse
// every other browser.

func (p *Provider) bindingValue(authRequestID string) string {
	mac := hmac.New(sha256.New, p.bindingKey)
	mac.Write([]byte(authRequestID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func bindingCookieName(authRequestID string) string { return bindingCookiePrefix + authRequestID }

// BrowserBound reports whether r comes from the browser that started the
// authorization request authRequestID. The login pages must check it before
// they show a login form for, or complete, a request named in their URL.
func (p *Provider) BrowserBound(r *http.Request, authRequestID string) bool {
	if authRequestID == "" {
		return false
	}
	c, err := r.Cookie(bindingCookieName(authRequestID))
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(c.Value), []byte(p.bindingValue(authRequestID)))
}

func (p *Provider) bindingCookie(authRequestID string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     bindingCookieName(authRequestID),
		Value:    p.bindingValue(authRequestID),
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   strings.HasPrefix(p.cfg.Issuer, "https://"),
		SameSite: http.SameSiteLaxMode,
	}
}

// bindingWriter sets the binding cookie when /authorize sends the browser to
// our login pages with a new request ID. With hold, it keeps that redirect
// back instead (and drops its body), so that answer can try the browser's
// SSO session first and send it only when a login is needed.
type bindingWriter struct {
	http.ResponseWriter
	p    *Provider
	hold bool
	// held is the request ID of the redirect held back.
	held string
}

func (w *bindingWriter) WriteHeader(status int) {
	if id := w.loginRedirect(status); id != "" {
		if w.hold {
			w.held = id
			return
		}
		http.SetCookie(w.ResponseWriter, w.p.bindingCookie(id, int(w.p.cfg.AuthRequestLifetime.Seconds())))
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *bindingWriter) Write(b []byte) (int, error) {
	if w.held != "" {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// loginRedirect is the request ID of a redirect to the login page.
func (w *bindingWriter) loginRedirect(status int) string {
	if status < 300 || status >= 400 {
		return ""
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil || u.IsAbs() || u.Path != loginPath {
		return ""
	}
	return u.Query().Get(loginRequestParam)
}

// answerHeld ends an /authorize request whose redirect to the login page
// bw held back: SessionAnswer may complete the new request from the SSO
// session and send the browser to the client at once (a request and two
// reads fewer for every SSO login, and the request stored completed in one
// write); otherwise the request is stored and the redirect goes out as it
// was. No binding check is needed: the request was created by this very
// answer.
func (p *Provider) answerHeld(w http.ResponseWriter, r *http.Request, bw *bindingWriter) {
	info := requestInfoFrom(r.Context())
	ar := info.created
	if ar == nil || ar.ID != bw.held {
		p.releaseHeld(bw)
		return
	}
	location := w.Header().Get("Location")
	w.Header().Del("Location")
	if p.cfg.SessionAnswer(w, r, ar) {
		return
	}
	w.Header().Set("Location", location)
	if !info.stored {
		if err := p.store.CreateAuthRequest(r.Context(), ar); err != nil {
			p.log.ErrorContext(r.Context(), "authorize: store auth request", "client", ar.ClientID, "err", err)
			w.Header().Del("Location")
			// What zitadel answers a failed CreateAuthRequest: the error to
			// the client's redirect URI, with iss.
			zop.AuthRequestError(bw.ResponseWriter, r, authRequest{r: ar}, err, p.zop)
			return
		}
		info.stored = true
	}
	p.releaseHeld(bw)
}

// releaseHeld sends the redirect bw held back, with the binding cookie.
func (p *Provider) releaseHeld(bw *bindingWriter) {
	bw.hold = false
	bw.held = ""
	bw.WriteHeader(http.StatusFound)
}
