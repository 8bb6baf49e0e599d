package login

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/comstockloan/idp/templates"
)

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

// getLoggedOut is where end_session lands without a post-logout URI.
func (h *Handler) getLoggedOut(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "logged_out", &templates.Page{Title: "logout.title", HomeURL: h.cfg.HomeURL})
}
