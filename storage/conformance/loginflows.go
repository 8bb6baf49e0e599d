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

// testReserveLoginFlow: the slot is taken as ReserveRateEvent takes it
// and the flow comes back as LoginFlowByID reads it, in whichever state;
// a slot taken for a missing or expired flow stays taken, and over the
// limit nothing is written or read.
func testReserveLoginFlow(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	f := &storage.LoginFlow{
		ID: storage.HashSecret("handle"), AuthRequestID: "ar1", UserID: "u1", LoginID: "taro", Purpose: "login",
		Step: "start", PasskeyVerifiedAt: ptr(n), OTPAttempts: 1, Data: []byte(`{"cross_device":true}`),
		Version: 3, CreatedAt: n, ExpiresAt: n.Add(30 * time.Minute),
	}
	must(t, "create", s.CreateLoginFlow(ctx, f))
	bare := &storage.LoginFlow{ID: "bare", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "create a flow with every optional field empty", s.CreateLoginFlow(ctx, bare))
	old := &storage.LoginFlow{ID: "old", CreatedAt: n, ExpiresAt: n}
	must(t, "create expired", s.CreateLoginFlow(ctx, old))
	slot := storage.RateSlot{Kind: "passkey_ceremony", Key: "ip:192.0.2.1", At: n, Since: n.Add(-time.Minute), Limit: 4}
	count := func() int {
		t.Helper()
		c, err := s.CountRateEvents(ctx, slot.Kind, slot.Key, slot.Since)
		must(t, "count", err)
		return c
	}

	got, ok, err := s.ReserveLoginFlow(ctx, f.ID, slot)
	must(t, "reserve with a flow", err)
	if !ok {
		t.Fatal("refused under the limit")
	}
	wantEqual(t, "reserved flow", *got, *f)
	got, ok, err = s.ReserveLoginFlow(ctx, "bare", slot)
	must(t, "reserve with a bare flow", err)
	wantEqual(t, "reserved bare flow", *got, *bare)
	if !ok {
		t.Fatal("refused under the limit")
	}
	for _, id := range []string{"nope", "old"} {
		got, ok, err = s.ReserveLoginFlow(ctx, id, slot)
		wantErr(t, "reserve for flow "+id, err, storage.ErrNotFound)
		if !ok || got != nil {
			t.Fatalf("reserve for flow %s: ok %v, flow %+v; want the slot taken and no flow", id, ok, got)
		}
	}
	if c := count(); c != 4 {
		t.Fatalf("slots after four reservations: %d, want 4 (a missing flow's slot stays taken)", c)
	}
	got, ok, err = s.ReserveLoginFlow(ctx, f.ID, slot)
	if err != nil || ok || got != nil {
		t.Fatalf("reserve over the limit: flow %+v, ok %v, err %v; want refused and no flow", got, ok, err)
	}
	if c := count(); c != 4 {
		t.Fatalf("slots after a refusal: %d, want 4 (nothing written)", c)
	}
	other := slot
	other.Key = "ip:192.0.2.2"
	if _, ok, err := s.ReserveLoginFlow(ctx, f.ID, other); err != nil || !ok {
		t.Fatalf("another key's limit: ok %v, err %v", ok, err)
	}
	for _, bad := range []storage.RateSlot{{Key: "k", At: n, Limit: 1}, {Kind: "k", At: n, Limit: 1}, {Kind: "k", Key: "k", Limit: 1}, {Kind: "k", Key: "k", At: n}} {
		if _, ok, err := s.ReserveLoginFlow(ctx, f.ID, bad); err == nil || ok {
			t.Errorf("ReserveLoginFlow(%+v): ok %v, err %v; want an error", bad, ok, err)
		}
	}
}

// testReserveLoginFlowConcurrent: 40 concurrent calls under a limit of 5
// take 5 slots, each with the flow, and read nothing for the others.
func testReserveLoginFlowConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	f := &storage.LoginFlow{ID: "flow", Step: "start", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
	must(t, "create", a.CreateLoginFlow(ctx, f))
	slot := storage.RateSlot{Kind: "passkey_ceremony", Key: "ip:192.0.2.1", At: n, Since: n.Add(-time.Minute), Limit: 5}
	flows := make([]*storage.LoginFlow, 40)
	taken := make([]bool, 40)
	for i, err := range parallel(40, func(i int) error {
		var err error
		flows[i], taken[i], err = pick(i, a, b).ReserveLoginFlow(ctx, f.ID, slot)
		return err
	}) {
		if err != nil {
			t.Fatalf("reservation %d: %v", i, err)
		}
	}
	won := 0
	for i := range flows {
		switch {
		case taken[i] && (flows[i] == nil || flows[i].ID != f.ID):
			t.Fatalf("reservation %d took a slot without the flow: %+v", i, flows[i])
		case !taken[i] && flows[i] != nil:
			t.Fatalf("refused reservation %d read the flow", i)
		case taken[i]:
			won++
		}
	}
	if c, err := b.CountRateEvents(ctx, slot.Kind, slot.Key, slot.Since); err != nil || won != 5 || c != 5 {
		t.Fatalf("40 concurrent reservations under a limit of 5: %d taken, %d stored (%v)", won, c, err)
	}
}
