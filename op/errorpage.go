package op

import (
	"net/http"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// ErrorPage shows the customer's browser a refusal that must not go back
// to a client: an /authorize request whose client or redirect_uri cannot
// be trusted, a callback from another browser, an unknown path. The OP
// has no pages of its own; the idp command wires package login's error
// page here (Config.ErrorPage). status is the HTTP status to answer with.
type ErrorPage func(w http.ResponseWriter, r *http.Request, status int, reason PageReason)

// PageReason says which refusal an ErrorPage shows.
type PageReason string

const (
	// ReasonAuthorizeRequest: /authorize without a client_id or
	// redirect_uri, with an unknown client, or with a redirect_uri the
	// client did not register (RFC 6749 section 4.1.2.1: never redirect).
	ReasonAuthorizeRequest PageReason = "authorize_request"
	// ReasonAuthRequestGone: the sign-in's auth request is unknown or
	// expired, so there is no client to go back to.
	ReasonAuthRequestGone PageReason = "auth_request_gone"
	// ReasonOtherBrowser: the callback of a sign-in that was started in
	// another browser (the binding cookie is missing, binding.go).
	ReasonOtherBrowser PageReason = "other_browser"
	// ReasonNotFound: a path the provider does not serve (404).
	ReasonNotFound PageReason = "not_found"
)

// errorPage answers with Config.ErrorPage, or with plain text when none
// is wired (the package's own tests, a provider without pages).
func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, status int, reason PageReason) {
	if p.cfg.ErrorPage != nil {
		p.cfg.ErrorPage(w, r, status, reason)
		return
	}
	if status == http.StatusNotFound {
		http.NotFound(w, r)
		return
	}
	http.Error(w, strings.ReplaceAll(string(reason), "_", " "), status)
}

// unboundReason says why a callback without its binding cookie is
// refused: a request that is gone (its cookie expired with it) is not
// "another browser". The read is paid on the refusal only.
func (p *Provider) unboundReason(r *http.Request, authRequestID string) PageReason {
	if !p.storage.storable(r.Context(), "auth_request_id", authRequestID) {
		return ReasonAuthRequestGone
	}
	ar, err := p.store.AuthRequestByID(r.Context(), authRequestID)
	if err != nil || ar.Done || !p.storage.now().Before(ar.ExpiresAt) {
		return ReasonAuthRequestGone
	}
	return ReasonOtherBrowser
}

// checkAuthorize answers, before zitadel, the /authorize requests zitadel
// would answer in plain English, or answer at all, where RFC 6749 section
// 4.1.2.1 says otherwise. A request whose client or redirect_uri is not
// exactly a registered pair gets our error page and is never redirected.
// Once the redirect_uri is the client's own, errors go back to it with
// error, state and iss: parameters zitadel cannot decode, and a
// response_type other than code (zitadel refuses response_type=token for
// an http redirect_uri as an untrusted redirect, with a text page).
// It returns false when it has answered.
func (p *Provider) checkAuthorize(w http.ResponseWriter, r *http.Request) bool {
	ctx := r.Context()
	clientID, redirect := r.Form.Get("client_id"), r.Form.Get("redirect_uri")
	c, known := p.storage.clients[clientID]
	switch {
	case clientID == "" || redirect == "":
		p.log.InfoContext(ctx, "authorize: client_id or redirect_uri missing", "client", truncated(clientID))
	case !known:
		p.log.InfoContext(ctx, "authorize: unknown client", "client", truncated(clientID))
	case !slices.Contains(c.cfg.RedirectURIs, redirect):
		p.log.InfoContext(ctx, "authorize: redirect_uri not registered", "client", clientID, "redirect_uri", truncated(redirect))
	default:
		var req oidc.AuthRequest
		if err := p.zop.Decoder().Decode(&req, r.Form); err != nil {
			p.log.InfoContext(ctx, "authorize: malformed parameters", "client", clientID, "err", err)
			p.redirectAuthorizeError(w, r, redirect, oidc.ErrInvalidRequest().WithDescription("malformed parameters"))
			return false
		}
		switch rt := r.Form.Get("response_type"); rt {
		case string(oidc.ResponseTypeCode):
			return true
		case "":
			p.log.InfoContext(ctx, "authorize: response_type missing", "client", clientID)
			p.redirectAuthorizeError(w, r, redirect, oidc.ErrInvalidRequest().WithDescription("response_type is required"))
		default:
			p.log.InfoContext(ctx, "authorize: unsupported response_type", "client", clientID, "response_type", truncated(rt))
			p.redirectAuthorizeError(w, r, redirect, &oidc.Error{
				ErrorType: "unsupported_response_type", Description: "only response_type=code is supported",
			})
		}
		return false
	}
	p.errorPage(w, r, http.StatusBadRequest, ReasonAuthorizeRequest)
	return false
}

// redirectAuthorizeError sends an /authorize error to the client's
// registered redirect_uri, in the query (the only response mode offered);
// w adds iss.
func (p *Provider) redirectAuthorizeError(w http.ResponseWriter, r *http.Request, redirect string, e *oidc.Error) {
	zop.AuthRequestError(w, r, errorTarget{redirect: redirect, state: r.Form.Get("state")}, e, p.zop)
}

// errorTarget is where an /authorize error goes: the checked
// redirect_uri, in the query whatever response_type was asked for.
type errorTarget struct{ redirect, state string }

func (t errorTarget) GetRedirectURI() string             { return t.redirect }
func (t errorTarget) GetResponseType() oidc.ResponseType { return oidc.ResponseTypeCode }
func (t errorTarget) GetState() string                   { return t.state }

// truncated bounds a value from the request for a log line.
func truncated(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// pageWriter turns the plain-text refusals zitadel writes on the browser
// endpoints (http.Error: a 4xx with text/plain) into our error page; any
// other answer passes through.
type pageWriter struct {
	http.ResponseWriter
	r        *http.Request
	p        *Provider
	reason   PageReason
	replaced bool
}

func (w *pageWriter) WriteHeader(status int) {
	if w.replaced {
		return
	}
	if status >= 400 && status < 500 && w.p.cfg.ErrorPage != nil &&
		strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.replaced = true
		h := w.Header()
		h.Del("Content-Type")
		h.Del("Content-Length")
		w.p.cfg.ErrorPage(w.ResponseWriter, w.r, status, w.reason)
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *pageWriter) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil // zitadel's text; our page is written
	}
	return w.ResponseWriter.Write(b)
}
