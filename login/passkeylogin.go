package login

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// passkeyLoginOptions starts F2/F3 (button or conditional autofill).
func (h *Handler) passkeyLoginOptions(w http.ResponseWriter, r *http.Request) {
	f := h.ceremonyFlow(w, r)
	if f == nil {
		return
	}
	opts, err := h.passkeys.BeginLogin(r.Context(), f.ID, r.URL.Query().Get("mediation") == "conditional")
	h.writeOptions(w, r, "begin login", opts, err)
}

// writeOptions answers a Begin* call: its options JSON as is, or the
// ceremony error.
func (h *Handler) writeOptions(w http.ResponseWriter, r *http.Request, op string, opts json.RawMessage, err error) {
	if err != nil {
		h.passkeyError(w, r, op, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(opts)
}

// passkeyLoginFinish verifies the assertion, then completes the login, or
// after a cross-device login offers S5 first.
func (h *Handler) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := h.ceremonyFlow(w, r)
	if f == nil {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	res, err := h.passkeys.FinishLogin(ctx, f.ID, body)
	if err != nil {
		h.auditPasskeyFailure(r, err)
		h.passkeyError(w, r, "finish login", err)
		return
	}
	h.auditSignCount(r, res)
	if res.User.Locked {
		h.audit(r, audit.LoginFailure, res.User.ID, audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyReason: "locked"})
		h.jsonFail(w, r, http.StatusForbidden, "locked", "err.locked")
		return
	}
	if res.CrossDevice {
		f.UserID, f.LoginID, f.Purpose, f.Step = res.User.ID, res.User.LoginID, purposeLogin, stepCreate
		f.PasskeyVerifiedAt = timePtr(h.now())
		f.PasswordVerifiedAt, f.OTPVerifiedAt, f.OTPHash = nil, nil, ""
		encodeFlowData(f, flowData{CrossDevice: true, PasskeyAMR: res.AMR, ReturnTo: decodeFlowData(f).ReturnTo})
		if err := h.advanceFlow(w, r, f); err != nil {
			h.log.InfoContext(ctx, "storing cross-device login", "err", err)
			h.jsonFail(w, r, http.StatusConflict, "conflict", "err.conflict")
			return
		}
		h.writeJSON(w, http.StatusOK, finishAnswer{Redirect: pathCreate, Signal: h.passkeySignal(res)})
		return
	}
	h.jsonComplete(w, r, f, res.User, proof{amr: res.AMR, acr: h.cfg.ACR.Passkey, at: h.now()}, h.passkeySignal(res))
}

// auditSignCount records a passkey whose counter went back (possibly
// cloned): the login goes on, and S8 and `idp users show` warn (docs/rules.md).
func (h *Handler) auditSignCount(r *http.Request, res *PasskeyLogin) {
	if !res.SignCountRegressed {
		return
	}
	h.audit(r, audit.PasskeySignCountRegressed, res.User.ID, audit.Detail{
		audit.KeyCredential: audit.Credential(res.Credential.ID), audit.KeyName: res.Credential.Name,
		audit.KeyFrom: strconv.FormatUint(uint64(res.Credential.SignCount), 10),
		audit.KeyTo:   strconv.FormatUint(uint64(res.ReportedSignCount), 10),
	})
}

// jsonComplete is completeLogin for the JSON endpoints; sig (nil when
// the login was no passkey sign-in) goes along with the redirect.
func (h *Handler) jsonComplete(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User, p proof, sig *passkey.Signal) {
	redirect, err := h.completeLogin(w, r, f, user, p)
	if errors.Is(err, errACRNotMet) {
		h.writeJSON(w, http.StatusOK, finishAnswer{Redirect: redirect, Signal: sig})
		return
	}
	if errors.Is(err, errLocked) {
		h.jsonFail(w, r, http.StatusForbidden, "locked", "err.locked")
		return
	}
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
		h.jsonFail(w, r, http.StatusBadRequest, "auth_request_gone", "err.auth_request")
		return
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "completing passkey login", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return
	}
	h.writeJSON(w, http.StatusOK, finishAnswer{Redirect: redirect, Signal: sig})
}
