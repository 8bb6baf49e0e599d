package login

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// accountCeremony is the session for S8's JSON endpoints; nil means
// answered.
func (h *Handler) accountCeremony(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User) {
	if h.passkeys == nil {
		h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.passkey_unavailable")
		return nil, nil
	}
	s, user, err := h.loadSession(r)
	if errors.Is(err, errNoSession) {
		h.jsonFail(w, r, http.StatusUnauthorized, "session_required", "err.session_required")
		return nil, nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "loading session for S8 ceremony", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil, nil
	}
	return s, user
}

// accountStepUpOptions begins the passkey assertion that refreshes a
// session; the ceremony is bound to the session (WebAuthnSession.FlowID).
func (h *Handler) accountStepUpOptions(w http.ResponseWriter, r *http.Request) {
	s, _ := h.accountCeremony(w, r)
	if s == nil {
		return
	}
	opts, err := h.passkeys.BeginLogin(r.Context(), s.ID, false)
	h.writeOptions(w, r, "begin step-up", opts, err)
}

// accountStepUpFinish checks the assertion is the session user's own and
// replaces the session by a fresh one with a new auth time.
func (h *Handler) accountStepUpFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, user := h.accountCeremony(w, r)
	if s == nil {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	res, err := h.passkeys.FinishStepUp(ctx, s.ID, user.ID, body)
	var wrong *passkey.WrongUserError
	if errors.As(err, &wrong) {
		// Someone else's passkey on this browser proves nothing about
		// the session's owner.
		h.log.WarnContext(ctx, "S8 step-up with another user's passkey", "user", user.ID, "asserted_user", wrong.AssertedUserID)
		h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyReason: "step_up_other_user", audit.KeyAssertedUser: wrong.AssertedUserID})
		h.jsonFail(w, r, http.StatusForbidden, "wrong_user", "err.step_up_wrong_user")
		return
	}
	if err != nil {
		h.auditPasskeyFailure(r, err)
		h.passkeyError(w, r, "finish step-up", err)
		return
	}
	h.auditSignCount(r, res)
	_, err = h.renewSession(w, r, s, proof{amr: res.AMR, acr: h.cfg.ACR.Passkey, at: h.now()})
	if errors.Is(err, storage.ErrNotFound) {
		// The session ended meanwhile (staff, another tab): a step-up
		// does not bring it back.
		h.log.InfoContext(ctx, "S8 step-up on a session that ended meanwhile", "user", user.ID)
		h.jsonFail(w, r, http.StatusUnauthorized, "session_required", "err.session_required")
		return
	}
	if err != nil {
		h.log.ErrorContext(ctx, "renewing session after step-up", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return
	}
	h.audit(r, audit.LoginSuccess, user.ID, audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyStepUp: "true", audit.KeyAMR: fmt.Sprint(res.AMR)})
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	next := accountURL(rt)
	if id := r.URL.Query().Get("id"); id != "" {
		if _, ok := credentialID(id); ok {
			next = deleteURL(id, rt)
		}
	}
	h.writeJSON(w, http.StatusOK, map[string]string{"redirect": next})
}

// accountRegistration checks rules 1, 2 and 4 for 「このデバイスでパスキーを
// 追加」 and says whether the new passkey must be the first.
func (h *Handler) accountRegistration(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User, bool) {
	s, user := h.accountCeremony(w, r)
	if s == nil {
		return nil, nil, false
	}
	n, err := h.store.CountCredentials(r.Context(), user.ID)
	if err != nil {
		h.log.ErrorContext(r.Context(), "counting passkeys", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil, nil, false
	}
	sr := h.rights(s)
	if key := sr.addBlocked(user, n); key != "" {
		code := "reauthenticate"
		if key == "s8.add_pwd_only" || key == "err.temporary_password" {
			code = "insufficient_auth"
		}
		h.log.InfoContext(r.Context(), "S8: passkey creation refused", "user", user.ID, "reason", key, "amr", s.AMR)
		h.jsonFail(w, r, http.StatusForbidden, code, key)
		return nil, nil, false
	}
	return s, user, true
}

func (h *Handler) accountRegisterOptions(w http.ResponseWriter, r *http.Request) {
	s, user, ok := h.accountRegistration(w, r)
	if !ok {
		return
	}
	opts, err := h.passkeys.BeginRegistration(r.Context(), user, s.ID)
	h.writeOptions(w, r, "begin S8 registration", opts, err)
}

func (h *Handler) accountRegisterFinish(w http.ResponseWriter, r *http.Request) {
	s, user, ok := h.accountRegistration(w, r)
	if !ok {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	// Password + OTP may only create the first passkey (rule 1), even here;
	// addBlocked already refused it otherwise, this makes it race-free.
	onlyIfFirst := !h.rights(s).passkey
	cred, err := h.passkeys.FinishRegistration(r.Context(), user, s.ID, body, onlyIfFirst)
	if err != nil {
		h.passkeyError(w, r, "finish S8 registration", err)
		return
	}
	h.passkeyAdded(r, user, cred)
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	h.writeJSON(w, http.StatusOK, map[string]string{"redirect": accountURL(rt, "added", "1")})
}

// passkeyAdded records a new passkey and tells the customer by mail. The
// mail is a warning for the case it was not them; a failed mail must not
// undo the registration, so it is only logged.
func (h *Handler) passkeyAdded(r *http.Request, user *storage.User, cred *storage.Credential) {
	ctx := r.Context()
	h.audit(r, audit.PasskeyRegistered, user.ID, audit.Detail{
		audit.KeyCredential: audit.Credential(cred.ID), audit.KeyName: cred.Name,
		audit.KeyAttachment: cred.Attachment, audit.KeySynced: fmt.Sprint(cred.BackupEligible),
	})
	lang := languageFrom(ctx) // the mail follows the page the passkey was added on
	msg := mail.Message{
		To:      user.Email,
		Subject: h.cfg.PasskeyMailSubject,
		Body: fmt.Sprintf(templates.Text(lang, "mail.passkey_added_body"), cred.Name, formatTime(cred.CreatedAt, lang),
			h.cfg.Support.Name, h.cfg.Support.Phone, h.cfg.Support.Email, templates.Hours(lang, h.cfg.Support.Hours)),
	}
	if err := h.mailer.Send(ctx, msg); err != nil {
		h.log.ErrorContext(ctx, "sending new-passkey notification failed", "user", user.ID, "err", err)
		h.audit(r, audit.PasskeyNotificationFailed, user.ID, nil)
		return
	}
	h.log.InfoContext(ctx, "new-passkey notification sent", "user", user.ID, "to", maskEmail(user.Email))
}
