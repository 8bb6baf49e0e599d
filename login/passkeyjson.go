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

// ceremonyFlow takes the address's slot for a passkey JSON call of the
// login flow and loads the flow, in one store call (ReserveLoginFlow);
// nil means answered. Once an address has made CeremonyLimit.MaxPerAddress
// calls in the window the answer is 429 (JSON, Retry-After): the slot is
// taken before the call does any work, even for a call without a flow.
func (h *Handler) ceremonyFlow(w http.ResponseWriter, r *http.Request) *storage.LoginFlow {
	l := h.cfg.CeremonyLimit
	now := h.now()
	key := "ip:" + h.clientIP(r)
	flowID := ""
	if handle := h.cookie(r, flowCookie); handle != "" {
		flowID = storage.HashSecret(handle)
	}
	f, ok, err := h.store.ReserveLoginFlow(r.Context(), flowID, storage.RateSlot{
		Kind: rateCeremony, Key: key, At: now, Since: now.Add(-l.Window), Limit: l.MaxPerAddress,
	})
	noFlow := errors.Is(err, storage.ErrNotFound)
	if err != nil && !noFlow {
		h.log.ErrorContext(r.Context(), "reserving a passkey call and loading its flow", "key", key, "err", err)
		h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.internal")
		return nil
	}
	if !ok {
		h.log.WarnContext(r.Context(), "passkey calls throttled", "key", key, "limit", l.MaxPerAddress, "window", l.Window)
		retryAfter(w, l.Window)
		h.jsonFail(w, r, http.StatusTooManyRequests, "too_many_requests", "err.busy")
		return nil
	}
	if h.passkeys == nil {
		h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.passkey_unavailable")
		return nil
	}
	// As currentFlow: no handle, no row, or a row past its expiry (by the
	// handler's clock) is no flow.
	if noFlow || !now.Before(f.ExpiresAt) {
		h.jsonFail(w, r, http.StatusBadRequest, "flow_expired", "err.flow_expired")
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
