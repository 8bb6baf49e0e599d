package login

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

const maxCeremonyBytes = 64 << 10

type jsonError struct {
	Error        string `json:"error"`
	Code         string `json:"code"`
	CredentialID string `json:"credentialId,omitempty"`
	RPID         string `json:"rpId,omitempty"`
}

func (h *Handler) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Error("writing JSON answer", "err", err)
	}
}

func (h *Handler) jsonFail(w http.ResponseWriter, r *http.Request, status int, code, key string) {
	h.log.InfoContext(r.Context(), "passkey endpoint refused", "path", r.URL.Path, "code", code, "status", status)
	h.writeJSON(w, status, jsonError{Error: templates.Text(languageFrom(r.Context()), key), Code: code})
}

const rateCeremony = "passkey_ceremony"

// limitCeremony answers 429 (JSON, Retry-After) once an address has made
// CeremonyLimit.MaxPerAddress passkey calls in the window; the slot is
// taken before the call does any work.
func (h *Handler) limitCeremony(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		l := h.cfg.CeremonyLimit
		now := h.now()
		key := "ip:" + h.clientIP(r)
		_, ok, err := h.store.ReserveRateEvent(r.Context(), rateCeremony, key, now, now.Add(-l.Window), l.MaxPerAddress)
		if err != nil {
			h.log.ErrorContext(r.Context(), "reserving a passkey call", "key", key, "err", err)
			h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.internal")
			return
		}
		if !ok {
			h.log.WarnContext(r.Context(), "passkey calls throttled", "key", key, "limit", l.MaxPerAddress, "window", l.Window)
			retryAfter(w, l.Window)
			h.jsonFail(w, r, http.StatusTooManyRequests, "too_many_requests", "err.busy")
			return
		}
		next(w, r)
	}
}

// ceremonyFlow loads the flow for a JSON endpoint; nil means answered.
func (h *Handler) ceremonyFlow(w http.ResponseWriter, r *http.Request) *storage.LoginFlow {
	if h.passkeys == nil {
		h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.passkey_unavailable")
		return nil
	}
	f, err := h.currentFlow(r)
	if errors.Is(err, errNoFlow) {
		h.jsonFail(w, r, http.StatusBadRequest, "flow_expired", "err.flow_expired")
		return nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "loading flow for passkey ceremony", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil
	}
	return f
}

// ceremonyBody reads the browser's credential JSON, bounded; nil means an
// empty, oversized or unreadable body was answered with a 400.
func (h *Handler) ceremonyBody(w http.ResponseWriter, r *http.Request) []byte {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCeremonyBytes))
	if err != nil || len(body) == 0 {
		h.log.InfoContext(r.Context(), "unreadable ceremony body", "path", r.URL.Path, "bytes", len(body), "err", err)
		h.jsonFail(w, r, http.StatusBadRequest, "bad_request", "err.bad_request")
		return nil
	}
	return body
}

// passkeyRefusal is the one mapping of a ceremony error to its answer: the
// HTTP status, the code passkey.js reads ("unknown_credential" makes it call
// signalUnknownCredential) and the catalogue key of the customer's text.
// ok is false for a failure of ours, which gets no detail.
func passkeyRefusal(err error) (status int, code, key string, ok bool) {
	switch {
	case errors.Is(err, passkey.ErrUnknownCredential):
		return http.StatusUnauthorized, "unknown_credential", "err.passkey_unknown", true
	case errors.Is(err, passkey.ErrCeremonyExpired):
		return http.StatusBadRequest, "expired", "err.passkey_expired", true
	case errors.Is(err, passkey.ErrWrongFlow):
		return http.StatusBadRequest, "wrong_flow", "err.passkey_wrong_flow", true
	case errors.Is(err, passkey.ErrVerification):
		return http.StatusUnauthorized, "verification_failed", "err.passkey_failed", true
	case errors.Is(err, passkey.ErrAlreadyRegistered), errors.Is(err, storage.ErrAlreadyExists):
		return http.StatusConflict, "already_registered", "err.passkey_already", true
	case errors.Is(err, passkey.ErrHasPasskey), errors.Is(err, storage.ErrConflict):
		return http.StatusConflict, "has_passkey", "err.passkey_registered_enrol", true
	case errors.Is(err, passkey.ErrLocked):
		return http.StatusForbidden, "locked", "err.locked", true
	}
	return 0, "internal", "err.internal", false
}

// passkeyError answers a failed ceremony as passkeyRefusal says, naming the
// credential the browser should forget when it is unknown.
func (h *Handler) passkeyError(w http.ResponseWriter, r *http.Request, op string, err error) {
	ctx := r.Context()
	status, code, key, ok := passkeyRefusal(err)
	body := jsonError{Error: templates.Text(languageFrom(ctx), key), Code: code}
	if !ok {
		h.log.ErrorContext(ctx, "passkey ceremony failed", "op", op, "err", err)
		h.writeJSON(w, failureStatus(w, err), body)
		return
	}
	var unknown *passkey.UnknownCredentialError
	if errors.As(err, &unknown) {
		body.CredentialID, body.RPID = unknown.CredentialID, unknown.RPID
	}
	h.log.InfoContext(ctx, "passkey ceremony refused", "op", op, "code", code, "err", err)
	h.writeJSON(w, status, body)
}

// auditPasskeyFailure records a refused passkey login. The user is known
// only when the passkey package says so (a locked account); an unknown or
// forged assertion names nobody.
func (h *Handler) auditPasskeyFailure(r *http.Request, err error) {
	reason := "verification"
	switch {
	case errors.Is(err, passkey.ErrUnknownCredential):
		reason = "unknown_credential"
	case errors.Is(err, passkey.ErrCeremonyExpired):
		reason = "expired"
	case errors.Is(err, passkey.ErrWrongFlow):
		reason = "wrong_flow"
	case errors.Is(err, passkey.ErrLocked):
		reason = "locked"
	}
	h.audit(r, audit.LoginFailure, "", audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyReason: reason})
}

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
		h.writeJSON(w, http.StatusOK, map[string]string{"redirect": pathCreate})
		return
	}
	h.jsonComplete(w, r, f, res.User, proof{amr: res.AMR, acr: h.cfg.ACR.Passkey, at: h.now()})
}

func (h *Handler) jsonComplete(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User, p proof) {
	redirect, err := h.completeLogin(w, r, f, user, p)
	if errors.Is(err, errPasskeyRequired) {
		h.writeJSON(w, http.StatusOK, map[string]string{"redirect": redirect})
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
	h.writeJSON(w, http.StatusOK, map[string]string{"redirect": redirect})
}

// enrolment is what the S5 endpoints need once rule 4 is checked: the
// flow's user, the proof the completed login will carry, and whether the
// new passkey must be the user's first (rule 1).
type enrolment struct {
	flow        *storage.LoginFlow
	user        *storage.User
	proof       proof
	onlyIfFirst bool
}

// authenticated says how and when the flow's user proved who they are and
// whether that was recent enough to create a passkey (rule 4).
func (h *Handler) authenticated(f *storage.LoginFlow) (p proof, recent, ok bool) {
	now := h.now()
	switch {
	case f.PasskeyVerifiedAt != nil:
		p = proof{amr: decodeFlowData(f).PasskeyAMR, acr: h.cfg.ACR.Passkey, at: *f.PasskeyVerifiedAt}
		return p, recentEnough(now, h.cfg.RecentAuth, f.PasskeyVerifiedAt), true
	case f.PasswordVerifiedAt != nil && f.OTPVerifiedAt != nil:
		// The login is complete with its second factor; the password
		// came first.
		p = proof{amr: []string{"pwd", "otp", "mfa"}, acr: h.cfg.ACR.PasswordOTP, at: *f.OTPVerifiedAt}
		recent = recentEnough(now, h.cfg.RecentAuth, f.PasswordVerifiedAt, f.OTPVerifiedAt)
		return p, recent, true
	}
	return proof{}, false, false
}

func (h *Handler) enrolmentFlow(w http.ResponseWriter, r *http.Request) *enrolment {
	f := h.ceremonyFlow(w, r)
	if f == nil {
		return nil
	}
	if f.Step != stepCreate || f.UserID == "" {
		h.jsonFail(w, r, http.StatusBadRequest, "wrong_step", "err.flow_expired")
		return nil
	}
	p, recent, ok := h.authenticated(f)
	if !ok || !recent {
		h.jsonFail(w, r, http.StatusForbidden, "reauthenticate", "err.recent_auth")
		return nil
	}
	user, err := h.store.UserByID(r.Context(), f.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		h.jsonFail(w, r, http.StatusBadRequest, "flow_expired", "err.flow_expired")
		return nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "loading user for enrolment", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil
	}
	if user.Locked {
		h.jsonFail(w, r, http.StatusForbidden, "locked", "err.locked")
		return nil
	}
	if user.PasswordTemporary && f.PasskeyVerifiedAt == nil {
		h.jsonFail(w, r, http.StatusForbidden, "temporary_password", "err.temporary_password")
		return nil
	}
	// Password + OTP may only create the first passkey: a phished password
	// and code must never add one to an account that has one.
	return &enrolment{flow: f, user: user, proof: p, onlyIfFirst: onlyFirstPasskey(f.PasskeyVerifiedAt != nil)}
}

func (h *Handler) passkeyRegisterOptions(w http.ResponseWriter, r *http.Request) {
	e := h.enrolmentFlow(w, r)
	if e == nil {
		return
	}
	if e.onlyIfFirst {
		n, err := h.store.CountCredentials(r.Context(), e.user.ID)
		if err != nil {
			h.log.ErrorContext(r.Context(), "counting passkeys", "err", err)
			h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
			return
		}
		if n > 0 {
			h.jsonFail(w, r, http.StatusConflict, "has_passkey", "err.passkey_registered_enrol")
			return
		}
	}
	opts, err := h.passkeys.BeginRegistration(r.Context(), e.user, e.flow.ID)
	h.writeOptions(w, r, "begin registration", opts, err)
}

func (h *Handler) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	e := h.enrolmentFlow(w, r)
	if e == nil {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	cred, err := h.passkeys.FinishRegistration(r.Context(), e.user, e.flow.ID, body, e.onlyIfFirst)
	if err != nil {
		h.passkeyError(w, r, "finish registration", err)
		return
	}
	h.passkeyAdded(r, e.user, cred)
	h.jsonComplete(w, r, e.flow, e.user, e.proof)
}

// getCreate is S5.
func (h *Handler) getCreate(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepCreate)
	if f == nil {
		return
	}
	h.render(w, r, http.StatusOK, "create", &templates.Page{
		Title: "s5.title", CrossDevice: decodeFlowData(f).CrossDevice,
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
	})
}

// postCreateSkip is 「パスキー作成なしでログイン」.
func (h *Handler) postCreateSkip(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepCreate)
	if f == nil {
		return
	}
	p, _, ok := h.authenticated(f)
	if !ok {
		h.log.WarnContext(r.Context(), "S5 skip on a flow without proven factors")
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	if user.Locked {
		h.renderError(w, r, http.StatusForbidden, "err.locked", "")
		return
	}
	h.finish(w, r, f, user, p)
}
