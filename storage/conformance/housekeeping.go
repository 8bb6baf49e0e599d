package conformance

import (
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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
