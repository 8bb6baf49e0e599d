package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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
