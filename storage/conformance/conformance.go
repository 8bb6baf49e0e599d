// Package conformance is the behaviour every storage.Store must show, as a
// test suite the backends run against themselves (the Dex pattern): each
// subtest gets a fresh store from the caller.
package conformance

import (
	"context"
	"errors"
	"fmt"
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
		{"AuthRequests", testAuthRequests},
		{"AuthRequestConcurrentConsume", testAuthRequestConcurrentConsume},
		{"AuthRequestCompleteOnce", func(t *testing.T, s storage.Store) { testAuthRequestCompleteOnce(t, s, s) }},
		{"AccessTokens", testAccessTokens},
		{"RefreshRotation", testRefreshRotation},
		{"RefreshConcurrentRotation", testRefreshConcurrentRotation},
		{"RevokeGrant", testRevokeGrant},
		{"RevocationRacesRotation", testRevocationRacesRotation},
		{"EndUserAccess", testEndUserAccess},
		{"SigningKeys", testSigningKeys},
		{"SigningKeysConcurrent", func(t *testing.T, s storage.Store) { testSigningKeysConcurrent(t, s, s) }},
		{"LoginFlows", testLoginFlows},
		{"LoginFlowRekey", testLoginFlowRekey},
		{"LoginFlowConcurrentUpdate", func(t *testing.T, s storage.Store) { testLoginFlowConcurrentUpdate(t, s, s) }},
		{"RateEvents", testRateEvents},
		{"RateEventsConcurrent", testRateEventsConcurrent},
		{"RateReservations", testRateReservations},
		{"MaxBcryptCost", testMaxBcryptCost},
		{"RateReservationsConcurrent", func(t *testing.T, s storage.Store) { testRateReservationsConcurrent(t, s, s) }},
		{"WebAuthnSessions", testWebAuthnSessions},
		{"Credentials", testCredentials},
		{"CredentialOnlyIfFirstConcurrent", func(t *testing.T, s storage.Store) { testCredentialOnlyIfFirstConcurrent(t, s, s) }},
		{"Audit", func(t *testing.T, s storage.Store) { testAudit(t, s, key) }},
		{"AuditConcurrent", func(t *testing.T, s storage.Store) { testAuditConcurrent(t, s, s, key) }},
		{"DeleteExpired", testDeleteExpired},
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
		{"CredentialOnlyIfFirstConcurrent", testCredentialOnlyIfFirstConcurrent},
		{"AuditConcurrent", func(t *testing.T, a, b storage.Store) { testAuditConcurrent(t, a, b, key) }},
		{"RateReservationsConcurrent", testRateReservationsConcurrent},
		{"AuthRequestCompleteOnce", testAuthRequestCompleteOnce},
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

func testUsers(t *testing.T, s storage.Store) {
	ctx := t.Context()
	u := newUser(t, s, "u1")
	got, err := s.UserByID(ctx, "u1")
	must(t, "user by id", err)
	wantEqual(t, "user by id", *got, *u)
	got, err = s.UserByLoginID(ctx, u.LoginID)
	must(t, "user by login id", err)
	wantEqual(t, "user by login id", *got, *u)

	_, err = s.UserByLoginID(ctx, "LOGIN-U1")
	wantErr(t, "login id is case-sensitive", err, storage.ErrNotFound)
	_, err = s.UserByID(ctx, "nobody")
	wantErr(t, "missing user", err, storage.ErrNotFound)

	dupLogin := *u
	dupLogin.ID = "u2"
	wantErr(t, "duplicate login id", s.CreateUser(ctx, &dupLogin), storage.ErrAlreadyExists)
	dupID := *u
	dupID.LoginID = "other"
	wantErr(t, "duplicate id", s.CreateUser(ctx, &dupID), storage.ErrAlreadyExists)

	must(t, "update password", s.UpdatePassword(ctx, "u1", "$2a$10$tmp", true))
	must(t, "lock", s.SetUserLocked(ctx, "u1", true))
	got, err = s.UserByID(ctx, "u1")
	must(t, "user after updates", err)
	if got.PasswordHash != "$2a$10$tmp" || !got.PasswordTemporary || !got.Locked ||
		got.Email != u.Email || got.DisplayName != u.DisplayName || got.LoginID != u.LoginID {
		t.Fatalf("user after updates: %+v", got)
	}
	if got.UpdatedAt.Location() != time.UTC || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("times not in UTC: %v %v", got.CreatedAt, got.UpdatedAt)
	}
	must(t, "unlock", s.SetUserLocked(ctx, "u1", false))
	got, err = s.UserByID(ctx, "u1")
	must(t, "user after unlock", err)
	if got.Locked {
		t.Fatal("user still locked")
	}

	wantErr(t, "update password of missing user", s.UpdatePassword(ctx, "nobody", "x", false), storage.ErrNotFound)
	wantErr(t, "lock missing user", s.SetUserLocked(ctx, "nobody", true), storage.ErrNotFound)
	wantErr(t, "delete missing user", s.DeleteUser(ctx, "nobody"), storage.ErrNotFound)
}

func testDeleteUserCascades(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	for _, id := range []string{"gone", "kept"} {
		newUser(t, s, id)
		must(t, "session", s.CreateSession(ctx, &storage.Session{ID: "sess-" + id, UserID: id, AuthTime: n, CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour)}))
		must(t, "credential", s.CreateCredential(ctx, &storage.Credential{ID: []byte("cred-" + id), UserID: id, PublicKey: []byte{1}, CreatedAt: n}, false))
		must(t, "auth request", s.CreateAuthRequest(ctx, &storage.AuthRequest{ID: "ar-" + id, ClientID: "web", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
		must(t, "complete", s.CompleteAuthRequest(ctx, "ar-"+id, id, n, []string{"hwk"}, "2"))
		must(t, "refresh token", s.CreateRefreshToken(ctx,
			&storage.RefreshToken{ID: "rt-" + id, ClientID: "web", Subject: id, AuthRequestID: "ar-" + id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)},
			&storage.AccessToken{ID: "at-" + id, ClientID: "web", Subject: id, AuthRequestID: "ar-" + id, RefreshTokenID: "rt-" + id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
		must(t, "login flow", s.CreateLoginFlow(ctx, &storage.LoginFlow{ID: "flow-" + id, UserID: id, Step: "otp", Version: 1, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
		must(t, "webauthn session", s.SaveWebAuthnSession(ctx, &storage.WebAuthnSession{Challenge: "ch-" + id, Ceremony: "registration", UserID: id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
		must(t, "rate event by user id", s.RecordRateEvent(ctx, "otp_send", id, n))
		must(t, "rate event by login id", s.RecordRateEvent(ctx, "login_failure", "login-"+id, n))
		must(t, "audit", s.AppendAudit(ctx, &storage.AuditEvent{Time: n, Type: "login.success", Actor: "user:" + id, UserID: id}))
	}

	must(t, "delete user", s.DeleteUser(ctx, "gone"))

	_, err := s.UserByID(ctx, "gone")
	wantErr(t, "deleted user", err, storage.ErrNotFound)
	_, err = s.SessionByID(ctx, "sess-gone")
	wantErr(t, "session of deleted user", err, storage.ErrNotFound)
	_, err = s.CredentialByID(ctx, []byte("cred-gone"))
	wantErr(t, "credential of deleted user", err, storage.ErrNotFound)
	_, err = s.AuthRequestByID(ctx, "ar-gone")
	wantErr(t, "auth request of deleted user", err, storage.ErrNotFound)
	_, err = s.RefreshTokenByID(ctx, "rt-gone")
	wantErr(t, "refresh token of deleted user", err, storage.ErrNotFound)
	_, err = s.AccessTokenByID(ctx, "at-gone")
	wantErr(t, "access token of deleted user", err, storage.ErrNotFound)
	_, err = s.LoginFlowByID(ctx, "flow-gone")
	wantErr(t, "login flow of deleted user", err, storage.ErrNotFound)
	_, err = s.TakeWebAuthnSession(ctx, "ch-gone", n)
	wantErr(t, "webauthn session of deleted user", err, storage.ErrNotFound)
	if c, err := s.CountRateEvents(ctx, "otp_send", "gone", n.Add(-time.Hour)); err != nil || c != 0 {
		t.Fatalf("rate events keyed by the deleted user's id: %d, %v", c, err)
	}
	if c, err := s.CountRateEvents(ctx, "login_failure", "login-gone", n.Add(-time.Hour)); err != nil || c != 0 {
		t.Fatalf("rate events keyed by the deleted user's login id: %d, %v", c, err)
	}

	// The other user keeps everything, and the audit trail keeps both.
	_, err = s.SessionByID(ctx, "sess-kept")
	must(t, "kept session", err)
	_, err = s.CredentialByID(ctx, []byte("cred-kept"))
	must(t, "kept credential", err)
	_, err = s.AccessTokenByID(ctx, "at-kept")
	must(t, "kept access token", err)
	_, err = s.RefreshTokenByID(ctx, "rt-kept")
	must(t, "kept refresh token", err)
	_, err = s.LoginFlowByID(ctx, "flow-kept")
	must(t, "kept login flow", err)
	if c, err := s.CountRateEvents(ctx, "otp_send", "kept", n.Add(-time.Hour)); err != nil || c != 1 {
		t.Fatalf("rate events of kept user: %d, %v", c, err)
	}
	if c, err := s.CountRateEvents(ctx, "login_failure", "login-kept", n.Add(-time.Hour)); err != nil || c != 1 {
		t.Fatalf("rate events of kept login id: %d, %v", c, err)
	}
	events, err := s.ListAudit(ctx, 0, 0)
	must(t, "list audit", err)
	if len(events) != 2 || events[0].UserID != "gone" {
		t.Fatalf("audit after delete: %+v", events)
	}
}

func testSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	se := &storage.Session{
		ID: storage.HashSecret("cookie"), UserID: "u1", AuthTime: n.Add(-time.Minute), AMR: []string{"pwd", "otp"},
		ACR: "1", CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour),
	}
	must(t, "create session", s.CreateSession(ctx, se))
	wantErr(t, "duplicate session", s.CreateSession(ctx, se), storage.ErrAlreadyExists)
	got, err := s.SessionByID(ctx, se.ID)
	must(t, "session by id", err)
	wantEqual(t, "session", *got, *se)

	later := n.Add(10 * time.Minute)
	must(t, "touch", s.TouchSession(ctx, se.ID, later))
	got, err = s.SessionByID(ctx, se.ID)
	must(t, "session after touch", err)
	if !got.LastSeenAt.Equal(later) {
		t.Fatalf("last seen: got %v, want %v", got.LastSeenAt, later)
	}
	wantErr(t, "touch missing", s.TouchSession(ctx, "nope", later), storage.ErrNotFound)

	expiredSession := &storage.Session{ID: "old", UserID: "u1", AuthTime: n, CreatedAt: n.Add(-2 * time.Hour), LastSeenAt: n, ExpiresAt: n.Add(-time.Second)}
	must(t, "create expired session", s.CreateSession(ctx, expiredSession))
	_, err = s.SessionByID(ctx, "old")
	wantErr(t, "expired session", err, storage.ErrNotFound)

	must(t, "delete session", s.DeleteSession(ctx, se.ID))
	_, err = s.SessionByID(ctx, se.ID)
	wantErr(t, "deleted session", err, storage.ErrNotFound)
}

func fullAuthRequest(id string, n time.Time) *storage.AuthRequest {
	return &storage.AuthRequest{
		ID: id, ClientID: "loan-web", RedirectURI: "https://www.example.jp/cb", State: "st", Nonce: "no",
		Scopes: []string{"openid", "profile"}, ResponseType: "code", ResponseMode: "query",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		Prompt: []string{"login", "consent"}, MaxAge: ptr(90 * time.Second), LoginHint: "taro",
		IDTokenHintSubject: "sub", ACRValues: []string{"phr"}, UILocales: []string{"ja", "en"},
		CreatedAt: n, ExpiresAt: n.Add(10 * time.Minute),
	}
}

func testAuthRequests(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	a := fullAuthRequest("ar1", n)
	must(t, "create", s.CreateAuthRequest(ctx, a))
	wantErr(t, "duplicate", s.CreateAuthRequest(ctx, a), storage.ErrAlreadyExists)
	got, err := s.AuthRequestByID(ctx, "ar1")
	must(t, "by id", err)
	wantEqual(t, "auth request", *got, *a)

	// max_age=0 ("authenticate now") must not read back as absent.
	zero := fullAuthRequest("ar-zero", n)
	zero.MaxAge = ptr(time.Duration(0))
	must(t, "create max_age=0", s.CreateAuthRequest(ctx, zero))
	none := fullAuthRequest("ar-none", n)
	none.MaxAge = nil
	none.Scopes, none.Prompt, none.ACRValues, none.UILocales = nil, nil, nil, nil
	must(t, "create without max_age", s.CreateAuthRequest(ctx, none))
	got, err = s.AuthRequestByID(ctx, "ar-zero")
	must(t, "by id max_age=0", err)
	if got.MaxAge == nil || *got.MaxAge != 0 {
		t.Fatalf("max_age=0 read back as %v", got.MaxAge)
	}
	got, err = s.AuthRequestByID(ctx, "ar-none")
	must(t, "by id without max_age", err)
	wantEqual(t, "auth request without optional fields", *got, *none)

	authTime := n.Add(time.Second)
	must(t, "complete", s.CompleteAuthRequest(ctx, "ar1", "u1", authTime, []string{"hwk", "user"}, "phr"))
	wantErr(t, "complete missing", s.CompleteAuthRequest(ctx, "nope", "u1", authTime, nil, ""), storage.ErrNotFound)
	code := storage.HashSecret("code-1")
	codeExpires := n.Add(time.Minute)
	must(t, "save code", s.SaveAuthCode(ctx, "ar1", code, codeExpires))
	wantErr(t, "save code for missing", s.SaveAuthCode(ctx, "nope", "x", codeExpires), storage.ErrNotFound)
	if err := s.SaveAuthCode(ctx, "ar-zero", storage.HashSecret("no-expiry"), time.Time{}); err == nil {
		t.Fatal("save code without expiry succeeded")
	}

	got, err = s.AuthRequestByCode(ctx, code)
	must(t, "by code", err)
	want := *a
	want.UserID, want.AuthTime, want.AMR, want.ACR, want.Done, want.CodeHash = "u1", authTime, []string{"hwk", "user"}, "phr", true, code
	want.CodeExpiresAt = codeExpires
	wantEqual(t, "completed auth request", *got, want)
	_, err = s.AuthRequestByCode(ctx, storage.HashSecret("other"))
	wantErr(t, "unknown code", err, storage.ErrNotFound)

	consumedAt := n.Add(2 * time.Second)
	must(t, "consume", s.ConsumeAuthRequest(ctx, "ar1", consumedAt))
	wantErr(t, "consume twice", s.ConsumeAuthRequest(ctx, "ar1", consumedAt.Add(time.Second)), storage.ErrConflict)
	wantErr(t, "consume missing", s.ConsumeAuthRequest(ctx, "nope", consumedAt), storage.ErrNotFound)
	got, err = s.AuthRequestByCode(ctx, code)
	must(t, "by code after consume", err)
	if got.ConsumedAt == nil || !got.ConsumedAt.Equal(consumedAt) {
		t.Fatalf("consumed at: got %v, want %v", got.ConsumedAt, consumedAt)
	}

	// A code past its own expiry is still found while its request lives:
	// refusing it is the caller's decision, and a replay stays detectable.
	stale := fullAuthRequest("ar-stale-code", n.Add(-5*time.Minute))
	must(t, "create stale-code request", s.CreateAuthRequest(ctx, stale))
	staleCode := storage.HashSecret("stale-code")
	must(t, "save stale code", s.SaveAuthCode(ctx, "ar-stale-code", staleCode, n.Add(-4*time.Minute)))
	got, err = s.AuthRequestByCode(ctx, staleCode)
	must(t, "by code past its expiry", err)
	if !got.CodeExpiresAt.Equal(n.Add(-4 * time.Minute)) {
		t.Fatalf("code expires at %v, want %v", got.CodeExpiresAt, n.Add(-4*time.Minute))
	}

	old := fullAuthRequest("ar-old", n.Add(-time.Hour))
	old.ExpiresAt = n.Add(-time.Second)
	old.CodeHash = storage.HashSecret("old-code")
	must(t, "create expired", s.CreateAuthRequest(ctx, old))
	_, err = s.AuthRequestByID(ctx, "ar-old")
	wantErr(t, "expired by id", err, storage.ErrNotFound)
	_, err = s.AuthRequestByCode(ctx, old.CodeHash)
	wantErr(t, "expired by code", err, storage.ErrNotFound)
}

func testAuthRequestConcurrentConsume(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	must(t, "create", s.CreateAuthRequest(ctx, fullAuthRequest("ar", n)))
	errs := parallel(10, func(int) error { return s.ConsumeAuthRequest(ctx, "ar", n) })
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("concurrent consume: unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("concurrent consume: %d winners, want 1", wins)
	}
}

// testAuthRequestCompleteOnce: a request is completed by one user once,
// without a read before the write, so racing completions (a double
// submit, two tabs, two replicas) can never swap the user of a request
// whose callback is under way; a request with a code or past its expiry is
// not completable either.
func testAuthRequestCompleteOnce(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	must(t, "create", a.CreateAuthRequest(ctx, fullAuthRequest("ar", n)))
	errs := parallel(40, func(i int) error {
		return pick(i, a, b).CompleteAuthRequest(ctx, "ar", fmt.Sprintf("u%d", i), n, []string{"pwd"}, "1")
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("concurrent complete: users %d and %d both completed the request", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("concurrent complete: unexpected error %v", err)
		}
	}
	if winner < 0 {
		t.Fatal("concurrent complete: nobody completed the request")
	}
	got, err := a.AuthRequestByID(ctx, "ar")
	must(t, "by id", err)
	if want := fmt.Sprintf("u%d", winner); got.UserID != want || !got.Done {
		t.Fatalf("completed request: user %q done %v, want %q done", got.UserID, got.Done, want)
	}
	wantErr(t, "complete again", a.CompleteAuthRequest(ctx, "ar", "other", n, []string{"pwd"}, "1"), storage.ErrConflict)

	coded := fullAuthRequest("ar-coded", n)
	must(t, "create coded", a.CreateAuthRequest(ctx, coded))
	must(t, "save code", a.SaveAuthCode(ctx, "ar-coded", storage.HashSecret("c"), n.Add(time.Minute)))
	wantErr(t, "complete with a code", a.CompleteAuthRequest(ctx, "ar-coded", "u1", n, []string{"pwd"}, "1"), storage.ErrConflict)

	old := fullAuthRequest("ar-old", n.Add(-time.Hour))
	old.ExpiresAt = n.Add(-time.Second)
	must(t, "create expired", a.CreateAuthRequest(ctx, old))
	wantErr(t, "complete expired", a.CompleteAuthRequest(ctx, "ar-old", "u1", n, []string{"pwd"}, "1"), storage.ErrNotFound)
}

func testAccessTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	at := &storage.AccessToken{
		ID: "at1", ClientID: "web", Subject: "u1", Audience: []string{"web", "api"}, Scopes: []string{"openid"},
		AuthRequestID: "ar1", RefreshTokenID: "", ExpiresAt: n.Add(time.Hour), CreatedAt: n,
	}
	must(t, "create", s.CreateAccessToken(ctx, at))
	wantErr(t, "duplicate", s.CreateAccessToken(ctx, at), storage.ErrAlreadyExists)
	got, err := s.AccessTokenByID(ctx, "at1")
	must(t, "by id", err)
	wantEqual(t, "access token", *got, *at)

	must(t, "create expired", s.CreateAccessToken(ctx, &storage.AccessToken{ID: "old", ClientID: "web", Subject: "u1", CreatedAt: n.Add(-time.Hour), ExpiresAt: n}))
	_, err = s.AccessTokenByID(ctx, "old")
	wantErr(t, "expired", err, storage.ErrNotFound)

	must(t, "delete", s.DeleteAccessToken(ctx, "at1"))
	_, err = s.AccessTokenByID(ctx, "at1")
	wantErr(t, "deleted", err, storage.ErrNotFound)
}

// issue creates a refresh token with its access token, as a code exchange does.
func issue(t *testing.T, s storage.Store, id, family, client, subject, authRequest string, n time.Time) {
	t.Helper()
	must(t, "create refresh token "+id, s.CreateRefreshToken(t.Context(),
		&storage.RefreshToken{ID: id, FamilyID: family, ClientID: client, Subject: subject, AuthRequestID: authRequest,
			AccessTokenID: "at-" + id, CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour)},
		&storage.AccessToken{ID: "at-" + id, ClientID: client, Subject: subject, AuthRequestID: authRequest,
			RefreshTokenID: id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
}

func successor(id, authRequest string, n time.Time) (*storage.RefreshToken, *storage.AccessToken) {
	return &storage.RefreshToken{ID: id, ClientID: "web", Subject: "u1", AuthRequestID: authRequest,
			AccessTokenID: "at-" + id, CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour)},
		&storage.AccessToken{ID: "at-" + id, ClientID: "web", Subject: "u1", AuthRequestID: authRequest,
			RefreshTokenID: id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
}

func wantAccessToken(t *testing.T, s storage.Store, id string, present bool) {
	t.Helper()
	_, err := s.AccessTokenByID(t.Context(), id)
	if present {
		must(t, "access token "+id, err)
	} else {
		wantErr(t, "access token "+id, err, storage.ErrNotFound)
	}
}

func wantRevoked(t *testing.T, s storage.Store, id string, revoked bool) {
	t.Helper()
	rt, err := s.RefreshTokenByID(t.Context(), id)
	must(t, "refresh token "+id, err)
	if (rt.RevokedAt != nil) != revoked {
		t.Fatalf("refresh token %s: revoked at %v, want revoked=%v", id, rt.RevokedAt, revoked)
	}
}

func testRefreshRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	full := &storage.RefreshToken{
		ID: storage.HashSecret("rt1"), FamilyID: "fam", ClientID: "web", Subject: "u1", Audience: []string{"web"},
		Scopes: []string{"openid", "offline_access"}, AMR: []string{"hwk"}, ACR: "phr", AuthTime: n.Add(-time.Minute),
		AuthRequestID: "ar1", AccessTokenID: "at1", CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour),
	}
	must(t, "create", s.CreateRefreshToken(ctx, full, &storage.AccessToken{ID: "at1", ClientID: "web", Subject: "u1",
		AuthRequestID: "ar1", RefreshTokenID: full.ID, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
	got, err := s.RefreshTokenByID(ctx, full.ID)
	must(t, "by id", err)
	wantEqual(t, "refresh token", *got, *full)
	wantAccessToken(t, s, "at1", true)

	next, nextAT := successor("rt2", "ar1", n.Add(time.Minute))
	rotatedAt := n.Add(time.Minute)
	must(t, "rotate", s.RotateRefreshToken(ctx, full.ID, next, nextAT, rotatedAt))
	got, err = s.RefreshTokenByID(ctx, full.ID)
	must(t, "old after rotate", err)
	if got.RotatedAt == nil || !got.RotatedAt.Equal(rotatedAt) || got.RevokedAt != nil {
		t.Fatalf("old after rotate: rotated %v revoked %v", got.RotatedAt, got.RevokedAt)
	}
	got, err = s.RefreshTokenByID(ctx, "rt2")
	must(t, "successor", err)
	if got.FamilyID != "fam" || got.RotatedAt != nil || got.RevokedAt != nil {
		t.Fatalf("successor: %+v", got)
	}
	wantAccessToken(t, s, "at-rt2", true)

	// Replaying the rotated token revokes the family: the successor and
	// every access token issued with the family.
	next3, nextAT3 := successor("rt3", "ar1", n.Add(2*time.Minute))
	wantErr(t, "reuse", s.RotateRefreshToken(ctx, full.ID, next3, nextAT3, n.Add(2*time.Minute)), storage.ErrRefreshTokenReused)
	wantRevoked(t, s, "rt2", true)
	wantAccessToken(t, s, "at1", false)
	wantAccessToken(t, s, "at-rt2", false)
	_, err = s.RefreshTokenByID(ctx, "rt3")
	wantErr(t, "successor of a reused token", err, storage.ErrNotFound)
	wantAccessToken(t, s, "at-rt3", false)

	// A revoked (not rotated) token is reuse too.
	next4, nextAT4 := successor("rt4", "ar1", n)
	wantErr(t, "rotate revoked", s.RotateRefreshToken(ctx, "rt2", next4, nextAT4, n.Add(3*time.Minute)), storage.ErrRefreshTokenReused)

	next5, nextAT5 := successor("rt5", "ar1", n)
	wantErr(t, "rotate unknown", s.RotateRefreshToken(ctx, "nope", next5, nextAT5, n), storage.ErrNotFound)

	must(t, "create expired", s.CreateRefreshToken(ctx, &storage.RefreshToken{ID: "old", ClientID: "web", Subject: "u1", CreatedAt: n.Add(-48 * time.Hour), ExpiresAt: n.Add(-time.Second)}, nil))
	_, err = s.RefreshTokenByID(ctx, "old")
	wantErr(t, "expired by id", err, storage.ErrNotFound)
	next6, nextAT6 := successor("rt6", "ar1", n)
	wantErr(t, "rotate expired", s.RotateRefreshToken(ctx, "old", next6, nextAT6, n), storage.ErrNotFound)

	// RevokeRefreshToken revokes a whole family.
	issue(t, s, "f2-a", "f2", "web", "u1", "ar2", n)
	nb, nbAT := successor("f2-b", "ar2", n)
	must(t, "rotate f2", s.RotateRefreshToken(ctx, "f2-a", nb, nbAT, n))
	must(t, "revoke", s.RevokeRefreshToken(ctx, "f2-b", n))
	wantRevoked(t, s, "f2-a", true)
	wantRevoked(t, s, "f2-b", true)
	wantAccessToken(t, s, "at-f2-a", false)
	wantAccessToken(t, s, "at-f2-b", false)
	wantErr(t, "revoke unknown", s.RevokeRefreshToken(ctx, "nope", n), storage.ErrNotFound)
}

func testRefreshConcurrentRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "rt", "fam", "web", "u1", "ar", n)
	errs := parallel(8, func(i int) error {
		next, at := successor(fmt.Sprintf("next-%d", i), "ar", n)
		return s.RotateRefreshToken(ctx, "rt", next, at, n)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrRefreshTokenReused):
			t.Fatalf("rotation %d: unexpected error %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("concurrent rotation: %d winners, want 1", wins)
	}
	// The losers presented a rotated token: the winner's successor is
	// revoked with the family.
	for i, err := range errs {
		if err == nil {
			wantRevoked(t, s, fmt.Sprintf("next-%d", i), true)
			wantAccessToken(t, s, fmt.Sprintf("at-next-%d", i), false)
		}
	}
}

func testRevokeGrant(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "a1", "famA", "web", "u1", "arA", n)
	next, at := successor("a2", "arA", n)
	must(t, "rotate", s.RotateRefreshToken(ctx, "a1", next, at, n))
	must(t, "plain access token", s.CreateAccessToken(ctx, &storage.AccessToken{ID: "atA", ClientID: "web", Subject: "u1", AuthRequestID: "arA", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
	issue(t, s, "b1", "famB", "web", "u1", "arB", n)

	must(t, "revoke grant", s.RevokeGrant(ctx, "arA", n))
	wantRevoked(t, s, "a1", true)
	wantRevoked(t, s, "a2", true)
	wantAccessToken(t, s, "at-a1", false)
	wantAccessToken(t, s, "at-a2", false)
	wantAccessToken(t, s, "atA", false)
	wantRevoked(t, s, "b1", false)
	wantAccessToken(t, s, "at-b1", true)
}

// testRevocationRacesRotation: revocations racing rotations of the same
// family must neither fail nor leave a live token behind.
func testRevocationRacesRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "rt", "fam", "web", "u1", "ar", n)
	errs := parallel(9, func(i int) error {
		switch i % 3 {
		case 0:
			return s.RevokeGrant(ctx, "ar", n)
		case 1:
			_, err := s.EndUserAccess(ctx, "u1", "", n)
			return err
		}
		next, at := successor(fmt.Sprintf("next-%d", i), "ar", n)
		err := s.RotateRefreshToken(ctx, "rt", next, at, n)
		if errors.Is(err, storage.ErrRefreshTokenReused) {
			return nil
		}
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("racer %d", i), err)
	}
	// A rotation may have won after every revocation: revoke once more,
	// then nothing of the family may be usable.
	must(t, "final revoke", s.RevokeGrant(ctx, "ar", n))
	wantRevoked(t, s, "rt", true)
	wantAccessToken(t, s, "at-rt", false)
	for i := 2; i < 9; i += 3 {
		id := fmt.Sprintf("next-%d", i)
		if _, err := s.RefreshTokenByID(ctx, id); err == nil {
			wantRevoked(t, s, id, true)
		}
		wantAccessToken(t, s, "at-"+id, false)
	}
}

// testEndUserAccess: every session of the user but the kept one, every
// token of every client, and nothing of anyone else; the counts name only
// what still worked.
func testEndUserAccess(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	session := func(id, user string, expires time.Time) {
		must(t, "create session "+id, s.CreateSession(ctx, &storage.Session{ID: id, UserID: user, AuthTime: n,
			CreatedAt: n.Add(-2 * time.Hour), LastSeenAt: n, ExpiresAt: expires}))
	}
	session("keep", "u1", n.Add(time.Hour))
	session("phone", "u1", n.Add(time.Hour))
	session("pc", "u1", n.Add(time.Hour))
	session("stale", "u1", n.Add(-time.Second))
	session("other", "u2", n.Add(time.Hour))
	issue(t, s, "u1-web", "", "web", "u1", "ar1", n)
	issue(t, s, "u1-app", "", "app", "u1", "ar2", n)
	next, at := successor("u1-web-2", "ar1", n)
	must(t, "rotate", s.RotateRefreshToken(ctx, "u1-web", next, at, n))
	issue(t, s, "u2-web", "", "web", "u2", "ar3", n)

	ended, err := s.EndUserAccess(ctx, "u1", "keep", n)
	must(t, "end user access", err)
	// Sessions phone and pc (stale had expired); the access tokens of
	// u1-web, u1-web-2 and u1-app (a rotation leaves the old one live);
	// refresh tokens u1-web-2 and u1-app (u1-web was rotated already).
	wantEqual(t, "ended", ended, storage.AccessEnded{Sessions: 2, AccessTokens: 3, RefreshTokens: 2})
	_, err = s.SessionByID(ctx, "keep")
	must(t, "kept session", err)
	for _, id := range []string{"phone", "pc"} {
		_, err = s.SessionByID(ctx, id)
		wantErr(t, "session "+id, err, storage.ErrNotFound)
	}
	_, err = s.SessionByID(ctx, "other")
	must(t, "another user's session", err)
	for _, id := range []string{"u1-web", "u1-web-2", "u1-app"} {
		wantRevoked(t, s, id, true)
		wantAccessToken(t, s, "at-"+id, false)
	}
	wantRevoked(t, s, "u2-web", false)
	wantAccessToken(t, s, "at-u2-web", true)
	next, at = successor("u1-web-3", "ar1", n)
	wantErr(t, "rotating a revoked token", s.RotateRefreshToken(ctx, "u1-web-2", next, at, n), storage.ErrRefreshTokenReused)

	// Again, keeping nothing: only the kept session was left.
	ended, err = s.EndUserAccess(ctx, "u1", "", n)
	must(t, "end user access again", err)
	wantEqual(t, "ended again", ended, storage.AccessEnded{Sessions: 1})
	_, err = s.SessionByID(ctx, "keep")
	wantErr(t, "kept session after ending all", err, storage.ErrNotFound)

	ended, err = s.EndUserAccess(ctx, "nobody", "", n)
	must(t, "end access of an unknown user", err)
	wantEqual(t, "ended for nobody", ended, storage.AccessEnded{})
}

func signingKey(id string, n time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID: id, Algorithm: "ES256", PrivateKey: []byte("sealed-" + id), PublicKey: []byte{0x30, 0x59, 0x01},
		CreatedAt: n, ActiveFrom: n.Add(time.Hour), RetireAt: n.Add(24 * time.Hour), ExpiresAt: n.Add(48 * time.Hour),
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	keys, err := s.ListSigningKeys(ctx)
	must(t, "list empty", err)
	if len(keys) != 0 {
		t.Fatalf("fresh store has keys: %+v", keys)
	}
	k1, k2 := signingKey("k1", n), signingKey("k2", n.Add(time.Second))
	must(t, "add", s.RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{k1, k2}, nil, nil
	}))
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list", err)
	wantEqual(t, "keys", keys, []storage.SigningKey{k1, k2})

	k3 := signingKey("k3", n.Add(2*time.Second))
	must(t, "rotate", s.RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
		wantEqual(t, "plan sees current keys", current, []storage.SigningKey{k1, k2})
		return []storage.SigningKey{k3}, []string{"k1"}, nil
	}))
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list after rotate", err)
	wantEqual(t, "keys after rotate", keys, []storage.SigningKey{k2, k3})

	planErr := errors.New("no entropy")
	err = s.RotateSigningKeys(ctx, func([]storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{signingKey("k4", n)}, []string{"k2"}, planErr
	})
	wantErr(t, "failing plan", err, planErr)
	err = s.RotateSigningKeys(ctx, func([]storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{signingKey("k5", n), signingKey("k2", n)}, []string{"k3"}, nil
	})
	wantErr(t, "plan adding an existing key", err, storage.ErrAlreadyExists)
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list after failed plans", err)
	wantEqual(t, "failed plans write nothing", keys, []storage.SigningKey{k2, k3})
}

// testSigningKeysConcurrent lets several rotations race with a plan that
// adds a key only when there is none: exactly one key may result.
func testSigningKeysConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	errs := parallel(6, func(i int) error {
		return pick(i, a, b).RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
			if len(current) > 0 {
				return nil, nil, nil
			}
			// Widen the window in which a second replica could slip in.
			time.Sleep(20 * time.Millisecond)
			return []storage.SigningKey{signingKey(fmt.Sprintf("k%d", i), n)}, nil, nil
		})
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("rotation %d", i), err)
	}
	keys, err := a.ListSigningKeys(ctx)
	must(t, "list", err)
	if len(keys) != 1 {
		t.Fatalf("concurrent rotations added %d keys, want 1", len(keys))
	}
}

func testLoginFlows(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	f := &storage.LoginFlow{
		ID: storage.HashSecret("handle"), AuthRequestID: "ar1", UserID: "u1", LoginID: "taro", Purpose: "login",
		Step: "password", PasswordVerifiedAt: ptr(n), OTPHash: storage.HashSecret("123456"),
		OTPExpiresAt: ptr(n.Add(5 * time.Minute)), OTPAttempts: 2, OTPSentAt: ptr(n.Add(-time.Second)),
		Data: []byte(`{"attachment":"platform"}`), Version: 1, CreatedAt: n, ExpiresAt: n.Add(30 * time.Minute),
	}
	must(t, "create", s.CreateLoginFlow(ctx, f))
	wantErr(t, "duplicate", s.CreateLoginFlow(ctx, f), storage.ErrAlreadyExists)
	got, err := s.LoginFlowByID(ctx, f.ID)
	must(t, "by id", err)
	wantEqual(t, "login flow", *got, *f)

	got.Step = "otp"
	got.OTPVerifiedAt = ptr(n.Add(time.Minute))
	got.PasskeyVerifiedAt = ptr(n.Add(2 * time.Minute))
	got.OTPHash, got.OTPExpiresAt, got.OTPAttempts = "", nil, 0
	must(t, "update", s.UpdateLoginFlow(ctx, got))
	if got.Version != 2 {
		t.Fatalf("version after update: %d, want 2", got.Version)
	}
	again, err := s.LoginFlowByID(ctx, f.ID)
	must(t, "by id after update", err)
	wantEqual(t, "updated flow", *again, *got)

	stale := *f // still Version 1
	stale.Step = "hijacked"
	wantErr(t, "stale update", s.UpdateLoginFlow(ctx, &stale), storage.ErrConflict)
	if stale.Version != 1 {
		t.Fatalf("failed update changed Version to %d", stale.Version)
	}
	missing := *f
	missing.ID = "nope"
	wantErr(t, "update missing", s.UpdateLoginFlow(ctx, &missing), storage.ErrNotFound)

	old := *f
	old.ID, old.ExpiresAt = "old", n
	must(t, "create expired", s.CreateLoginFlow(ctx, &old))
	_, err = s.LoginFlowByID(ctx, "old")
	wantErr(t, "expired", err, storage.ErrNotFound)

	must(t, "delete", s.DeleteLoginFlow(ctx, f.ID))
	_, err = s.LoginFlowByID(ctx, f.ID)
	wantErr(t, "deleted", err, storage.ErrNotFound)
}

// testLoginFlowConcurrentUpdate: 20 writers holding the same Version, one wins.
func testLoginFlowConcurrentUpdate(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	f := &storage.LoginFlow{ID: "flow", Step: "start", Version: 1, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "create", a.CreateLoginFlow(ctx, f))
	errs := parallel(20, func(i int) error {
		mine := *f
		mine.Step = fmt.Sprintf("writer-%d", i)
		return pick(i, a, b).UpdateLoginFlow(ctx, &mine)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("writers %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("writer %d: unexpected error %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got, err := b.LoginFlowByID(ctx, "flow")
	must(t, "by id", err)
	if got.Version != 2 || got.Step != fmt.Sprintf("writer-%d", winner) {
		t.Fatalf("after the race: version %d step %q, want 2 and writer-%d", got.Version, got.Step, winner)
	}
}

func testRateEvents(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	for _, d := range []time.Duration{-30 * time.Minute, -5 * time.Minute, -time.Minute, 0} {
		must(t, "record", s.RecordRateEvent(ctx, "otp_send", "u1", n.Add(d)))
	}
	// Same key under another kind, and another key of the same kind, are
	// counted apart.
	must(t, "record other kind", s.RecordRateEvent(ctx, "login_failure", "u1", n))
	must(t, "record other key", s.RecordRateEvent(ctx, "otp_send", "u2", n))
	must(t, "record ip key", s.RecordRateEvent(ctx, "login_failure", "192.0.2.1", n))
	for _, tc := range []struct {
		kind, key string
		since     time.Duration
		want      int
	}{
		{"otp_send", "u1", -time.Hour, 4},
		{"otp_send", "u1", -10 * time.Minute, 3},
		// since is inclusive, to the microsecond.
		{"otp_send", "u1", -time.Minute, 2},
		{"otp_send", "u1", -time.Minute + time.Microsecond, 1},
		{"otp_send", "u1", 0, 1},
		{"otp_send", "u1", time.Microsecond, 0},
		{"login_failure", "u1", -time.Hour, 1},
		{"otp_send", "u2", -time.Hour, 1},
		{"login_failure", "192.0.2.1", -time.Hour, 1},
		{"login_failure", "192.0.2.2", -time.Hour, 0},
		{"unknown_kind", "u1", -time.Hour, 0},
	} {
		got, err := s.CountRateEvents(ctx, tc.kind, tc.key, n.Add(tc.since))
		must(t, "count", err)
		if got != tc.want {
			t.Errorf("count %s/%s since %v: %d, want %d", tc.kind, tc.key, tc.since, got, tc.want)
		}
	}
	// A rate event without kind or key would count against nobody.
	for _, bad := range [][2]string{{"", "u1"}, {"otp_send", ""}} {
		if err := s.RecordRateEvent(ctx, bad[0], bad[1], n); err == nil {
			t.Errorf("RecordRateEvent(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

// Concurrent events of one key are all counted: none is lost to a race, so
// a burst cannot slip past a limit.
func testRateEventsConcurrent(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	const writers = 20
	for i, err := range parallel(writers, func(i int) error {
		return s.RecordRateEvent(ctx, "login_failure", "login-taro", n.Add(time.Duration(i)*time.Microsecond))
	}) {
		must(t, fmt.Sprintf("record %d", i), err)
	}
	got, err := s.CountRateEvents(ctx, "login_failure", "login-taro", n)
	must(t, "count", err)
	if got != writers {
		t.Fatalf("counted %d of %d concurrent events", got, writers)
	}
}

func testMaxBcryptCost(t *testing.T, s storage.Store) {
	ctx := t.Context()
	cost := func() int {
		t.Helper()
		c, err := s.MaxBcryptCost(ctx)
		must(t, "max bcrypt cost", err)
		return c
	}
	if c := cost(); c != 0 {
		t.Fatalf("empty store: cost %d, want 0", c)
	}
	n := now()
	for i, h := range []string{
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5",
		"$2a$08$abcdefghijklmnopqrstuuXJ1dkZpY1g1Y1ZlZ1Y1Y1Y1Y1Y1Y1Y1",
		"$2b$11$abcdefghijklmnopqrstuuXJ1dkZpY1g1Y1ZlZ1Y1Y1Y1Y1Y1Y1Y1",
		"$2y$09$abcdefghijklmnopqrstuuXJ1dkZpY1g1Y1ZlZ1Y1Y1Y1Y1Y1Y1Y1",
	} {
		must(t, "create user", s.CreateUser(ctx, &storage.User{
			ID: fmt.Sprintf("u%d", i), LoginID: fmt.Sprintf("user%d", i), Email: "a@example.com",
			PasswordHash: h, CreatedAt: n, UpdatedAt: n,
		}))
	}
	if c := cost(); c != 11 {
		t.Fatalf("cost %d, want the highest stored, 11", c)
	}
	must(t, "rehash", s.UpdatePassword(ctx, "u2", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5", false))
	if c := cost(); c != 9 {
		t.Fatalf("after rehashing the cost-11 user: cost %d, want 9", c)
	}
}

func testLoginFlowRekey(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	f := &storage.LoginFlow{ID: "old-handle", LoginID: "taro", Purpose: "enrol", Step: "password", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "create", s.CreateLoginFlow(ctx, f))
	stale := *f
	f.Step = "otp"
	must(t, "rekey", s.RekeyLoginFlow(ctx, f, "new-handle"))
	if f.ID != "new-handle" || f.Version != 1 {
		t.Fatalf("after rekey: id %q version %d, want new-handle and 1", f.ID, f.Version)
	}
	_, err := s.LoginFlowByID(ctx, "old-handle")
	wantErr(t, "old id after rekey", err, storage.ErrNotFound)
	got, err := s.LoginFlowByID(ctx, "new-handle")
	must(t, "new id", err)
	if got.Step != "otp" || got.LoginID != "taro" || got.Version != 1 {
		t.Fatalf("rekeyed flow: %+v", got)
	}
	// The old handle can neither write nor rekey any more.
	wantErr(t, "update through the old id", s.UpdateLoginFlow(ctx, &stale), storage.ErrNotFound)
	wantErr(t, "rekey through the old id", s.RekeyLoginFlow(ctx, &stale, "attacker"), storage.ErrNotFound)
	// A stale version loses, as for UpdateLoginFlow.
	stale2 := *got
	must(t, "update", s.UpdateLoginFlow(ctx, got))
	wantErr(t, "rekey with a stale version", s.RekeyLoginFlow(ctx, &stale2, "newer"), storage.ErrConflict)
	if err := s.RekeyLoginFlow(ctx, got, got.ID); err == nil {
		t.Error("rekey to the same id succeeded")
	}
}

func testRateReservations(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	since := n.Add(-15 * time.Minute)
	must(t, "old event", s.RecordRateEvent(ctx, "login_failure", "login:taro", n.Add(-time.Hour)))
	must(t, "recorded event", s.RecordRateEvent(ctx, "login_failure", "login:taro", n.Add(-time.Minute)))
	var ids []string
	for i := range 2 {
		id, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3)
		must(t, fmt.Sprintf("reserve %d", i), err)
		if !ok || id == "" {
			t.Fatalf("reserve %d under the limit: ok %v, id %q", i, ok, id)
		}
		ids = append(ids, id)
	}
	// The recorded event and two reservations fill the limit of 3; the
	// event older than since does not count.
	if id, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3); err != nil || ok || id != "" {
		t.Fatalf("reserve over the limit: id %q, ok %v, err %v; want refused", id, ok, err)
	}
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 3 {
		t.Fatalf("count after a refused reservation: %d, %v; want 3 (nothing written)", c, err)
	}
	// Other keys and kinds have their own limits.
	if _, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:hanako", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve for another key: ok %v, err %v", ok, err)
	}
	if _, ok, err := s.ReserveRateEvent(ctx, "client_failure", "login:taro", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve for another kind: ok %v, err %v", ok, err)
	}
	must(t, "release", s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ids[0]))
	must(t, "release twice", s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ids[0]))
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 2 {
		t.Fatalf("count after release: %d, %v; want 2", c, err)
	}
	// A release names its own row: another key's id releases nothing.
	must(t, "release under another key", s.ReleaseRateEvent(ctx, "login_failure", "login:hanako", ids[1]))
	if c, err := s.CountRateEvents(ctx, "login_failure", "login:taro", since); err != nil || c != 2 {
		t.Fatalf("count after a mismatched release: %d, %v; want 2", c, err)
	}
	if _, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, since, 3); err != nil || !ok {
		t.Fatalf("reserve after release: ok %v, err %v", ok, err)
	}
	for _, bad := range []struct {
		kind, key string
		limit     int
	}{{"", "k", 1}, {"login_failure", "", 1}, {"login_failure", "k", 0}} {
		if _, ok, err := s.ReserveRateEvent(ctx, bad.kind, bad.key, n, since, bad.limit); err == nil || ok {
			t.Errorf("ReserveRateEvent(%q, %q, limit %d): ok %v, err %v; want an error", bad.kind, bad.key, bad.limit, ok, err)
		}
	}
	if err := s.ReleaseRateEvent(ctx, "login_failure", "login:taro", ""); err == nil {
		t.Error("ReleaseRateEvent with an empty id succeeded")
	}
}

// 40 concurrent reservations against a limit of 10, split over two stores
// (replicas) on one database: exactly 10 are granted. This is the race a
// count followed by an insert loses.
func testRateReservationsConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	const callers, limit = 40, 10
	granted := make([]bool, callers)
	for i, err := range parallel(callers, func(i int) error {
		s := a
		if i%2 == 1 {
			s = b
		}
		_, ok, err := s.ReserveRateEvent(ctx, "login_failure", "login:taro", n, n.Add(-time.Minute), limit)
		granted[i] = ok
		return err
	}) {
		must(t, fmt.Sprintf("reserve %d", i), err)
	}
	got := 0
	for _, ok := range granted {
		if ok {
			got++
		}
	}
	if got != limit {
		t.Fatalf("%d of %d concurrent reservations granted, want exactly %d", got, callers, limit)
	}
	if c, err := a.CountRateEvents(ctx, "login_failure", "login:taro", n.Add(-time.Minute)); err != nil || c != limit {
		t.Fatalf("stored events: %d, %v; want %d", c, err, limit)
	}
}

func testWebAuthnSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	ws := &storage.WebAuthnSession{
		Challenge: "Y2hhbGxlbmdl", Ceremony: "login", UserID: "", FlowID: "flow1",
		Data: []byte(`{"challenge":"Y2hhbGxlbmdl"}`), CreatedAt: n, ExpiresAt: n.Add(5 * time.Minute),
	}
	must(t, "save", s.SaveWebAuthnSession(ctx, ws))
	wantErr(t, "same challenge twice", s.SaveWebAuthnSession(ctx, ws), storage.ErrAlreadyExists)
	got, err := s.TakeWebAuthnSession(ctx, ws.Challenge, n.Add(time.Minute))
	must(t, "take", err)
	wantEqual(t, "webauthn session", *got, *ws)
	_, err = s.TakeWebAuthnSession(ctx, ws.Challenge, n.Add(time.Minute))
	wantErr(t, "second take", err, storage.ErrNotFound)

	old := *ws
	old.Challenge = "old"
	must(t, "save", s.SaveWebAuthnSession(ctx, &old))
	_, err = s.TakeWebAuthnSession(ctx, "old", old.ExpiresAt)
	wantErr(t, "take expired", err, storage.ErrNotFound)
	// An expired take still consumed the row.
	_, err = s.TakeWebAuthnSession(ctx, "old", n)
	wantErr(t, "take after expired take", err, storage.ErrNotFound)

	race := *ws
	race.Challenge = "race"
	must(t, "save", s.SaveWebAuthnSession(ctx, &race))
	errs := parallel(10, func(int) error {
		_, err := s.TakeWebAuthnSession(ctx, "race", n)
		return err
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrNotFound):
			t.Fatalf("concurrent take: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("concurrent take: %d winners, want 1", wins)
	}
}

func credential(id, userID string, n time.Time) *storage.Credential {
	return &storage.Credential{
		ID: []byte(id), UserID: userID, PublicKey: []byte("cose-" + id), AttestationType: "none",
		AAGUID: []byte{0xad, 0xce, 0x00, 0x02}, SignCount: 7, Transports: []string{"internal", "hybrid"},
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true,
		Attachment: "platform", Name: "iPhone", CreatedAt: n,
	}
}

func testCredentials(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")

	c1 := credential("cred-1", "u1", n)
	must(t, "create first", s.CreateCredential(ctx, c1, true))
	got, err := s.CredentialByID(ctx, c1.ID)
	must(t, "by id", err)
	wantEqual(t, "credential", *got, *c1)

	wantErr(t, "second passkey with onlyIfFirst", s.CreateCredential(ctx, credential("cred-2", "u1", n), true), storage.ErrConflict)
	c2 := credential("cred-2", "u1", n.Add(time.Second))
	c2.Transports, c2.BackupEligible, c2.BackupState, c2.Attachment = nil, false, false, "cross-platform"
	c2.SignCount = 1<<32 - 1
	must(t, "second passkey", s.CreateCredential(ctx, c2, false))
	wantErr(t, "same credential for another user", s.CreateCredential(ctx, credential("cred-1", "u2", n), false), storage.ErrAlreadyExists)
	wantErr(t, "same credential for another user, first", s.CreateCredential(ctx, credential("cred-1", "u2", n), true), storage.ErrAlreadyExists)
	wantErr(t, "credential of a missing user", s.CreateCredential(ctx, credential("cred-x", "nobody", n), false), storage.ErrNotFound)

	list, err := s.CredentialsByUser(ctx, "u1")
	must(t, "by user", err)
	wantEqual(t, "credentials by user", list, []storage.Credential{*c1, *c2})
	if c, err := s.CountCredentials(ctx, "u1"); err != nil || c != 2 {
		t.Fatalf("count: %d, %v", c, err)
	}
	if c, err := s.CountCredentials(ctx, "u2"); err != nil || c != 0 {
		t.Fatalf("count u2: %d, %v", c, err)
	}

	used := n.Add(time.Hour)
	must(t, "use", s.UpdateCredentialUse(ctx, c1.ID, storage.CredentialUse{SignCount: 8, BackupState: false, UserVerified: true, CloneWarning: true, UsedAt: used}))
	got, err = s.CredentialByID(ctx, c1.ID)
	must(t, "by id after use", err)
	if got.SignCount != 8 || got.BackupState || !got.CloneWarning || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Fatalf("after use: %+v", got)
	}
	wantErr(t, "use missing", s.UpdateCredentialUse(ctx, []byte("nope"), storage.CredentialUse{UsedAt: used}), storage.ErrNotFound)

	wantErr(t, "rename by non-owner", s.RenameCredential(ctx, "u2", c1.ID, "stolen"), storage.ErrNotFound)
	must(t, "rename", s.RenameCredential(ctx, "u1", c1.ID, "仕事用 iPhone"))
	got, err = s.CredentialByID(ctx, c1.ID)
	must(t, "by id after rename", err)
	if got.Name != "仕事用 iPhone" {
		t.Fatalf("name after rename: %q", got.Name)
	}

	wantErr(t, "delete by non-owner", s.DeleteCredential(ctx, "u2", c1.ID), storage.ErrNotFound)
	must(t, "delete", s.DeleteCredential(ctx, "u1", c1.ID))
	_, err = s.CredentialByID(ctx, c1.ID)
	wantErr(t, "deleted", err, storage.ErrNotFound)
	wantErr(t, "delete twice", s.DeleteCredential(ctx, "u1", c1.ID), storage.ErrNotFound)

	must(t, "third", s.CreateCredential(ctx, credential("cred-3", "u1", n), false))
	if c, err := s.DeleteUserCredentials(ctx, "u1"); err != nil || c != 2 {
		t.Fatalf("delete user credentials: %d, %v", c, err)
	}
	// With none left, a first passkey may be enrolled again (rule 6).
	must(t, "first again", s.CreateCredential(ctx, credential("cred-4", "u1", n), true))
}

// testCredentialOnlyIfFirstConcurrent: racing first enrolments leave one passkey.
func testCredentialOnlyIfFirstConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	errs := parallel(10, func(i int) error {
		return pick(i, a, b).CreateCredential(ctx, credential(fmt.Sprintf("cred-%d", i), "u1", n), true)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("enrolment %d: unexpected error %v", i, err)
		}
	}
	if c, err := b.CountCredentials(ctx, "u1"); err != nil || c != 1 || wins != 1 {
		t.Fatalf("concurrent first enrolment: %d passkeys, %d winners, err %v; want 1", c, wins, err)
	}
}

func verifyAudit(s storage.Store, key []byte, expect ...storage.AuditAnchor) (storage.AuditReport, error) {
	return storage.VerifyAudit(context.Background(), s, key, expect...)
}

func wantAuditBreak(t *testing.T, what string, err error, seq int64) {
	t.Helper()
	var b *storage.AuditBreak
	if !errors.As(err, &b) || b.Seq != seq {
		t.Fatalf("%s: got %v, want a break at seq %d", what, err, seq)
	}
}

func testAudit(t *testing.T, s storage.Store, key []byte) {
	ctx := t.Context()
	n := now()
	var appended []storage.AuditEvent
	for i := range 5 {
		e := &storage.AuditEvent{
			Time: n.Add(time.Duration(i) * time.Second), Type: "login.success", Actor: "user:u1", UserID: "u1",
			IP: "203.0.113.7", UserAgent: "Mozilla/5.0", Detail: map[string]string{"amr": "hwk", "n": fmt.Sprint(i)},
		}
		if i == 2 {
			e.Detail = nil
		}
		must(t, "append", s.AppendAudit(ctx, e))
		if e.Seq != int64(i+1) || e.MAC != storage.AuditMAC(key, *e) || e.Nonce == "" || e.Hash != "" {
			t.Fatalf("append %d: seq %d nonce %q mac %q hash %q", i, e.Seq, e.Nonce, e.MAC, e.Hash)
		}
		appended = append(appended, *e)
	}
	events, err := s.ListAudit(ctx, 0, 0)
	must(t, "list", err)
	wantEqual(t, "listed events before sealing", events, appended)
	rep, err := verifyAudit(s, key)
	must(t, "verify unsealed", err)
	if rep.Unsealed != 5 || rep.Last.Seq != 0 {
		t.Fatalf("unsealed trail: %+v", rep)
	}

	cp, err := s.SealAudit(ctx, storage.AuditSealOptions{Now: n, CheckpointEvery: time.Hour})
	must(t, "seal", err)
	if cp == nil || cp.Seq != 5 || cp.ID == 0 {
		t.Fatalf("first seal wrote checkpoint %+v, want one at seq 5", cp)
	}
	events, err = s.ListAudit(ctx, 0, 0)
	must(t, "list sealed", err)
	prev := ""
	for i, e := range events {
		if e.PrevHash != prev || e.Hash != storage.AuditLink(key, prev, e.Seq, e.MAC) {
			t.Fatalf("event %d not linked: %+v", i, e)
		}
		prev = e.Hash
		appended[i].PrevHash, appended[i].Hash = e.PrevHash, e.Hash
	}
	wantEqual(t, "listed events after sealing", events, appended)
	if cp.Hash != events[4].Hash {
		t.Fatalf("checkpoint hash %s, chain end %s", cp.Hash, events[4].Hash)
	}
	rep, err = verifyAudit(s, key, storage.AuditAnchor{Seq: 3, Hash: events[2].Hash})
	must(t, "verify sealed", err)
	if rep.Events != 5 || rep.Unsealed != 0 || rep.Last != (storage.AuditAnchor{Seq: 5, Hash: events[4].Hash}) || rep.Checkpoints != 1 {
		t.Fatalf("sealed trail: %+v", rep)
	}

	page, err := s.ListAudit(ctx, 2, 2)
	must(t, "page", err)
	if len(page) != 2 || page[0].Seq != 3 || page[1].Seq != 4 {
		t.Fatalf("page after 2: %+v", page)
	}

	// Nothing new and the checkpoint is recent: no checkpoint. An hour on,
	// one is due even without events; CheckpointEvery 0 always writes one.
	cp, err = s.SealAudit(ctx, storage.AuditSealOptions{Now: n.Add(time.Minute), CheckpointEvery: time.Hour})
	must(t, "seal again", err)
	if cp != nil {
		t.Fatalf("checkpoint written a minute after the last: %+v", cp)
	}
	cp, err = s.SealAudit(ctx, storage.AuditSealOptions{Now: n.Add(time.Hour), CheckpointEvery: time.Hour})
	must(t, "seal an hour later", err)
	if cp == nil || cp.Seq != 5 {
		t.Fatalf("heartbeat checkpoint: %+v", cp)
	}
	cp, err = s.SealAudit(ctx, storage.AuditSealOptions{Now: n.Add(time.Hour), Wait: true})
	must(t, "forced seal", err)
	if cp == nil {
		t.Fatal("CheckpointEvery 0 wrote no checkpoint")
	}
	cps, err := s.ListAuditCheckpoints(ctx)
	must(t, "checkpoints", err)
	if len(cps) != 3 || cps[2].ID != cp.ID || !cps[2].Time.Equal(n.Add(time.Hour)) {
		t.Fatalf("checkpoints: %+v", cps)
	}
	_, err = verifyAudit(s, key)
	must(t, "verify with heartbeats", err)

	// What verify catches, on the listed rows.
	_, err = verifyAudit(s, key, storage.AuditAnchor{Seq: 4, Hash: events[3].Hash + "0"})
	wantAuditBreak(t, "wrong expected hash", err, 4)
	_, err = verifyAudit(s, key, storage.AuditAnchor{Seq: 9, Hash: events[3].Hash})
	wantAuditBreak(t, "expected seq beyond the chain", err, 9)
	if _, err := verifyAudit(s, []byte("another deployment's key, 32 bytes")); err == nil {
		t.Fatal("trail verifies under another key")
	}
}

// testAuditConcurrent: 40 racing appends, sealed by both stores at once,
// form one chain with every event once.
func testAuditConcurrent(t *testing.T, a, b storage.Store, key []byte) {
	ctx := t.Context()
	n := now()
	const appends = 40
	errs := parallel(appends+4, func(i int) error {
		if i >= appends {
			// Sealers race the appends; what they miss, the last seal gets.
			_, err := pick(i, a, b).SealAudit(ctx, storage.AuditSealOptions{Now: n, CheckpointEvery: time.Hour})
			return err
		}
		return pick(i, a, b).AppendAudit(ctx, &storage.AuditEvent{
			Time: n, Type: "otp.sent", Actor: "system", Detail: map[string]string{"i": fmt.Sprint(i)},
		})
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("call %d", i), err)
	}
	_, err := b.SealAudit(ctx, storage.AuditSealOptions{Now: n.Add(2 * time.Minute), Wait: true})
	must(t, "final seal", err)
	events, err := a.ListAudit(ctx, 0, 0)
	must(t, "list", err)
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.Detail["i"]] || e.Hash == "" {
			t.Fatalf("event %s twice or unsealed: %+v", e.Detail["i"], e)
		}
		seen[e.Detail["i"]] = true
	}
	rep, err := verifyAudit(a, key)
	must(t, "verify", err)
	if len(seen) != appends || rep.Events != appends || rep.Unsealed != 0 || len(rep.Orphans) != 0 {
		t.Fatalf("got %d distinct of %d events, report %+v; want %d, all sealed", len(seen), len(events), rep, appends)
	}
}

func testDeleteExpired(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	for _, tc := range []struct {
		id      string
		expires time.Time
	}{{"dead", n.Add(-time.Second)}, {"edge", n}, {"live", n.Add(time.Hour)}} {
		created := n.Add(-2 * time.Hour)
		ar := fullAuthRequest("ar-"+tc.id, created)
		ar.ExpiresAt = tc.expires
		must(t, "auth request", s.CreateAuthRequest(ctx, ar))
		must(t, "session", s.CreateSession(ctx, &storage.Session{ID: "s-" + tc.id, UserID: "u1", AuthTime: created, CreatedAt: created, LastSeenAt: created, ExpiresAt: tc.expires}))
		must(t, "flow", s.CreateLoginFlow(ctx, &storage.LoginFlow{ID: "f-" + tc.id, Version: 1, CreatedAt: created, ExpiresAt: tc.expires}))
		must(t, "webauthn", s.SaveWebAuthnSession(ctx, &storage.WebAuthnSession{Challenge: "c-" + tc.id, Ceremony: "login", CreatedAt: created, ExpiresAt: tc.expires}))
		must(t, "access token", s.CreateAccessToken(ctx, &storage.AccessToken{ID: "at-" + tc.id, ClientID: "web", Subject: "u1", CreatedAt: created, ExpiresAt: tc.expires}))
		must(t, "refresh token", s.CreateRefreshToken(ctx, &storage.RefreshToken{ID: "rt-" + tc.id, ClientID: "web", Subject: "u1", CreatedAt: created, ExpiresAt: tc.expires}, nil))
		key := signingKey("k-"+tc.id, created)
		key.ExpiresAt = tc.expires
		must(t, "key", s.RotateSigningKeys(ctx, func([]storage.SigningKey) ([]storage.SigningKey, []string, error) {
			return []storage.SigningKey{key}, nil, nil
		}))
	}
	// Rate events are kept for a day (sqlstore.RateEventRetention): the
	// one exactly a day old goes, as every expiry is "at or before".
	must(t, "old rate event", s.RecordRateEvent(ctx, "otp_send", "u1", n.Add(-25*time.Hour)))
	must(t, "day-old rate event", s.RecordRateEvent(ctx, "otp_send", "u1", n.Add(-24*time.Hour)))
	must(t, "almost day-old rate event", s.RecordRateEvent(ctx, "otp_send", "u1", n.Add(-24*time.Hour+time.Microsecond)))
	must(t, "recent rate event", s.RecordRateEvent(ctx, "login_failure", "192.0.2.1", n.Add(-time.Hour)))
	must(t, "audit", s.AppendAudit(ctx, &storage.AuditEvent{Time: n.Add(-48 * time.Hour), Type: "old"}))

	removed, err := s.DeleteExpired(ctx, n)
	must(t, "delete expired", err)
	if removed != 2*7+2 {
		t.Fatalf("removed %d rows, want %d", removed, 2*7+2)
	}
	again, err := s.DeleteExpired(ctx, n)
	must(t, "delete expired again", err)
	if again != 0 {
		t.Fatalf("second sweep removed %d rows", again)
	}

	_, err = s.AuthRequestByID(ctx, "ar-live")
	must(t, "live auth request", err)
	_, err = s.SessionByID(ctx, "s-live")
	must(t, "live session", err)
	_, err = s.LoginFlowByID(ctx, "f-live")
	must(t, "live flow", err)
	_, err = s.AccessTokenByID(ctx, "at-live")
	must(t, "live access token", err)
	_, err = s.RefreshTokenByID(ctx, "rt-live")
	must(t, "live refresh token", err)
	keys, err := s.ListSigningKeys(ctx)
	must(t, "keys", err)
	if len(keys) != 1 || keys[0].ID != "k-live" {
		t.Fatalf("keys after sweep: %+v", keys)
	}
	if c, err := s.CountRateEvents(ctx, "otp_send", "u1", n.Add(-48*time.Hour)); err != nil || c != 1 {
		t.Fatalf("otp_send events after sweep: %d, %v", c, err)
	}
	if c, err := s.CountRateEvents(ctx, "login_failure", "192.0.2.1", n.Add(-48*time.Hour)); err != nil || c != 1 {
		t.Fatalf("login_failure events after sweep: %d, %v", c, err)
	}
	if ev, err := s.ListAudit(ctx, 0, 0); err != nil || len(ev) != 1 {
		t.Fatalf("audit after sweep: %d, %v", len(ev), err)
	}
	_, err = s.TakeWebAuthnSession(ctx, "c-live", n.Add(-time.Minute))
	must(t, "live webauthn session", err)
}
