package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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
	must(t, "complete", s.CompleteAuthRequest(ctx, "ar1", "u1", authTime, []string{"hwk", "user"}, "phr", ""))
	wantErr(t, "complete missing", s.CompleteAuthRequest(ctx, "nope", "u1", authTime, nil, "", ""), storage.ErrNotFound)
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
		return pick(i, a, b).CompleteAuthRequest(ctx, "ar", fmt.Sprintf("u%d", i), n, []string{"pwd"}, "1", "")
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
	wantErr(t, "complete again", a.CompleteAuthRequest(ctx, "ar", "other", n, []string{"pwd"}, "1", ""), storage.ErrConflict)

	coded := fullAuthRequest("ar-coded", n)
	must(t, "create coded", a.CreateAuthRequest(ctx, coded))
	must(t, "save code", a.SaveAuthCode(ctx, "ar-coded", storage.HashSecret("c"), n.Add(time.Minute)))
	wantErr(t, "complete with a code", a.CompleteAuthRequest(ctx, "ar-coded", "u1", n, []string{"pwd"}, "1", ""), storage.ErrConflict)

	old := fullAuthRequest("ar-old", n.Add(-time.Hour))
	old.ExpiresAt = n.Add(-time.Second)
	must(t, "create expired", a.CreateAuthRequest(ctx, old))
	wantErr(t, "complete expired", a.CompleteAuthRequest(ctx, "ar-old", "u1", n, []string{"pwd"}, "1", ""), storage.ErrNotFound)
}
