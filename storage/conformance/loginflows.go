package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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
