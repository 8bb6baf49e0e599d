package passkey

import (
	"encoding/base64"
	"errors"
)

// Sentinel errors of the ceremonies. Every one of them is the customer's (or
// the browser's) doing and maps to a 4xx answer; anything else a Service
// method returns is an infrastructure failure.
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

// Message returns the customer-facing text for err in lang ("ja" by default,
// "en"). Errors that are not the customer's get a generic apology, never
// internal detail.
func Message(err error, lang string) string {
	m := messageFor(err)
	if lang == "en" {
		return m.en
	}
	return m.ja
}

type message struct{ ja, en string }

func messageFor(err error) message {
	switch {
	case errors.Is(err, ErrUnknownCredential):
		return message{
			ja: "このパスキーは登録されていません。削除された可能性があります。「パスキー初回登録」から再度ご登録ください。",
			en: "This passkey is not registered. It may have been deleted. Please register again with \"First passkey registration\".",
		}
	case errors.Is(err, ErrCeremonyExpired):
		return message{
			ja: "パスキー認証の有効期限が切れました。もう一度お試しください。",
			en: "The passkey request has expired. Please try again.",
		}
	case errors.Is(err, ErrWrongFlow):
		return message{
			ja: "画面の操作が正しく完了しませんでした。お手数ですが最初からやり直してください。",
			en: "The request did not match this page. Please start again.",
		}
	case errors.Is(err, ErrAlreadyRegistered):
		return message{
			ja: "このパスキーは既に登録されています。「パスキー認証」でログインしてください。",
			en: "This passkey is already registered. Please sign in with \"Passkey authentication\".",
		}
	case errors.Is(err, ErrHasPasskey):
		return message{
			ja: "既にパスキーが登録されています。「パスキー認証」でログインしてください。端末の紛失などでログインできない場合は、日証金コムストックローンセンターまでお問い合わせください。",
			en: "A passkey is already registered for this account. Please sign in with \"Passkey authentication\". If you lost your device, please contact the COM-STOCK LOAN centre.",
		}
	case errors.Is(err, ErrLocked):
		return message{
			ja: "このアカウントはご利用いただけません。日証金コムストックローンセンターまでお問い合わせください。",
			en: "This account cannot be used. Please contact the COM-STOCK LOAN centre.",
		}
	case errors.Is(err, ErrVerification):
		return message{
			ja: "パスキー認証に失敗しました。もう一度お試しください。",
			en: "Passkey authentication failed. Please try again.",
		}
	default:
		return message{
			ja: "ただいまパスキーをご利用いただけません。しばらくしてからもう一度お試しください。",
			en: "Passkeys are unavailable at the moment. Please try again later.",
		}
	}
}
