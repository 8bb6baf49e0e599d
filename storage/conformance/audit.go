package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

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
