// Package audit is the one writer of the audit trail: the login pages, the
// support-centre CLI and the server's start-up record their security events
// through a Recorder, which stores them (storage.Store.AppendAudit) and
// mirrors each to the structured log with the same keys.
//
// Event types and detail keys are typed enumerations rather than strings,
// so a misspelt or new ad-hoc name does not compile, and the names below
// are the whole vocabulary of the trail (docs/rules.md lists them).
package audit

import "fmt"

// Event is the type of an audit event. Its String is what the trail stores
// (storage.AuditEvent.Type).
type Event int

// The events written, grouped as docs/rules.md lists them.
const (
	eventNone Event = iota // the zero value names no event and is refused

	LoginSuccess              // a sign-in completed (or S8's step-up)
	LoginFailure              // a sign-in refused: method and reason say how
	LoginThrottled            // a password attempt refused by a rate limit
	EnrolRefused              // F1's password step refused the enrolment
	OTPSent                   // an e-mail code was sent
	OTPFailed                 // a wrong code, or the mail could not be sent
	OTPVerified               // the e-mail code was right
	OTPLocked                 // too many wrong codes killed the code
	OTPThrottled              // a code mail refused by the per-user hourly limit
	PasskeyRegistered         // a passkey was added
	PasskeyRenamed            // a passkey was renamed on S8
	PasskeyDeleted            // one passkey was deleted (S8 or staff)
	PasskeyDeletedAll         // staff deleted every passkey of a user
	PasskeyNotificationFailed // the new-passkey mail could not be sent
	PasskeySignCountRegressed // a passkey's signature counter did not increase: possibly cloned
	PasswordChanged           // S7 replaced a temporary password
	PasswordRehashed          // an imported bcrypt hash became argon2id
	PasswordTemporaryIssued   // staff issued a temporary password
	SessionEnded              // a customer signed out
	SessionsEndedOthers       // a customer signed out their other sessions on S8
	SessionNewDevice          // a session started on a browser new to the customer
	EnrolmentLinkIssued       // staff issued an enrolment link
	EnrolmentLinkUsed         // a customer opened an enrolment link (its one use)
	EnrolmentLinkRefused      // an enrolment link that is not live was opened
	BackchannelLogoutFailed   // a relying party was not told of a session's end before the deadline
	UserCreated               // staff created a user
	UserViewed                // staff looked at a user (`idp users show`)
	UserImported              // a user came in from a CSV import
	UserLocked                // staff locked a user
	UserUnlocked              // staff unlocked a user
	UserDeleted               // staff deleted a user
	ConfigLoaded              // a server started with a config file

	numEvents
)

// Events returns every event type the code can write, in the order above.
func Events() []Event {
	out := make([]Event, 0, numEvents-1)
	for e := eventNone + 1; e < numEvents; e++ {
		out = append(out, e)
	}
	return out
}

func (e Event) valid() bool { return e > eventNone && e < numEvents }

// String is the stored name, e.g. "login.success".
func (e Event) String() string {
	switch e {
	case LoginSuccess:
		return "login.success"
	case LoginFailure:
		return "login.failure"
	case LoginThrottled:
		return "login.throttled"
	case EnrolRefused:
		return "enrol.refused"
	case OTPSent:
		return "otp.sent"
	case OTPFailed:
		return "otp.failed"
	case OTPVerified:
		return "otp.verified"
	case OTPLocked:
		return "otp.locked"
	case OTPThrottled:
		return "otp.throttled"
	case PasskeyRegistered:
		return "passkey.registered"
	case PasskeyRenamed:
		return "passkey.renamed"
	case PasskeyDeleted:
		return "passkey.deleted"
	case PasskeyDeletedAll:
		return "passkey.deleted_all"
	case PasskeyNotificationFailed:
		return "passkey.notification_failed"
	case PasskeySignCountRegressed:
		return "passkey.sign_count_regressed"
	case PasswordChanged:
		return "password.changed"
	case PasswordRehashed:
		return "password.rehashed"
	case PasswordTemporaryIssued:
		return "password.temporary_issued"
	case SessionEnded:
		return "session.ended"
	case SessionsEndedOthers:
		return "session.ended_others"
	case SessionNewDevice:
		return "session.new_device"
	case EnrolmentLinkIssued:
		return "enrolment.link_issued"
	case EnrolmentLinkUsed:
		return "enrolment.link_used"
	case EnrolmentLinkRefused:
		return "enrolment.link_refused"
	case BackchannelLogoutFailed:
		return "backchannel.failed"
	case UserCreated:
		return "user.created"
	case UserViewed:
		return "user.viewed"
	case UserImported:
		return "user.imported"
	case UserLocked:
		return "user.locked"
	case UserUnlocked:
		return "user.unlocked"
	case UserDeleted:
		return "user.deleted"
	case ConfigLoaded:
		return "config.loaded"
	}
	return fmt.Sprintf("audit.Event(%d)", int(e))
}

// Key is a detail key of an audit event. Its String is the stored key.
type Key int

// The detail keys, with the events that carry them.
const (
	keyNone Key = iota

	KeyMethod       // login.*: "passkey", "password", "password+otp"
	KeyReason       // login.failure, enrol.refused, otp.failed: why
	KeyAuthRequest  // login.*: the OIDC auth request ("" for S8's own sign-in)
	KeyAMR          // login.success: the methods references, e.g. [hwk user]
	KeyACR          // login.success
	KeyStepUp       // login.success: "true" for S8's step-up
	KeyAssertedUser // login.failure: the user a step-up passkey belongs to
	KeyThrottleKey  // login.throttled: the limit's bucket ("ip:…" or the login ID's)
	KeyAttempts     // otp.failed, otp.locked: wrong codes so far; backchannel.failed: deliveries tried
	KeyClient       // backchannel.failed: the relying party's client ID
	KeyCredential   // passkey.*: the credential ID, base64url (see Credential)
	KeyName         // passkey.*: the passkey's name
	KeyAttachment   // passkey.registered: the attachment the browser reported
	KeySynced       // passkey.registered: whether the passkey may sync
	KeyRemaining    // passkey.deleted on S8: passkeys left
	KeyCount        // passkey.deleted_all: passkeys deleted
	KeyFrom         // passkey.renamed, password.changed, password.rehashed; passkey.sign_count_regressed: the stored counter
	KeyTo           // passkey.renamed, password.rehashed; passkey.sign_count_regressed: the reported counter
	KeyLoginID      // user.created, user.imported, user.deleted
	KeySource       // user.imported: the CSV file
	KeyLine         // user.imported: its line
	KeyPassword     // user.imported: "temporary" or "imported_hash"
	KeyClients      // config.loaded: the client IDs, comma-separated
	KeyConfigSHA256 // config.loaded: the file's SHA-256, hex
	KeyIssuer       // config.loaded
	KeyExpires      // enrolment.link_issued: when the link stops working (RFC 3339)
	KeyDelivery     // enrolment.link_issued: "mail" or "print"
	KeyNotified     // session.new_device: "true", "false" (off) or "failed"
	// What ending a user's access ended (Detail.WithAccessEnded), or
	// "failed" under KeyAccessEnded.
	KeyAccessEnded
	KeySessionsEnded
	KeyRefreshTokensRevoked
	KeyAccessTokensRevoked

	numKeys
)

// Keys returns every detail key, in the order above.
func Keys() []Key {
	out := make([]Key, 0, numKeys-1)
	for k := keyNone + 1; k < numKeys; k++ {
		out = append(out, k)
	}
	return out
}

// String is the stored key, e.g. "credential".
func (k Key) String() string {
	switch k {
	case KeyMethod:
		return "method"
	case KeyReason:
		return "reason"
	case KeyAuthRequest:
		return "auth_request"
	case KeyAMR:
		return "amr"
	case KeyACR:
		return "acr"
	case KeyStepUp:
		return "step_up"
	case KeyAssertedUser:
		return "asserted_user"
	case KeyThrottleKey:
		return "key"
	case KeyAttempts:
		return "attempts"
	case KeyClient:
		return "client"
	case KeyCredential:
		return "credential"
	case KeyName:
		return "name"
	case KeyAttachment:
		return "attachment"
	case KeySynced:
		return "synced"
	case KeyRemaining:
		return "remaining"
	case KeyCount:
		return "count"
	case KeyFrom:
		return "from"
	case KeyTo:
		return "to"
	case KeyLoginID:
		return "login_id"
	case KeySource:
		return "source"
	case KeyLine:
		return "line"
	case KeyPassword:
		return "password"
	case KeyClients:
		return "clients"
	case KeyConfigSHA256:
		return "config_sha256"
	case KeyIssuer:
		return "issuer"
	case KeyExpires:
		return "expires"
	case KeyDelivery:
		return "delivery"
	case KeyNotified:
		return "notified"
	case KeyAccessEnded:
		return "access_ended"
	case KeySessionsEnded:
		return "sessions_ended"
	case KeyRefreshTokensRevoked:
		return "refresh_tokens_revoked"
	case KeyAccessTokensRevoked:
		return "access_tokens_revoked"
	}
	return fmt.Sprintf("audit.Key(%d)", int(k))
}

func (k Key) valid() bool { return k > keyNone && k < numKeys }
