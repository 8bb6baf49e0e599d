package login

import (
	"errors"
	"net/http"
	"strings"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
)

// getPasskey is S2.
func (h *Handler) getPasskey(w http.ResponseWriter, r *http.Request) {
	f := h.liveFlow(w, r, "err.flow_expired")
	if f == nil {
		return
	}
	h.renderPasskey(w, r, http.StatusOK, f, f.LoginID, "")
}

func (h *Handler) renderPasskey(w http.ResponseWriter, r *http.Request, status int, f *storage.LoginFlow, loginID, errKey string) {
	flowKnown(r, f)
	h.render(w, r, status, "passkey", &templates.Page{
		Title: "s2.title", Error: errKey, LoginID: loginID, LoginURL: loginURL(f.AuthRequestID),
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
	})
}

// postPasskey starts F1 (「パスキー初回登録」). It never reveals whether the
// login ID exists: every ID goes on to S3.
func (h *Handler) postPasskey(w http.ResponseWriter, r *http.Request) {
	if !h.parseForm(w, r) {
		return
	}
	f := h.liveFlow(w, r, "err.flow_expired")
	if f == nil {
		return
	}
	loginID := strings.TrimSpace(r.PostFormValue("loginID"))
	if loginID == "" || !storableText(loginID, maxLoginIDLength) {
		h.log.InfoContext(r.Context(), "F1 start with an empty, oversized or unprintable login ID")
		h.renderPasskey(w, r, http.StatusBadRequest, f, "", "err.login_id_required")
		return
	}
	f.UserID = ""
	if u, err := h.store.UserByLoginID(r.Context(), loginID); err == nil {
		f.UserID = u.ID
	} else if !errors.Is(err, storage.ErrNotFound) {
		h.internalError(w, r, "looking up login ID", err)
		return
	}
	f.LoginID, f.Purpose, f.Step = loginID, purposeEnrol, stepPassword
	f.PasswordVerifiedAt, f.OTPVerifiedAt, f.PasskeyVerifiedAt = nil, nil, nil
	f.OTPHash, f.OTPExpiresAt, f.OTPAttempts = "", nil, 0
	encodeFlowData(f, flowData{ReturnTo: decodeFlowData(f).ReturnTo})
	if err := h.updateFlow(r, f); err != nil {
		h.conflictOrInternal(w, r, err)
		return
	}
	http.Redirect(w, r, pathPassword, http.StatusSeeOther)
}
