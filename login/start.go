package login

import (
	"errors"
	"net/http"
	"slices"
	"strings"
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

// sessionTouchInterval is how stale trySSO lets a session's LastSeenAt get.
const sessionTouchInterval = time.Minute

// trySSO completes ar from the SSO session cookie when the request allows
// it. It returns false (and has written nothing) when a login is needed.
func (h *Handler) trySSO(w http.ResponseWriter, r *http.Request, ar *storage.AuthRequest) bool {
	ctx := r.Context()
	s, user, err := h.loadSession(r)
	if err != nil {
		if !errors.Is(err, errNoSession) {
			h.log.ErrorContext(ctx, "loading session for SSO", "err", err)
		}
		return false
	}
	now := h.now()
	switch {
	case slices.Contains(ar.Prompt, oidc.PromptLogin):
		return false
	case ar.MaxAge != nil && now.Sub(s.AuthTime) > *ar.MaxAge:
		return false
	case slices.Contains(ar.ACRValues, h.cfg.ACR.Passkey) && s.ACR != h.cfg.ACR.Passkey && !slices.Contains(ar.ACRValues, s.ACR):
		return false
	case ar.IDTokenHintSubject != "" && ar.IDTokenHintSubject != s.UserID:
		return false
	}
	if passwordOnlySession(s.AMR) {
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

// EndSession wraps the OP's end_session endpoint, which never clears our SSO
// session. A logout URL is a plain GET any website can send a browser to, so
// the session ends at once only when the request carries an id_token_hint
// we signed for the session's user (a real RP logout); otherwise the user is
// asked to confirm with a same-origin POST (OpenID RP-Initiated Logout §2).
// Either way the OP checks client_id, post_logout_redirect_uri and the hint
// first, and the session ends only if it accepts them (see logoutWriter).
func (h *Handler) EndSession(next http.Handler) http.Handler {
	logout := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lw := &logoutWriter{w: w, header: http.Header{}, accept: func() { h.endSession(w, r) }}
		next.ServeHTTP(lw, r)
		if lw.accepted {
			return
		}
		status, key := lw.status, "err.logout_request"
		if status < 400 || status >= 500 {
			status, key = http.StatusInternalServerError, "err.internal"
		}
		h.log.InfoContext(r.Context(), "end_session refused by the OP; session kept", "status", lw.status, "client", truncate(r.Form.Get("client_id"), 100))
		securityHeaders(true, h.withLanguage(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.renderError(w, r, status, key, "")
		}))).ServeHTTP(w, r)
	})
	confirmed := h.csrf.Handler(logout)
	ask := securityHeaders(true, h.withLanguage(http.HandlerFunc(h.confirmLogout)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			// The OP's 405, or its answer to a CORS preflight.
			next.ServeHTTP(w, r)
			return
		}
		s, err := h.cookieSession(r)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				h.log.ErrorContext(ctx, "loading session at logout", "err", err)
			}
			logout.ServeHTTP(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			h.log.InfoContext(ctx, "end_session: unreadable form", "err", err)
			http.Error(w, "malformed end_session parameters", http.StatusBadRequest)
			return
		}
		if hint := r.Form.Get("id_token_hint"); hint != "" {
			sub, err := h.op.IDTokenHintSubject(ctx, hint)
			if err == nil && sub == s.UserID {
				logout.ServeHTTP(w, r)
				return
			}
			h.log.InfoContext(ctx, "end_session: id_token_hint does not name the session's user", "err", err)
		}
		if r.Method == http.MethodPost && r.PostForm.Get(confirmLogoutField) == "1" {
			// The OP must not see our own field.
			r.PostForm.Del(confirmLogoutField)
			r.Form.Del(confirmLogoutField)
			confirmed.ServeHTTP(w, r)
			return
		}
		ask.ServeHTTP(w, r)
	})
}

// logoutWriter holds the OP's answer to end_session. A redirect means the
// OP accepted the request: only then is our session ended (accept) and the
// answer passed on. Anything else is a refusal (an unknown client_id, an
// unregistered post_logout_redirect_uri, a hint for another client): the
// session stays, and the customer gets our page instead of the OP's JSON.
type logoutWriter struct {
	w        http.ResponseWriter
	header   http.Header
	accept   func()
	status   int
	accepted bool
}

func (lw *logoutWriter) Header() http.Header { return lw.header }

func (lw *logoutWriter) WriteHeader(status int) {
	if lw.status != 0 {
		return
	}
	lw.status = status
	if status < 300 || status >= 400 {
		return
	}
	lw.accepted = true
	lw.accept()
	for k, v := range lw.header {
		lw.w.Header()[k] = append(lw.w.Header()[k], v...)
	}
	lw.w.WriteHeader(status)
}

func (lw *logoutWriter) Write(b []byte) (int, error) {
	if lw.status == 0 {
		lw.WriteHeader(http.StatusOK)
	}
	if !lw.accepted {
		return len(b), nil
	}
	return lw.w.Write(b)
}

const confirmLogoutField = "confirm_logout"

// confirmLogout asks 「ログアウトしますか？」 and re-posts the logout
// parameters with the confirmation.
func (h *Handler) confirmLogout(w http.ResponseWriter, r *http.Request) {
	var fields []templates.Field
	for name, values := range r.Form {
		if name == confirmLogoutField {
			continue
		}
		for _, v := range values {
			fields = append(fields, templates.Field{Name: name, Value: v})
		}
	}
	slices.SortFunc(fields, func(a, b templates.Field) int { return strings.Compare(a.Name, b.Name) })
	h.render(w, r, http.StatusOK, "logout_confirm", &templates.Page{
		Title: "logout.confirm_title", HomeURL: h.cfg.HomeURL, Fields: fields,
	})
}
