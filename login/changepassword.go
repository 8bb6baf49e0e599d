package login

import (
	"net/http"
	"unicode/utf8"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// getChangePassword is S7.
func (h *Handler) getChangePassword(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepChangePassword)
	if f == nil {
		return
	}
	status, key := formStatus(h.takeFormError(r, f, pathChangePassword))
	h.renderChange(w, r, status, f, key)
}

func (h *Handler) renderChange(w http.ResponseWriter, r *http.Request, status int, f *storage.LoginFlow, errKey string) {
	h.render(w, r, status, "change", &templates.Page{Title: "s7.title", Error: errKey, LoginID: f.LoginID})
}

const minPasswordLen = 8

// postChangePassword replaces the temporary password, then completes the
// login the temporary password began.
func (h *Handler) postChangePassword(w http.ResponseWriter, r *http.Request) {
	r, cancel := detach(r)
	defer cancel()
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	f := h.flowAt(w, r, stepChangePassword)
	if f == nil {
		return
	}
	if !within(f.PasswordVerifiedAt, h.now(), h.cfg.FlowLifetime) {
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	current, next, confirm := r.PostFormValue("current"), r.PostFormValue("new"), r.PostFormValue("confirm")
	fail := func(status int, key string) {
		h.log.InfoContext(ctx, "password change refused", "user", user.ID, "reason", key)
		if status == http.StatusTooManyRequests { // with Retry-After: a direct answer (formerror.go)
			h.renderChange(w, r, status, f, key)
			return
		}
		h.refuse(w, r, f, pathChangePassword, status, key, "")
	}
	slot, err := h.verifier.Acquire(ctx)
	if err != nil {
		retryAfter(w, busyRetryAfter)
		fail(http.StatusTooManyRequests, "err.busy")
		return
	}
	defer slot.Release()
	ok, err := h.verifier.Verify(slot, user.PasswordHash, current)
	if err != nil {
		h.log.ErrorContext(ctx, "verifying current password", "user", user.ID, "err", err)
	}
	switch {
	case !ok:
		fail(http.StatusUnauthorized, "err.pw_current_wrong")
		return
	case next != confirm:
		fail(http.StatusBadRequest, "err.pw_mismatch")
		return
	case utf8.RuneCountInString(next) < minPasswordLen:
		fail(http.StatusBadRequest, "err.pw_too_short")
		return
	case next == user.LoginID:
		fail(http.StatusBadRequest, "err.pw_same_as_id")
		return
	case next == current:
		fail(http.StatusBadRequest, "err.pw_same_as_old")
		return
	}
	if user.Locked {
		fail(http.StatusForbidden, "err.locked")
		return
	}
	hash, err := h.verifier.Hash(slot, next)
	if err != nil {
		h.internalError(w, r, "hashing new password", err)
		return
	}
	if err := h.store.UpdatePassword(ctx, user.ID, hash, false); err != nil {
		h.internalError(w, r, "storing new password", err)
		return
	}
	h.audit(r, audit.PasswordChanged, user.ID, audit.Detail{audit.KeyFrom: "temporary"})
	// The current password was typed again on S7, so the login is now.
	now := h.now()
	f.PasswordVerifiedAt = timePtr(now)
	ar, ok := h.flowAuthRequest(w, r, f)
	if !ok {
		return
	}
	if needsCode(h.cfg.ACR, ar) {
		// No S5 after the code: a passkey is created by F1 after a
		// temporary password (rule 2).
		encodeFlowData(f, flowData{ReturnTo: decodeFlowData(f).ReturnTo, CodeRequired: true})
		h.askCode(w, r, f, user)
		return
	}
	h.finish(w, r, f, user, proof{amr: []string{"pwd"}, acr: h.cfg.ACR.Password, at: now})
}
