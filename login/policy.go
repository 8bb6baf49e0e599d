package login

import (
	"net/http"
	"slices"
	"time"
)

// The product's rules 1, 2 and 4 (docs/rules.md) as pure
// functions: the handlers gather the facts (how many passkeys, which
// password, when each factor was proven) and ask here, so each rule is
// written once and tested as a table (policy_test.go).

// passwordUse is what a right password is being used for.
type passwordUse int

const (
	useLogin passwordUse = iota // F4: 「ログイン >」 signs in
	useEnrol                    // F1 at S3: the way to create the first passkey
)

// refusal is a rule saying no: the audit reason, the HTTP status and the
// catalogue key of the customer's message. The zero value allows.
type refusal struct {
	reason string
	status int
	key    string
}

func (r refusal) allowed() bool { return r.reason == "" }

// passwordRule applies rules 1 and 2 to a password that was right.
// Rule 1: a customer with a passkey signs in with it, never with ID +
// password, and a phished password + OTP must never add another passkey.
// Rule 2: a temporary password cannot enrol a passkey (F4 sends it to S7
// instead, which the caller does).
func passwordRule(use passwordUse, passkeys int, temporary bool) refusal {
	switch {
	case use == useEnrol && temporary:
		return refusal{"temporary_password", http.StatusForbidden, "err.temporary_password"}
	case passkeys > 0 && use == useLogin:
		return refusal{"has_passkey", http.StatusForbidden, "err.passkey_registered_login"}
	case passkeys > 0:
		return refusal{"has_passkey", http.StatusForbidden, "err.passkey_registered_enrol"}
	}
	return refusal{}
}

// passwordOnlySession is rule 1 for SSO sessions: a session that only a
// password opened (perhaps in another browser, before the passkey was
// added) signs the customer in only while they have no passkey; the caller
// counts the passkeys of such a session.
func passwordOnlySession(amr []string) bool { return slices.Equal(amr, []string{"pwd"}) }

// recentEnough is rule 4: creating a passkey needs every factor of the
// authentication (the passkey, or the password and the code) proven within
// window.
func recentEnough(now time.Time, window time.Duration, factors ...*time.Time) bool {
	if len(factors) == 0 {
		return false
	}
	for _, t := range factors {
		if !within(t, now, window) {
			return false
		}
	}
	return true
}

// onlyFirstPasskey is rule 1 at registration: an enrolment that a passkey
// did not authenticate (password + OTP) may create only the first one.
func onlyFirstPasskey(passkeyVerified bool) bool { return !passkeyVerified }

// Levels of assurance, ordered: a stronger one satisfies a request for a
// weaker one. levelNone is an acr value that is not one of ours.
const (
	levelNone = iota
	levelPassword
	levelPasswordOTP
	levelPasskey
)

// level ranks one of the configured acr values.
func (c ACRConfig) level(acr string) int {
	switch acr {
	case c.Passkey:
		return levelPasskey
	case c.PasswordOTP:
		return levelPasswordOTP
	case c.Password:
		return levelPassword
	}
	return levelNone
}

// required is the level a request's acr_values demands: the weakest of our
// values it lists, since the client accepts any one of them (OpenID
// Connect Core 3.1.2.1). Values that are not ours are ignored, and a
// request naming none of ours demands nothing.
func (c ACRConfig) required(acrValues []string) int {
	req := levelNone
	for _, v := range acrValues {
		if l := c.level(v); l != levelNone && (req == levelNone || l < req) {
			req = l
		}
	}
	return req
}

// satisfies is the step-up rule: a login at acr is good enough for a
// request with acrValues when its level is at least the demanded one.
func (c ACRConfig) satisfies(acr string, acrValues []string) bool {
	return c.level(acr) >= c.required(acrValues)
}

// passkeyOfferDue is the passkey upgrade rule: after a password login (F4)
// a customer without a passkey is offered one, unless they declined it
// within interval. Never for a temporary password (rule 2: it goes to S7
// and cannot enrol), never while the pages have no passkey service.
func passkeyOfferDue(now time.Time, interval time.Duration, available bool, passkeys int, temporary bool, skippedAt *time.Time) bool {
	return available && passkeys == 0 && !temporary && !within(skippedAt, now, interval)
}
