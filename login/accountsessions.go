package login

import (
	"net/http"

	"github.com/comstockloan/idp/login/useragent"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// S8's list of signed-in sessions and 「他の端末からログアウト」.

const pathAccountEndOthers = "/account/sessions/end-others"

// maxUserAgentBytes bounds the User-Agent a session keeps: real ones are a
// few hundred bytes, and S8 needs only the product tokens.
const maxUserAgentBytes = 512

// sessionUserAgent is the request's User-Agent as a session stores it:
// storable (storage.RepairText) and bounded, whatever the client sent.
func sessionUserAgent(r *http.Request) string {
	return storage.RepairText(r.UserAgent(), maxUserAgentBytes)
}

// sessionRows lists the user's sessions for S8, this one marked.
func (h *Handler) sessionRows(r *http.Request, current *storage.Session, lang string) ([]templates.SessionRow, error) {
	sessions, err := h.store.SessionsByUser(r.Context(), current.UserID, h.now())
	if err != nil {
		return nil, err
	}
	rows := make([]templates.SessionRow, 0, len(sessions))
	for _, s := range sessions {
		d := useragent.Parse(s.UserAgent)
		row := templates.SessionRow{
			Browser: d.Browser, OS: d.OS, Current: s.ID == current.ID,
			Started: formatTime(s.CreatedAt, lang), LastUsed: formatTime(s.LastSeenAt, lang),
		}
		for _, c := range s.Clients {
			name, err := h.op.ClientName(c)
			if err != nil { // a client removed from the config since
				name = c
			}
			row.Websites = append(row.Websites, name)
		}
		if row.Current {
			rows = append([]templates.SessionRow{row}, rows...)
		} else {
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// postAccountEndOthers is 「他の端末からログアウト」: every other session of
// the customer ends, with every token the websites hold (what a lost or
// shared device calls for), in one store transaction (EndUserAccess). It
// needs the same fresh authentication as deleting a passkey: a session
// copied from a shared PC must not lock the owner out of theirs.
func (h *Handler) postAccountEndOthers(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	rt := h.returnTo(r, r.PostFormValue("return_to"))
	s, user := h.sessionOrAnswer(w, r, rt)
	if s == nil {
		return
	}
	if !h.rights(s).mayDelete() {
		h.log.InfoContext(ctx, "S8: signing out other sessions needs a fresh authentication", "user", user.ID, "auth_time", s.AuthTime, "amr", s.AMR)
		h.renderAccount(w, r, http.StatusForbidden, s, user, rt, "", "s8.end_others_step_up", false)
		return
	}
	ended, err := h.endUserAccess(r, user.ID, s.ID, h.now())
	if err != nil {
		h.audit(r, audit.SessionsEndedOthers, user.ID, audit.Detail{audit.KeyAccessEnded: "failed"})
		h.internalError(w, r, "S8 sign out other sessions", err)
		return
	}
	h.audit(r, audit.SessionsEndedOthers, user.ID, audit.Detail{}.WithAccessEnded(ended))
	http.Redirect(w, r, accountURL(rt, "signed_out", "1"), http.StatusSeeOther)
}
