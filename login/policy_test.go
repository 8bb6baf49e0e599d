package login

import (
	"testing"
	"time"
)

func TestRule1And2PasswordRule(t *testing.T) {
	for _, tc := range []struct {
		name      string
		use       passwordUse
		passkeys  int
		temporary bool
		want      string // catalogue key, "" = allowed
	}{
		{"F4 without passkey", useLogin, 0, false, ""},
		{"F4 with a temporary password goes on to S7", useLogin, 0, true, ""},
		{"F4 with a passkey (rule 1)", useLogin, 1, false, "err.passkey_registered_login"},
		{"F4 with passkeys and a temporary password (rule 1)", useLogin, 3, true, "err.passkey_registered_login"},
		{"F1 without passkey", useEnrol, 0, false, ""},
		{"F1 with a passkey (rule 1)", useEnrol, 1, false, "err.passkey_registered_enrol"},
		{"F1 with a temporary password (rule 2)", useEnrol, 0, true, "err.temporary_password"},
		{"F1 with both: rule 2 speaks first", useEnrol, 2, true, "err.temporary_password"},
	} {
		got := passwordRule(tc.use, tc.passkeys, tc.temporary)
		if got.key != tc.want || got.allowed() != (tc.want == "") {
			t.Errorf("%s: %+v, want key %q", tc.name, got, tc.want)
		}
		if !got.allowed() && (got.status != 403 || got.reason == "") {
			t.Errorf("%s: refusal %+v lacks a 403 or an audit reason", tc.name, got)
		}
	}
}

func TestRule1PasswordOnlySession(t *testing.T) {
	for _, tc := range []struct {
		amr  []string
		want bool
	}{
		{[]string{"pwd"}, true},
		{[]string{"pwd", "otp", "mfa"}, false},
		{[]string{"hwk", "user", "mfa"}, false},
		{nil, false},
	} {
		if got := passwordOnlySession(tc.amr); got != tc.want {
			t.Errorf("amr %v: password-only %v, want %v", tc.amr, got, tc.want)
		}
	}
}

func TestRule4RecentEnough(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	const window = 5 * time.Minute
	for _, tc := range []struct {
		name    string
		factors []*time.Time
		want    bool
	}{
		{"passkey just now", []*time.Time{ago(0)}, true},
		{"passkey exactly at the window", []*time.Time{ago(window)}, true},
		{"passkey just past it", []*time.Time{ago(window + time.Second)}, false},
		{"password and code recent", []*time.Time{ago(4 * time.Minute), ago(time.Minute)}, true},
		{"old password, fresh code", []*time.Time{ago(6 * time.Minute), ago(time.Minute)}, false},
		{"a factor never proven", []*time.Time{ago(time.Minute), nil}, false},
		{"no factor at all", nil, false},
	} {
		if got := recentEnough(now, window, tc.factors...); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if !onlyFirstPasskey(false) || onlyFirstPasskey(true) {
		t.Error("onlyFirstPasskey: password + OTP must create only the first passkey, a passkey login any")
	}
}

func TestStepUpACRLevelsAreOrdered(t *testing.T) {
	c := testConfig().ACR
	pk, mfa, pwd := c.Passkey, c.PasswordOTP, c.Password
	for _, tc := range []struct {
		acr    string
		values []string
		want   bool
	}{
		{pwd, nil, true},
		{pwd, []string{"urn:other:acr"}, true}, // none of ours: nothing demanded
		{pwd, []string{pwd}, true},
		{pwd, []string{mfa}, false},
		{pwd, []string{pk}, false},
		{mfa, []string{pwd}, true},
		{mfa, []string{mfa}, true},
		{mfa, []string{pk}, false},
		{mfa, []string{pk, mfa}, true}, // any listed value will do
		{mfa, []string{pk, "urn:other:acr"}, false},
		{pk, []string{pwd}, true},
		{pk, []string{mfa}, true},
		{pk, []string{pk}, true},
		{"", []string{pwd}, false},
	} {
		if got := c.satisfies(tc.acr, tc.values); got != tc.want {
			t.Errorf("satisfies(%q, %v) = %v, want %v", tc.acr, tc.values, got, tc.want)
		}
	}
}

func TestPasskeyOfferDue(t *testing.T) {
	now := time.Now()
	month := 30 * 24 * time.Hour
	for _, tc := range []struct {
		name      string
		available bool
		passkeys  int
		temporary bool
		skipped   *time.Time
		want      bool
	}{
		{"never asked", true, 0, false, nil, true},
		{"declined yesterday", true, 0, false, timePtr(now.Add(-24 * time.Hour)), false},
		{"declined over a month ago", true, 0, false, timePtr(now.Add(-month - time.Hour)), true},
		{"has a passkey", true, 1, false, nil, false},
		{"temporary password (rule 2)", true, 0, true, nil, false},
		{"no passkey service", false, 0, false, nil, false},
	} {
		if got := passkeyOfferDue(now, month, tc.available, tc.passkeys, tc.temporary, tc.skipped); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
