package login

import (
	"errors"
	"net/http"
	"slices"

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
		f, err := h.currentFlow(r)
		if err != nil {
			h.log.InfoContext(ctx, "login page without auth request or flow", "err", err)
			h.renderError(w, r, http.StatusBadRequest, "err.auth_request", "")
			return
		}
		ar, ok := h.flowAuthRequest(w, r, f)
		if !ok {
			return
		}
		h.renderLogin(w, r, http.StatusOK, ar, f.LoginID, "")
		return
	}
	if !h.op.BrowserBound(r, id) {
		h.log.WarnContext(ctx, "auth request opened in a browser that did not start it", "auth_request", id)
		h.renderError(w, r, http.StatusBadRequest, "err.auth_request", "")
		return
	}
	ar, ok := h.authRequest(w, r, id)
	if !ok {
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
	if r.URL.Query().Get(noticeParam) == noticePasskeyRequired {
		notice = "err.passkey_required_now"
	}
	h.renderLogin(w, r, http.StatusOK, ar, f.LoginID, notice)
}

// authRequest loads a pending auth request or answers with the friendly 400.
func (h *Handler) authRequest(w http.ResponseWriter, r *http.Request, id string) (*storage.AuthRequest, bool) {
	ar, err := h.store.AuthRequestByID(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (ar.Done || !h.now().Before(ar.ExpiresAt))) {
		h.log.InfoContext(r.Context(), "unknown, finished or expired auth request", "auth_request", id)
		h.renderError(w, r, http.StatusBadRequest, "err.auth_request", "")
		return nil, false
	}
	if err != nil {
		h.internalError(w, r, "loading auth request", err)
		return nil, false
	}
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

// passkeyOnly: the client asked for the phishing-resistant acr and nothing
// else, so ID + password cannot satisfy it.
func (h *Handler) passkeyOnly(ar *storage.AuthRequest) bool {
	if len(ar.ACRValues) == 0 {
		return false
	}
	for _, v := range ar.ACRValues {
		if v != h.cfg.ACR.Passkey {
			return false
		}
	}
	return true
}

// trySSO completes ar from the SSO session cookie when the request allows
// it. It returns false (and has written nothing) when a login is needed.
func (h *Handler) trySSO(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
	ctx := r.Context()
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	s, err := h.store.SessionByID(ctx, storage.HashSecret(c.Value))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			h.log.ErrorContext(ctx, "loading session", "err", err)
		}
		return false
	}
	now := h.now()
	switch {
	case !now.Before(s.ExpiresAt):
		return false
	case slices.Contains(ar.Prompt, oidc.PromptLogin):
		return false
	case ar.MaxAge != nil && now.Sub(s.AuthTime) > *ar.MaxAge:
		return false
	case slices.Contains(ar.ACRValues, h.cfg.ACR.Passkey) && s.ACR != h.cfg.ACR.Passkey && !slices.Contains(ar.ACRValues, s.ACR):
		return false
	case ar.IDTokenHintSubject != "" && ar.IDTokenHintSubject != s.UserID:
		return false
	}
	user, err := h.store.UserByID(ctx, s.UserID)
	if err != nil || user.Locked {
		h.log.InfoContext(ctx, "session of a missing or locked user ignored", "user", s.UserID, "err", err)
		return false
	}
	// Rule 1 for sessions: once the user has a passkey, a session that only
	// a password opened (perhaps in another browser, before the passkey was
	// added) no longer signs anyone in.
	if slices.Equal(s.AMR, []string{"pwd"}) {
		n, err := h.store.CountCredentials(ctx, user.ID)
		if err != nil {
			h.log.ErrorContext(ctx, "counting passkeys for SSO", "user", user.ID, "err", err)
			return false
		}
		if n > 0 {
			h.log.InfoContext(ctx, "password-only session ignored: the user has a passkey", "user", user.ID)
			return false
		}
	}
	redirect, err := h.op.Complete(ctx, ar.ID, s.UserID, s.AuthTime, s.AMR, s.ACR)
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
	if err := h.store.TouchSession(ctx, s.ID, now); err != nil {
		h.log.WarnContext(ctx, "touching session", "err", err)
	}
	h.log.InfoContext(ctx, "auth request completed by SSO session", "user", s.UserID, "auth_request", ar.ID)
	http.Redirect(w, r, redirect, http.StatusSeeOther)
	return true
}

// EndSession wraps the OP's end_session endpoint: our SSO session row and
// cookie go first (the OP never clears them), then the OP redirects.
func (h *Handler) EndSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			id := storage.HashSecret(c.Value)
			userID := ""
			if s, err := h.store.SessionByID(r.Context(), id); err == nil {
				userID = s.UserID
			}
			if err := h.store.DeleteSession(r.Context(), id); err != nil && !errors.Is(err, storage.ErrNotFound) {
				h.log.ErrorContext(r.Context(), "deleting session at logout", "err", err)
			} else if userID != "" {
				h.audit(r, "session.ended", userID, nil)
			}
		}
		h.clearCookie(w, sessionCookie)
		h.clearCookie(w, flowCookie)
		next.ServeHTTP(w, r)
	})
}
