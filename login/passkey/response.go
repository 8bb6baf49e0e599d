package passkey

import (
	"errors"
	"net/http"
)

// Error codes of the JSON answers the page script (templates/static/passkey.js)
// understands; CodeUnknownCredential makes it call signalUnknownCredential.
const (
	CodeExpired           = "expired"
	CodeUnknownCredential = "unknown_credential"
	CodeVerification      = "verification_failed"
	CodeAlreadyRegistered = "already_registered"
	CodeHasPasskey        = "has_passkey"
	CodeLocked            = "locked"
	CodeWrongFlow         = "wrong_flow"
	CodeInternal          = "internal"
)

// ErrorBody is the JSON a finish or options endpoint answers on failure.
type ErrorBody struct {
	Error        string `json:"error"`
	Code         string `json:"code"`
	CredentialID string `json:"credentialId,omitempty"`
	RPID         string `json:"rpId,omitempty"`
}

// ErrorResponse maps an error of this package to the HTTP status and JSON
// body for the page: 4xx for everything the customer or browser caused, 500
// only for failures of ours (whose detail stays in the log).
func ErrorResponse(err error, lang string) (int, ErrorBody) {
	body := ErrorBody{Error: Message(err, lang)}
	status := http.StatusBadRequest
	var unknown *UnknownCredentialError
	switch {
	case errors.As(err, &unknown):
		body.Code, body.CredentialID, body.RPID = CodeUnknownCredential, unknown.CredentialID, unknown.RPID
	case errors.Is(err, ErrUnknownCredential):
		body.Code = CodeUnknownCredential
	case errors.Is(err, ErrCeremonyExpired):
		body.Code = CodeExpired
	case errors.Is(err, ErrWrongFlow):
		body.Code = CodeWrongFlow
	case errors.Is(err, ErrAlreadyRegistered):
		body.Code, status = CodeAlreadyRegistered, http.StatusConflict
	case errors.Is(err, ErrHasPasskey):
		body.Code, status = CodeHasPasskey, http.StatusConflict
	case errors.Is(err, ErrLocked):
		body.Code, status = CodeLocked, http.StatusForbidden
	case errors.Is(err, ErrVerification):
		body.Code = CodeVerification
	default:
		body.Code, status = CodeInternal, http.StatusInternalServerError
	}
	return status, body
}
