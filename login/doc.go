// Package login serves the hosted login pages (S1–S9, docs/screens-and-flows.md) and the
// single sign-on session. Each page is a small state machine over a
// storage.LoginFlow; nothing survives between two requests except in the
// store, so any replica can serve any step. The OP only hears "this auth
// request is done, by this user, with this amr and acr".
//
// The files, by what they hold:
//
//	handler.go         Handler, its dependencies, the routes, rendering and error pages
//	config.go          Config and its defaults
//	store.go           the storage roles the pages use
//	flow.go            flow steps, cookies, completing a login towards the OP
//	session.go         the SSO session's life cycle
//	policy.go          rules 1, 2 and 4, the acr levels and the passkey offer as decisions (one place each)
//	language.go        the page language (ui_locales, ?lang, cookie, Accept-Language)
//	input.go           what form input may be stored
//	formerror.go       post/redirect/get: a refused form post waits on the flow for its GET
//	start.go           S1 (GET), SSO (also answered at /authorize: SessionAnswer), prompt, max_age, acr_values
//	password.go        F4 (S1's 「ログイン >」) and S3
//	passwordcheck.go   the order of one password check: throttles, hang-ups, hashing
//	passkeypage.go     S2 and the start of F1
//	otp.go             S4 and the e-mail code
//	passkeyjson.go     the passkey JSON plumbing: limits, bodies, the one error mapping
//	passkeylogin.go    S2's passkey login calls (F2, F3)
//	passkeysignal.go   the WebAuthn Signal API data after a passkey sign-in and on S8
//	passkeycreate.go   S5 and its registration calls
//	changepassword.go  S7
//	passkeyoffer.go    the passkey offer after F4: accept (code, S5) or 「今はしない」
//	account.go         S8: the page and what a session may do on it
//	accountedit.go     S8: rename and delete a passkey
//	accountceremony.go S8: the passkey step-up and adding a passkey
//	accountsessions.go S8: the signed-in sessions and signing out the others
//	newdevice.go       the device cookie and the new sign-in mail
//	enrolment.go       the staff enrolment link: /enrol, its flow to S4 and S5
//	logout.go          F6: end_session, the confirmation, /logged-out
//	metrics.go         the login counters
package login
