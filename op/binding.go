package op

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
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
// our login pages with a new request ID.
type bindingWriter struct {
	http.ResponseWriter
	p *Provider
}

func (w *bindingWriter) WriteHeader(status int) {
	if status >= 300 && status < 400 {
		if u, err := url.Parse(w.Header().Get("Location")); err == nil && !u.IsAbs() && u.Path == loginPath {
			if id := u.Query().Get(loginRequestParam); id != "" {
				http.SetCookie(w.ResponseWriter, w.p.bindingCookie(id, int(w.p.cfg.AuthRequestLifetime.Seconds())))
			}
		}
	}
	w.ResponseWriter.WriteHeader(status)
}
