package conformance

import (
	"errors"
	"fmt"
	"slices"
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

	newUser(t, s, "u1")
	authTime := n.Add(time.Second)
	must(t, "complete", complete(ctx, s, "ar1", "u1", authTime, []string{"hwk", "user"}, "phr", ""))
	wantErr(t, "complete missing", complete(ctx, s, "nope", "u1", authTime, nil, "", ""), storage.ErrNotFound)
	code := storage.HashSecret("code-1")
	codeExpires := n.Add(time.Minute)
	must(t, "save code", s.SaveAuthCode(ctx, "ar1", code, codeExpires))
	wantErr(t, "save code for missing", s.SaveAuthCode(ctx, "nope", "x", codeExpires), storage.ErrNotFound)
	if err := s.SaveAuthCode(ctx, "ar-zero", storage.HashSecret("no-expiry"), time.Time{}); err == nil {
		t.Fatal("save code without expiry succeeded")
	}

	got, user, err := s.AuthRequestByCode(ctx, code)
	must(t, "by code", err)
	want := *a
	want.UserID, want.AuthTime, want.AMR, want.ACR, want.Done, want.CodeHash = "u1", authTime, []string{"hwk", "user"}, "phr", true, code
	want.CodeExpiresAt = codeExpires
	wantEqual(t, "completed auth request", *got, want)
	if user == nil || user.ID != "u1" || user.LoginID != "login-u1" {
		t.Fatalf("by code: user %+v, want u1", user)
	}
	_, _, err = s.AuthRequestByCode(ctx, storage.HashSecret("other"))
	wantErr(t, "unknown code", err, storage.ErrNotFound)

	consumedAt := n.Add(2 * time.Second)
	at := &storage.AccessToken{ID: "at-ar1", ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar1", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "exchange", s.ExchangeCode(ctx, "ar1", consumedAt, at, nil))
	wantAccessToken(t, s, "at-ar1", true)
	again := &storage.AccessToken{ID: "at-ar1-again", ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar1", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	wantErr(t, "exchange twice", s.ExchangeCode(ctx, "ar1", consumedAt.Add(time.Second), again, nil), storage.ErrConflict)
	wantAccessToken(t, s, "at-ar1-again", false)
	wantErr(t, "exchange missing", s.ExchangeCode(ctx, "nope", consumedAt, again, nil), storage.ErrNotFound)
	wantAccessToken(t, s, "at-ar1-again", false)
	got, _, err = s.AuthRequestByCode(ctx, code)
	must(t, "by code after exchange", err)
	if got.ConsumedAt == nil || !got.ConsumedAt.Equal(consumedAt) {
		t.Fatalf("consumed at: got %v, want %v", got.ConsumedAt, consumedAt)
	}

	// The code issued with the completion, and the tokens with a refresh
	// token: one write each.
	withCode := fullAuthRequest("ar-with-code", n)
	must(t, "create ar-with-code", s.CreateAuthRequest(ctx, withCode))
	if _, err := s.CompleteAuthRequest(ctx, "ar-with-code", storage.Completion{UserID: "u1", AuthTime: authTime,
		AMR: []string{"pwd"}, ACR: "1", CodeHash: storage.HashSecret("half")}); err == nil {
		t.Fatal("complete with a code hash but no expiry succeeded")
	}
	code2 := storage.HashSecret("code-2")
	done, err := s.CompleteAuthRequest(ctx, "ar-with-code", storage.Completion{UserID: "u1", AuthTime: authTime,
		AMR: []string{"hwk", "user"}, ACR: "phr", CodeHash: code2, CodeExpiresAt: codeExpires})
	must(t, "complete with a code", err)
	want = *withCode
	want.UserID, want.AuthTime, want.AMR, want.ACR, want.Done, want.CodeHash = "u1", authTime, []string{"hwk", "user"}, "phr", true, code2
	want.CodeExpiresAt = codeExpires
	wantEqual(t, "completion's answer", *done, want)
	got, _, err = s.AuthRequestByCode(ctx, code2)
	must(t, "by the completion's code", err)
	wantEqual(t, "completed with a code", *got, want)
	rt := &storage.RefreshToken{ID: "rt-ar2", ClientID: "loan-web", Subject: "u1", Audience: []string{"loan-web"},
		Scopes: []string{"openid", "offline_access"}, AMR: []string{"hwk", "user"}, ACR: "phr", AuthTime: authTime,
		AuthRequestID: "ar-with-code", AccessTokenID: "at-ar2", SessionID: "sid-2", CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour)}
	at2 := &storage.AccessToken{ID: "at-ar2", ClientID: "loan-web", Subject: "u1", Audience: []string{"loan-web"},
		Scopes: []string{"openid", "offline_access"}, AuthRequestID: "ar-with-code", RefreshTokenID: "rt-ar2", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "exchange with a refresh token", s.ExchangeCode(ctx, "ar-with-code", consumedAt, at2, rt))
	gotAT, err := s.AccessTokenByID(ctx, "at-ar2")
	must(t, "exchanged access token", err)
	wantEqual(t, "exchanged access token", *gotAT, *at2)
	gotRT, err := s.RefreshTokenByID(ctx, "rt-ar2")
	must(t, "exchanged refresh token", err)
	wantRT := *rt
	wantRT.FamilyID = "rt-ar2"
	wantEqual(t, "exchanged refresh token", *gotRT, wantRT)
	rt3 := *rt
	rt3.ID, rt3.FamilyID = "rt-ar2-again", ""
	wantErr(t, "exchange twice with a refresh token", s.ExchangeCode(ctx, "ar-with-code", consumedAt, again, &rt3), storage.ErrConflict)
	if _, err := s.RefreshTokenByID(ctx, "rt-ar2-again"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refresh token of a refused exchange: %v, want ErrNotFound", err)
	}

	// The user's end takes the code's answer with it.
	gone := fullAuthRequest("ar-user-gone", n)
	must(t, "create ar-user-gone", s.CreateAuthRequest(ctx, gone))
	newUser(t, s, "u-gone")
	must(t, "complete ar-user-gone", complete(ctx, s, "ar-user-gone", "u-gone", authTime, []string{"pwd"}, "1", ""))
	must(t, "code of ar-user-gone", s.SaveAuthCode(ctx, "ar-user-gone", storage.HashSecret("gone"), codeExpires))
	must(t, "delete u-gone", s.DeleteUser(ctx, "u-gone"))
	_, _, err = s.AuthRequestByCode(ctx, storage.HashSecret("gone"))
	wantErr(t, "by code of a deleted user", err, storage.ErrNotFound)

	// A code past its own expiry is still found while its request lives:
	// refusing it is the caller's decision, and a replay stays detectable.
	stale := fullAuthRequest("ar-stale-code", n.Add(-5*time.Minute))
	must(t, "create stale-code request", s.CreateAuthRequest(ctx, stale))
	must(t, "complete stale-code request", complete(ctx, s, "ar-stale-code", "u1", authTime, []string{"pwd"}, "1", ""))
	staleCode := storage.HashSecret("stale-code")
	must(t, "save stale code", s.SaveAuthCode(ctx, "ar-stale-code", staleCode, n.Add(-4*time.Minute)))
	got, _, err = s.AuthRequestByCode(ctx, staleCode)
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
	_, _, err = s.AuthRequestByCode(ctx, old.CodeHash)
	wantErr(t, "expired by code", err, storage.ErrNotFound)
}

// testAuthRequestConcurrentExchange: of 40 exchanges of one code at once,
// one stores its tokens; the others store nothing.
func testAuthRequestConcurrentExchange(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	must(t, "create", a.CreateAuthRequest(ctx, fullAuthRequest("ar", n)))
	errs := parallel(40, func(i int) error {
		at := &storage.AccessToken{ID: fmt.Sprintf("at%02d", i), ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
		var rt *storage.RefreshToken
		if i%2 == 1 {
			rt = &storage.RefreshToken{ID: fmt.Sprintf("rt%02d", i), ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar", AccessTokenID: at.ID, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
			at.RefreshTokenID = rt.ID
		}
		return pick(i, a, b).ExchangeCode(ctx, "ar", n, at, rt)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("concurrent exchange: %d and %d both exchanged the code", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("concurrent exchange: unexpected error %v", err)
		}
	}
	if winner < 0 {
		t.Fatal("concurrent exchange: nobody exchanged the code")
	}
	for i := range errs {
		wantAccessToken(t, a, fmt.Sprintf("at%02d", i), i == winner)
		if i%2 == 1 {
			_, err := a.RefreshTokenByID(ctx, fmt.Sprintf("rt%02d", i))
			if (err == nil) != (i == winner) {
				t.Fatalf("refresh token of exchange %d (winner %d): %v", i, winner, err)
			}
		}
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
		return complete(ctx, pick(i, a, b), "ar", fmt.Sprintf("u%d", i), n, []string{"pwd"}, "1", "")
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
	wantErr(t, "complete again", complete(ctx, a, "ar", "other", n, []string{"pwd"}, "1", ""), storage.ErrConflict)

	coded := fullAuthRequest("ar-coded", n)
	must(t, "create coded", a.CreateAuthRequest(ctx, coded))
	must(t, "save code", a.SaveAuthCode(ctx, "ar-coded", storage.HashSecret("c"), n.Add(time.Minute)))
	wantErr(t, "complete with a code", complete(ctx, a, "ar-coded", "u1", n, []string{"pwd"}, "1", ""), storage.ErrConflict)

	old := fullAuthRequest("ar-old", n.Add(-time.Hour))
	old.ExpiresAt = n.Add(-time.Second)
	must(t, "create expired", a.CreateAuthRequest(ctx, old))
	wantErr(t, "complete expired", complete(ctx, a, "ar-old", "u1", n, []string{"pwd"}, "1", ""), storage.ErrNotFound)
}

// testAuthRequestCreatedCompleted: the SSO answer at /authorize stores its
// request completed, with its code, and tells the session its client; a
// session that ended stores nothing.
func testAuthRequestCreatedCompleted(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	se := signIn(t, s, "se-live", "u1", n.Add(time.Hour))
	code := storage.HashSecret("sso-code")
	c := storage.Completion{UserID: "u1", AuthTime: n.Add(-time.Minute), AMR: []string{"hwk", "user", "mfa"}, ACR: "phr",
		SID: se.SID, CodeHash: code, CodeExpiresAt: n.Add(time.Minute)}
	a := fullAuthRequest("ar-sso", n)
	must(t, "create completed", s.CreateAuthRequestCompleted(ctx, a, c))
	got, user, err := s.AuthRequestByCode(ctx, code)
	must(t, "by the code", err)
	want := *a
	want.UserID, want.AuthTime, want.AMR, want.ACR, want.Done = c.UserID, c.AuthTime, c.AMR, c.ACR, true
	want.SessionID, want.CodeHash, want.CodeExpiresAt = c.SID, c.CodeHash, c.CodeExpiresAt
	wantEqual(t, "created completed", *got, want)
	if user.ID != "u1" {
		t.Fatalf("by the code: user %q", user.ID)
	}
	sessions, err := s.SessionsByUser(ctx, "u1", n)
	must(t, "sessions", err)
	if len(sessions) != 1 || !slices.Equal(sessions[0].Clients, []string{"loan-web"}) {
		t.Fatalf("the session's clients: %+v, want loan-web", sessions)
	}
	wantErr(t, "create completed twice", s.CreateAuthRequestCompleted(ctx, fullAuthRequest("ar-sso", n), c), storage.ErrAlreadyExists)
	if err := s.CreateAuthRequestCompleted(ctx, fullAuthRequest("ar-no-code", n), storage.Completion{UserID: "u1", AuthTime: n, SID: se.SID}); err == nil {
		t.Fatal("created completed without a code")
	}

	must(t, "end the session", s.DeleteSession(ctx, se.ID))
	c.CodeHash = storage.HashSecret("late-code")
	err = s.CreateAuthRequestCompleted(ctx, fullAuthRequest("ar-late", n), c)
	wantErr(t, "create completed from an ended session", err, storage.ErrNotFound)
	wantErr(t, "create completed from an ended session", err, storage.ErrSessionEnded)
	_, err = s.AuthRequestByID(ctx, "ar-late")
	wantErr(t, "request of an ended session", err, storage.ErrNotFound)
}
