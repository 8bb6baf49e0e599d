package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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

	if got.PasskeyOfferSkippedAt != nil {
		t.Fatalf("new user has declined the passkey offer at %v", got.PasskeyOfferSkippedAt)
	}
	skipped := now().Add(-time.Hour)
	must(t, "passkey offer skipped", s.SetPasskeyOfferSkipped(ctx, "u1", skipped))
	got, err = s.UserByLoginID(ctx, u.LoginID)
	must(t, "user after the offer was skipped", err)
	if got.PasskeyOfferSkippedAt == nil || !got.PasskeyOfferSkippedAt.Equal(skipped) || got.PasskeyOfferSkippedAt.Location() != time.UTC {
		t.Fatalf("passkey offer skipped at %v, want %v (UTC)", got.PasskeyOfferSkippedAt, skipped)
	}
	other, err := s.UserByID(ctx, u.ID)
	must(t, "user by id after the offer was skipped", err)
	wantEqual(t, "both reads agree", *other, *got)
	wantErr(t, "skip offer of missing user", s.SetPasskeyOfferSkipped(ctx, "nobody", skipped), storage.ErrNotFound)

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
		must(t, "complete", complete(ctx, s, "ar-"+id, id, n, []string{"hwk"}, "2", ""))
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
