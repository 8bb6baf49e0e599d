package login

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
)

// getLogin is where the OP sends the browser: GET /login?authRequestID=ID.
// A usable SSO session completes the request at once; otherwise a new flow
// starts at S1. Without authRequestID it redisplays S1 of the current flow.
func (h *Handler) getLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("authRequestID")
	if id == "" {
		f := h.liveFlow(w, r, "err.auth_request")
		if f == nil {
			return
		}
		ar, ok := h.flowAuthRequest(w, r, f)
		if !ok {
			return
		}
		fe := h.takeFormError(r, f, pathLogin)
		status, key := formStatus(fe)
		loginID := f.LoginID
		if fe != nil && fe.LoginID != "" {
			loginID = fe.LoginID
		}
		h.renderLogin(w, r, status, ar, loginID, key)
		return
	}
	ar, ok := h.authRequest(w, r, id)
	if !ok {
		return
	}
	// Checked after the request is known to be live: a gone request is
	// "expired", whichever browser asks.
	if !h.op.BrowserBound(r, id) {
		h.log.WarnContext(ctx, "auth request opened in a browser that did not start it", "auth_request", id)
		h.renderError(w, r, http.StatusBadRequest, "err.other_browser", "")
		return
	}
	if h.trySSO(w, r, ar) {
		return
	}
	if slices.Contains(ar.Prompt, oidc.PromptNone) {
		h.log.InfoContext(ctx, "prompt=none without a usable session", "auth_request", ar.ID)
		h.op.RedirectError(w, r, ar.ID, oidc.ErrLoginRequired())
		return
	}
	f, err := h.startFlow(w, r, ar.ID, ar.LoginHint)
	if err != nil {
		h.internalError(w, r, "starting login flow", err)
		return
	}
	notice := ""
	switch r.URL.Query().Get(noticeParam) {
	case noticePasskeyRequired:
		notice = "err.passkey_required_now"
	case noticeCodeRequired:
		notice = "err.code_required_now"
	}
	h.renderLogin(w, r, http.StatusOK, ar, f.LoginID, notice)
}

// maxAuthRequestIDBytes is far above the OP's IDs (UUIDs); longer input
// is not looked up.
const maxAuthRequestIDBytes = 128

// authRequest loads a pending auth request or answers with the friendly 400.
func (h *Handler) authRequest(w http.ResponseWriter, r *http.Request, id string) (*storage.AuthRequest, bool) {
	var ar *storage.AuthRequest
	err := storage.ErrNotFound // an ID that could not have been issued is unknown
	if storableText(id, maxAuthRequestIDBytes) {
		ar, err = h.store.AuthRequestByID(r.Context(), id)
	}
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ar.Done || !h.now().Before(ar.ExpiresAt))) {
		h.log.InfoContext(r.Context(), "unknown, finished or expired auth request", "auth_request", truncate(id, 100))
		h.staleLogin(w, r, http.StatusBadRequest, "err.auth_request")
		return nil, false
	}
	if err != nil {
		h.internalError(w, r, "loading auth request", err)
		return nil, false
	}
	authRequestKnown(r, ar)
	return ar, true
}

// flowAuthRequest is authRequest for the flow's request; a flow started by
// S8 has none and gets (nil, true).
func (h *Handler) flowAuthRequest(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow) (*storage.AuthRequest, bool) {
	if f.AuthRequestID == "" {
		return nil, true
	}
	return h.authRequest(w, r, f.AuthRequestID)
}

// renderLogin shows S1; ar is nil for a sign-in started by S8.
func (h *Handler) renderLogin(w http.ResponseWriter, r *http.Request, status int, ar *storage.AuthRequest, loginID, errKey string) {
	p := &templates.Page{
		Title: "s1.title", Error: errKey, LoginID: loginID,
		PasswordAllowed: ar == nil || !h.passkeyOnly(ar),
	}
	if ar == nil {
		p.SwitchURL = pathLogin + "?lang=" + otherLang(languageFrom(r.Context()))
		h.render(w, r, status, "login", p)
		return
	}
	if name, err := h.op.ClientName(ar.ClientID); err == nil {
		p.ClientName = name
	} else {
		h.log.WarnContext(r.Context(), "client name unavailable", "client", ar.ClientID, "err", err)
	}
	p.SwitchURL = loginURL(ar.ID) + "&lang=" + otherLang(languageFrom(r.Context()))
	h.render(w, r, status, "login", p)
}

func otherLang(lang string) string {
	if lang == "en" {
		return "ja"
	}
	return "en"
}

// passkeyOnly: the client's acr_values accept nothing weaker than the
// phishing-resistant acr, so ID + password cannot satisfy it.
func (h *Handler) passkeyOnly(ar *storage.AuthRequest) bool {
	return h.cfg.ACR.required(ar.ACRValues) == levelPasskey
}

// needsCode: the client's acr_values accept nothing weaker than password +
// e-mail code, so a password login must be followed by the code.
func needsCode(cfg ACRConfig, ar *storage.AuthRequest) bool {
	return ar != nil && cfg.required(ar.ACRValues) == levelPasswordOTP
}

// SessionAnswer is op.Config.SessionAnswer: a new authorization request
// answered at /authorize from the browser's SSO session, under trySSO's
// rules (the login page's), so a signed-in customer goes back to the
// website in one redirect. false: a login is needed and nothing was
// written.
func (h *Handler) SessionAnswer(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
	answered := false
	securityHeaders(true, h.withLanguage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answered = h.trySSO(w, r, ar)
	}))).ServeHTTP(w, r)
	return answered
}

// sessionTouchInterval is how stale trySSO lets a session's LastSeenAt get.
const sessionTouchInterval = time.Minute

// trySSO completes ar from the SSO session cookie when the request allows
// it. It returns false (and has written nothing) when a login is needed.
func (h *Handler) trySSO(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
	ctx := r.Context()
	su, err := h.sessionWithUser(r)
	if err != nil {
		if !errors.Is(err, errNoSession) {
			h.log.ErrorContext(ctx, "loading session for SSO", "err", err)
		}
		return false
	}
	s := &su.Session
	now := h.now()
	switch {
	case slices.Contains(ar.Prompt, oidc.PromptLogin):
		return false
	case ar.MaxAge != nil && now.Sub(s.AuthTime) > *ar.MaxAge:
		return false
	case !h.cfg.ACR.satisfies(s.ACR, ar.ACRValues):
		return false
	case ar.IDTokenHintSubject != "" && ar.IDTokenHintSubject != s.UserID:
		return false
	}
	if passwordOnlySession(s.AMR) && su.HasPasskey {
		h.log.InfoContext(ctx, "password-only session ignored: the user has a passkey", "user", s.UserID)
		return false
	}
	redirect, err := h.op.Complete(w, r, ar.ID, s)
	if errors.Is(err, storage.ErrSessionEnded) {
		// Signed out elsewhere between the read and the completion: the
		// request still wants a login.
		h.log.InfoContext(ctx, "SSO session ended before it answered", "auth_request", ar.ID, "user", s.UserID)
		return false
	}
	if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
		// Already completed (a reload, a double submit) or expired.
		h.log.InfoContext(ctx, "auth request no longer completable", "auth_request", ar.ID, "err", err)
		h.renderError(w, r, http.StatusBadRequest, "err.auth_request", "")
		return true
	}
	if err != nil {
		h.log.ErrorContext(ctx, "completing auth request from session", "auth_request", ar.ID, "err", err)
		return false
	}
	// last_seen_at is informational (no rule reads it): a minute's
	// precision spares one write per SSO login of an active customer.
	if now.Sub(s.LastSeenAt) >= sessionTouchInterval {
		if err := h.store.TouchSession(ctx, s.ID, now); err != nil {
			h.log.WarnContext(ctx, "touching session", "err", err)
		}
	}
	h.log.InfoContext(ctx, "auth request completed by SSO session", "user", s.UserID, "auth_request", ar.ID)
	http.Redirect(w, r, redirect, http.StatusSeeOther)
	return true
}
