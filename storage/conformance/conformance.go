// Package conformance is the behaviour every storage.Store must show, as a
// test suite the backends run against themselves (the Dex pattern): each
// subtest gets a fresh store from the caller.
//
// conformance.go holds Run, RunReplicas and the helpers every test uses;
// the tests of each storage role are in the file named like the one that
// implements the role in sqlstore: users.go, sessions.go, authrequests.go, tokens.go,
// signingkeys.go, loginflows.go, ratelimits.go, webauthn.go,
// credentials.go, devices.go, enrolmentlinks.go, audit.go, housekeeping.go, backchannel.go.
package conformance

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

// Run runs the whole suite; newStore must return a fresh, empty, migrated
// store for each call (and close it when t ends) that MACs its audit trail
// with key.
func Run(t *testing.T, key []byte, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Users", testUsers},
		{"DeleteUserCascades", testDeleteUserCascades},
		{"Sessions", testSessions},
		{"SessionsByUser", testSessionsByUser},
		{"SessionWithUser", testSessionWithUser},
		{"AuthRequests", testAuthRequests},
		{"AuthRequestConcurrentExchange", func(t *testing.T, s storage.Store) { testAuthRequestConcurrentExchange(t, s, s) }},
		{"AuthRequestCreatedCompleted", testAuthRequestCreatedCompleted},
		{"AuthRequestCompleteOnce", func(t *testing.T, s storage.Store) { testAuthRequestCompleteOnce(t, s, s) }},
		{"AccessTokens", testAccessTokens},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshConcurrentRotation", testRefreshConcurrentRotation},
		{"RevokeGrant", testRevokeGrant},
		{"RevocationRacesRotation", testRevocationRacesRotation},
		{"EndUserAccess", testEndUserAccess},
		{"EndUserAccessOutlivesOlderProofs", testEndUserAccessOutlivesOlderProofs},
		{"SigningKeys", testSigningKeys},
		{"SigningKeysConcurrent", func(t *testing.T, s storage.Store) { testSigningKeysConcurrent(t, s, s) }},
		{"LoginFlows", testLoginFlows},
		{"LoginFlowRekey", testLoginFlowRekey},
		{"ReserveLoginFlow", testReserveLoginFlow},
		{"ReserveLoginFlowConcurrent", func(t *testing.T, s storage.Store) { testReserveLoginFlowConcurrent(t, s, s) }},
		{"LoginFlowConcurrentUpdate", func(t *testing.T, s storage.Store) { testLoginFlowConcurrentUpdate(t, s, s) }},
		{"RateEvents", testRateEvents},
		{"RateEventsConcurrent", testRateEventsConcurrent},
		{"RateReservations", testRateReservations},
		{"MaxBcryptCost", testMaxBcryptCost},
		{"RateReservationsConcurrent", func(t *testing.T, s storage.Store) { testRateReservationsConcurrent(t, s, s) }},
		{"WebAuthnSessions", testWebAuthnSessions},
		{"Credentials", testCredentials},
		{"CredentialOwner", testCredentialOwner},
		{"CredentialOnlyIfFirstConcurrent", func(t *testing.T, s storage.Store) { testCredentialOnlyIfFirstConcurrent(t, s, s) }},
		{"Audit", func(t *testing.T, s storage.Store) { testAudit(t, s, key) }},
		{"AuditConcurrent", func(t *testing.T, s storage.Store) { testAuditConcurrent(t, s, s, key) }},
		{"KnownDevices", testKnownDevices},
		{"KnownDevicesConcurrent", func(t *testing.T, s storage.Store) { testKnownDevicesConcurrent(t, s, s) }},
		{"EnrolmentLinks", testEnrolmentLinks},
		{"EnrolmentLinkConcurrentUse", func(t *testing.T, s storage.Store) { testEnrolmentLinkConcurrentUse(t, s, s) }},
		{"EnrolmentLinkConcurrentIssue", func(t *testing.T, s storage.Store) { testEnrolmentLinkConcurrentIssue(t, s, s) }},
		{"DeleteExpired", testDeleteExpired},
		{"BackchannelEnqueue", testBackchannelEnqueue},
		{"BackchannelClaim", testBackchannelClaim},
		{"BackchannelClaimConcurrent", func(t *testing.T, s storage.Store) { testBackchannelClaimConcurrent(t, s, s) }},
		{"BackchannelCompletionRacesEnd", func(t *testing.T, s storage.Store) { testBackchannelCompletionRacesEnd(t, s, s) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// RunReplicas runs the races of the suite across two stores opened
// separately on the same database, as two replicas would. newPair must
// return them fresh for each call, both with audit key key.
func RunReplicas(t *testing.T, key []byte, newPair func(t *testing.T) (storage.Store, storage.Store)) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b storage.Store)
	}{
		{"SigningKeysConcurrent", testSigningKeysConcurrent},
		{"LoginFlowConcurrentUpdate", testLoginFlowConcurrentUpdate},
		{"ReserveLoginFlowConcurrent", testReserveLoginFlowConcurrent},
		{"CredentialOnlyIfFirstConcurrent", testCredentialOnlyIfFirstConcurrent},
		{"AuditConcurrent", func(t *testing.T, a, b storage.Store) { testAuditConcurrent(t, a, b, key) }},
		{"RateReservationsConcurrent", testRateReservationsConcurrent},
		{"AuthRequestCompleteOnce", testAuthRequestCompleteOnce},
		{"AuthRequestConcurrentExchange", testAuthRequestConcurrentExchange},
		{"EnrolmentLinkConcurrentUse", testEnrolmentLinkConcurrentUse},
		{"EnrolmentLinkConcurrentIssue", testEnrolmentLinkConcurrentIssue},
		{"KnownDevicesConcurrent", testKnownDevicesConcurrent},
		{"BackchannelClaimConcurrent", testBackchannelClaimConcurrent},
		{"BackchannelCompletionRacesEnd", testBackchannelCompletionRacesEnd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := newPair(t)
			tc.fn(t, a, b)
		})
	}
}

// now is a time the suite builds from; stores keep microseconds, so the
// suite does too, and times far from the wall clock keep expiry explicit.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func ptr[T any](v T) *T { return &v }

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func wantEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// parallel runs fn n times at once and returns the errors by index.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// pick alternates between the two replicas.
func pick(i int, a, b storage.Store) storage.Store {
	if i%2 == 0 {
		return a
	}
	return b
}

func newUser(t *testing.T, s storage.Store, id string) *storage.User {
	t.Helper()
	n := now()
	u := &storage.User{
		ID: id, LoginID: "login-" + id, Email: id + "@example.jp", DisplayName: "利用者 " + id,
		PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA", CreatedAt: n, UpdatedAt: n,
	}
	must(t, "create user "+id, s.CreateUser(t.Context(), u))
	return u
}

// complete completes request id without issuing its code (SaveAuthCode
// issues one later, as the callback does).
func complete(ctx context.Context, s storage.Store, id, userID string, authTime time.Time, amr []string, acr, sid string) error {
	_, err := s.CompleteAuthRequest(ctx, id, storage.Completion{UserID: userID, AuthTime: authTime, AMR: amr, ACR: acr, SID: sid})
	return err
}
