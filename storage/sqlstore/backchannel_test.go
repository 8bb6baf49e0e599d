package sqlstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// A completion from an SSO session that arrives while the session is being
// ended (endSessions holds its row FOR UPDATE and has not yet read the
// clients) waits, then finds the session gone: ErrNotFound, the request not
// completed and no client recorded, never an error of another kind or a
// client recorded after the logouts were queued. PostgreSQL only: SQLite's
// one writer orders the two anyway.
func TestCompletionWaitingOnAnEndingSessionFindsItGone(t *testing.T) {
	s := storagetest.New(t, "postgres")
	ctx := t.Context()
	n := time.Now().UTC().Truncate(time.Second)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("create user", s.CreateUser(ctx, &storage.User{ID: "u1", LoginID: "taro", Email: "taro@example.jp",
		PasswordHash: "x", CreatedAt: n, UpdatedAt: n}))
	se := &storage.Session{ID: "s1", UserID: "u1", AuthTime: n, CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour)}
	must("create session", s.CreateSession(ctx, se))
	must("create auth request", s.CreateAuthRequest(ctx, &storage.AuthRequest{ID: "ar1", ClientID: "c1",
		RedirectURI: "https://www.example.jp/cb", Scopes: []string{"openid"}, ResponseType: "code",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		CreatedAt: n, ExpiresAt: n.Add(10 * time.Minute)}))

	db := s.DB()
	tx, err := db.BeginTxx(ctx, nil)
	must("begin", err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `SELECT id FROM sessions WHERE sid = $1 FOR UPDATE`, se.SID)
	must("lock the session as endSessions does", err)

	done := make(chan error, 1)
	go func() {
		_, err := s.CompleteAuthRequest(context.Background(), "ar1", storage.Completion{
			UserID: "u1", AuthTime: n, AMR: []string{"pwd"}, ACR: "1", SID: se.SID})
		done <- err
	}()
	waitForLockWait(t, db, done, "the completion")
	_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE sid = $1`, se.SID)
	must("end the session", err)
	must("commit the end", tx.Commit())

	if err := <-done; !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("completion after its session ended: %v, want ErrNotFound", err)
	}
	ar, err := s.AuthRequestByID(ctx, "ar1")
	must("auth request", err)
	if ar.Done {
		t.Error("the auth request was completed from an ended session")
	}
	var clients int
	must("count clients", db.GetContext(ctx, &clients, `SELECT COUNT(*) FROM session_clients`))
	if clients != 0 {
		t.Errorf("%d session_clients rows, want 0", clients)
	}
}

// A completion from an SSO session that commits while EndUserAccess is on
// its way (the user is stamped, the session not yet locked) must not leave
// a code that buys tokens once the sign-out everywhere has returned: the
// request is ended with the others. The test holds the session FOR KEY
// SHARE, which stops EndUserAccess at the session's lock but not the
// completion's FOR SHARE. PostgreSQL only: SQLite's one writer orders the
// two anyway.
func TestCompletionDuringEndUserAccessIsEnded(t *testing.T) {
	s := storagetest.New(t, "postgres")
	ctx := t.Context()
	n := time.Now().UTC().Truncate(time.Second)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("create user", s.CreateUser(ctx, &storage.User{ID: "u1", LoginID: "taro", Email: "taro@example.jp",
		PasswordHash: "x", CreatedAt: n, UpdatedAt: n}))
	se := &storage.Session{ID: "s1", UserID: "u1", AuthTime: n.Add(-time.Minute), CreatedAt: n, LastSeenAt: n, ExpiresAt: n.Add(time.Hour)}
	must("create session", s.CreateSession(ctx, se))

	db := s.DB()
	tx, err := db.BeginTxx(ctx, nil)
	must("begin", err)
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `SELECT id FROM sessions WHERE sid = $1 FOR KEY SHARE`, se.SID)
	must("hold the session", err)

	done := make(chan error, 1)
	go func() {
		_, err := s.EndUserAccess(context.Background(), "u1", "", n)
		done <- err
	}()
	waitForLockWait(t, db, done, "EndUserAccess")
	code := storage.HashSecret("sso-code")
	err = s.CreateAuthRequestCompleted(ctx, &storage.AuthRequest{ID: "ar1", ClientID: "c1",
		RedirectURI: "https://www.example.jp/cb", Scopes: []string{"openid"}, ResponseType: "code",
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256",
		CreatedAt: n, ExpiresAt: n.Add(10 * time.Minute)},
		storage.Completion{UserID: "u1", AuthTime: se.AuthTime, AMR: []string{"hwk"}, ACR: "phr", SID: se.SID,
			CodeHash: code, CodeExpiresAt: n.Add(time.Minute)})
	must("complete from the session while its access ends", err)
	must("release the session", tx.Rollback())
	must("end user access", <-done)

	if _, _, err := s.AuthRequestByCode(ctx, code); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the code of a login completed during the sign-out everywhere: %v, want ErrNotFound", err)
	}
	err = s.ExchangeCode(ctx, "ar1", n, &storage.AccessToken{ID: "at1", ClientID: "c1", Subject: "u1",
		AuthRequestID: "ar1", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}, nil)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("exchange after the sign-out everywhere: %v, want ErrNotFound", err)
	}
}

// waitForLockWait polls (bounded, no timing asserted) until another
// backend of this database waits for a lock: who, running in the
// background and reporting on done, has reached the row the test holds.
func waitForLockWait(t *testing.T, db *sqlx.DB, done <-chan error, who string) {
	t.Helper()
	for polls, waiting := 0, 0; waiting == 0; polls++ {
		if polls == 2000 {
			t.Fatalf("%s never waited for the session's lock", who)
		}
		select {
		case err := <-done:
			t.Fatalf("%s returned while the session was held: %v", who, err)
		case <-time.After(5 * time.Millisecond):
		}
		if err := db.GetContext(t.Context(), &waiting, `SELECT COUNT(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatalf("watch locks: %v", err)
		}
	}
}
