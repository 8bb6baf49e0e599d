package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func testSessions(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	se := &storage.Session{
		ID: storage.HashSecret("cookie"), UserID: "u1", AuthTime: n.Add(-time.Minute), AMR: []string{"pwd", "otp"},
		ACR: "1", CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour),
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) 「テスト」",
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

// testSessionsByUser: the user's live sessions, most recently used first,
// each with the clients it signed in to (recorded once however often).
func testSessionsByUser(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	session := func(id, user string, seen, expires time.Time) storage.Session {
		se := storage.Session{ID: id, UserID: user, AuthTime: n, AMR: []string{"hwk"}, ACR: "phr",
			CreatedAt: n.Add(-time.Hour), LastSeenAt: seen, ExpiresAt: expires, UserAgent: "ua-" + id}
		must(t, "create session "+id, s.CreateSession(ctx, &se))
		return se
	}
	phone := session("phone", "u1", n.Add(-time.Minute), n.Add(time.Hour))
	pc := session("pc", "u1", n, n.Add(time.Hour))
	session("stale", "u1", n, n.Add(-time.Second))
	other := session("other", "u2", n, n.Add(time.Hour))
	// A session records a client when an auth request of that client
	// completes from it, once however often.
	for i, c := range []struct {
		se     storage.Session
		client string
	}{
		{pc, "web"}, {pc, "app"}, {pc, "web"}, {phone, "web"}, {other, "web"},
	} {
		ar := fullAuthRequest(fmt.Sprintf("ar-%d", i), n)
		ar.ClientID = c.client
		must(t, "create auth request", s.CreateAuthRequest(ctx, ar))
		must(t, "complete from the session", complete(ctx, s, ar.ID, c.se.UserID, n, c.se.AMR, c.se.ACR, c.se.SID))
	}

	got, err := s.SessionsByUser(ctx, "u1", n)
	must(t, "sessions by user", err)
	pc.Clients = []string{"app", "web"}
	phone.Clients = []string{"web"}
	wantEqual(t, "sessions", got, []storage.Session{pc, phone})

	none, err := s.SessionsByUser(ctx, "nobody", n)
	must(t, "sessions of nobody", err)
	if len(none) != 0 {
		t.Fatalf("sessions of an unknown user: %+v", none)
	}
	must(t, "delete pc", s.DeleteSession(ctx, "pc"))
	got, err = s.SessionsByUser(ctx, "u1", n)
	must(t, "sessions after delete", err)
	wantEqual(t, "sessions after delete", got, []storage.Session{phone})
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

// testEndUserAccessOutlivesOlderProofs: a proof made before EndUserAccess
// (a passkey verified a moment before the support centre deleted it) opens
// no session and completes no auth request afterwards, and a login that was
// completed but not yet exchanged for tokens ends; a proof made after it,
// and other users, are untouched.
func testEndUserAccessOutlivesOlderProofs(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	before, after := n.Add(-time.Second), n.Add(time.Second)
	for _, id := range []string{"ar-pending", "ar-done", "ar-other"} {
		must(t, "create "+id, s.CreateAuthRequest(ctx, fullAuthRequest(id, n.Add(-time.Minute))))
	}
	must(t, "complete ar-done", complete(ctx, s, "ar-done", "u1", before, []string{"hwk"}, "phr", ""))
	must(t, "complete ar-other", complete(ctx, s, "ar-other", "u2", before, []string{"hwk"}, "phr", ""))
	// A code the token endpoint has just read (AuthRequestByCode), and
	// exchanges once access has ended.
	must(t, "create ar-coded", s.CreateAuthRequest(ctx, fullAuthRequest("ar-coded", n.Add(-time.Minute))))
	_, err := s.CompleteAuthRequest(ctx, "ar-coded", storage.Completion{UserID: "u1", AuthTime: before,
		AMR: []string{"hwk"}, ACR: "phr", CodeHash: storage.HashSecret("coded"), CodeExpiresAt: n.Add(time.Minute)})
	must(t, "complete ar-coded", err)
	_, _, err = s.AuthRequestByCode(ctx, storage.HashSecret("coded"))
	must(t, "read ar-coded by its code", err)

	_, err = s.EndUserAccess(ctx, "u1", "", n)
	must(t, "end user access", err)
	late := &storage.AccessToken{ID: "at-late", ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar-coded",
		CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	lateRT := &storage.RefreshToken{ID: "rt-late", ClientID: "loan-web", Subject: "u1", AuthRequestID: "ar-coded",
		AccessTokenID: "at-late", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	late.RefreshTokenID = lateRT.ID
	wantErr(t, "exchanging a code of an ended login", s.ExchangeCode(ctx, "ar-coded", n, late, lateRT), storage.ErrNotFound)
	wantAccessToken(t, s, "at-late", false)
	if _, err := s.RefreshTokenByID(ctx, "rt-late"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("refresh token of an ended login's exchange: %v, want ErrNotFound", err)
	}

	session := func(id, user string, authTime time.Time) error {
		return s.CreateSession(ctx, &storage.Session{ID: id, UserID: user, AuthTime: authTime,
			CreatedAt: after, LastSeenAt: after, ExpiresAt: after.Add(time.Hour)})
	}
	wantErr(t, "session from a proof before the sign-out", session("stale", "u1", before), storage.ErrConflict)
	_, err = s.SessionByID(ctx, "stale")
	wantErr(t, "refused session", err, storage.ErrNotFound)
	wantErr(t, "completing with a proof before the sign-out",
		complete(ctx, s, "ar-pending", "u1", before, []string{"hwk"}, "phr", ""), storage.ErrConflict)
	_, err = s.AuthRequestByID(ctx, "ar-done")
	wantErr(t, "completed, unexchanged request of the user", err, storage.ErrNotFound)

	must(t, "session from a proof at the sign-out", session("same-instant", "u1", n))
	must(t, "session from a later proof", session("fresh", "u1", after))
	must(t, "completing with a later proof", complete(ctx, s, "ar-pending", "u1", after, []string{"hwk"}, "phr", ""))
	must(t, "another user's session", session("other", "u2", before))
	_, err = s.AuthRequestByID(ctx, "ar-other")
	must(t, "another user's completed request", err)
}

// testSessionWithUser: the session, its user as UserByID reads it, and
// whether the user has a passkey, in one read; gone and expired sessions
// are ErrNotFound, and another user's passkeys do not count.
func testSessionWithUser(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	must(t, "passkey of another user", s.CreateCredential(ctx, credential("cred-u2", "u2", n), false))
	se := &storage.Session{ID: "sso", UserID: "u1", AuthTime: n, AMR: []string{"pwd"}, ACR: "pwd",
		CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour), UserAgent: "ua"}
	must(t, "create session", s.CreateSession(ctx, se))
	check := func(what string, hasPasskey bool) {
		t.Helper()
		got, err := s.SessionWithUser(ctx, se.ID)
		must(t, what, err)
		wantEqual(t, what+": session", got.Session, *se)
		u, err := s.UserByID(ctx, "u1")
		must(t, what+": user by id", err)
		wantEqual(t, what+": user", got.User, *u)
		if got.HasPasskey != hasPasskey {
			t.Errorf("%s: HasPasskey %v, want %v", what, got.HasPasskey, hasPasskey)
		}
	}
	check("without a passkey", false)
	must(t, "lock", s.SetUserLocked(ctx, "u1", true))
	check("locked", false)
	must(t, "first passkey", s.CreateCredential(ctx, credential("cred-1", "u1", n), false))
	must(t, "second passkey", s.CreateCredential(ctx, credential("cred-2", "u1", n), false))
	check("with two passkeys", true)

	_, err := s.SessionWithUser(ctx, "nope")
	wantErr(t, "missing session", err, storage.ErrNotFound)
	old := &storage.Session{ID: "old", UserID: "u1", AuthTime: n, CreatedAt: n.Add(-2 * time.Hour), LastSeenAt: n, ExpiresAt: n.Add(-time.Second)}
	must(t, "create expired session", s.CreateSession(ctx, old))
	_, err = s.SessionWithUser(ctx, "old")
	wantErr(t, "expired session", err, storage.ErrNotFound)
	must(t, "delete user", s.DeleteUser(ctx, "u1"))
	_, err = s.SessionWithUser(ctx, se.ID)
	wantErr(t, "session of a deleted user", err, storage.ErrNotFound)
}
