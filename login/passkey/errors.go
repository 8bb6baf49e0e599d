package passkey

import (
	"encoding/base64"
	"errors"
)

// Sentinel errors of the ceremonies. Every one of them is the customer's (or
// the browser's) doing and maps to a 4xx answer (passkeyRefusal in
// login/passkeyjson.go, with its text from the templates catalogue); anything
// else a Service method returns is an infrastructure failure.
var (
	// ErrCeremonyExpired: the challenge is unknown, already used or too old.
	ErrCeremonyExpired = errors.New("passkey: ceremony expired or already finished")
	// ErrUnknownCredential: the assertion names a credential we do not have
	// (deleted on the server, still on the device). Returned wrapped in an
	// *UnknownCredentialError carrying the ID.
	ErrUnknownCredential = errors.New("passkey: unknown credential")
	// ErrVerification: the response failed WebAuthn verification
	// (signature, origin, RP ID, flags, user handle...).
	ErrVerification = errors.New("passkey: verification failed")
	// ErrAlreadyRegistered: this authenticator's credential is registered already.
	ErrAlreadyRegistered = errors.New("passkey: credential already registered")
	// ErrHasPasskey: a first-passkey enrolment found the user already has one.
	ErrHasPasskey = errors.New("passkey: user already has a passkey")
	// ErrLocked: the user's account is locked.
	ErrLocked = errors.New("passkey: user is locked")
	// ErrWrongFlow: the challenge was issued to another flow or for the
	// other kind of ceremony.
	ErrWrongFlow = errors.New("passkey: ceremony belongs to another flow")
	// ErrWrongUser: a step-up was answered with a valid passkey of another
	// user. Returned wrapped in a *WrongUserError naming that user.
	ErrWrongUser = errors.New("passkey: another user's passkey")
)

// WrongUserError reports a step-up by another user's passkey; the
// signature was valid, so AssertedUserID is who really answered.
type WrongUserError struct {
	AssertedUserID string
}

func (e *WrongUserError) Error() string {
	return "passkey: step-up by another user's passkey (" + e.AssertedUserID + ")"
}

// Is makes errors.Is(err, ErrWrongUser) true.
func (e *WrongUserError) Is(target error) bool { return target == ErrWrongUser }

// UnknownCredentialError reports an assertion by a credential the server
// does not know, so the page can ask the browser to forget it
// (PublicKeyCredential.signalUnknownCredential).
type UnknownCredentialError struct {
	CredentialID string // base64url without padding, as the browser encodes it
	RPID         string
}

// newUnknownCredentialError builds the error for a raw credential ID.
func newUnknownCredentialError(rawID []byte, rpID string) *UnknownCredentialError {
	return &UnknownCredentialError{CredentialID: base64.RawURLEncoding.EncodeToString(rawID), RPID: rpID}
}

func (e *UnknownCredentialError) Error() string {
	return "passkey: unknown credential " + e.CredentialID
}

// Is makes errors.Is(err, ErrUnknownCredential) true.
func (e *UnknownCredentialError) Is(target error) bool { return target == ErrUnknownCredential }
