package storage_test

import (
	"errors"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func testKey(t *testing.T, secret string) []byte {
	t.Helper()
	key, err := storage.AuditKey([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestAuditKeyIsDerivedAndSeparated(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	key := testKey(t, string(secret))
	if len(key) != 32 || string(key) == string(secret) {
		t.Fatalf("key %x is not a 32-byte derivation of the secret", key)
	}
	if string(testKey(t, "0123456789abcdef0123456789abcdeF")) == string(key) {
		t.Fatal("different secrets give the same key")
	}
	if _, err := storage.AuditKey([]byte("short")); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestAuditMACIsCanonical(t *testing.T) {
	key := testKey(t, "test secret test secret test secret")
	jst := time.FixedZone("JST", 9*60*60)
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456789, jst)
	e := storage.AuditEvent{Seq: 3, Time: at, Type: "passkey.deleted", Actor: "staff:sato", UserID: "u1",
		IP: "203.0.113.7", UserAgent: "cli", Detail: map[string]string{"b": "2", "a": "1"}, Nonce: "n1"}
	mac := storage.AuditMAC(key, e)

	same := e
	same.Time = at.UTC().Truncate(time.Microsecond) // what a store gives back
	same.Detail = map[string]string{"a": "1", "b": "2"}
	same.Seq = 99 // the database assigns it after the MAC; AuditLink covers it
	same.MAC, same.PrevHash, same.Hash = "ignored", "ignored", "ignored"
	if got := storage.AuditMAC(key, same); got != mac {
		t.Fatalf("MAC depends on zone, precision, map order or chain fields: %s != %s", got, mac)
	}
	empty, emptyMap := e, e
	empty.Detail, emptyMap.Detail = nil, map[string]string{}
	if storage.AuditMAC(key, empty) != storage.AuditMAC(key, emptyMap) {
		t.Fatal("nil and empty Detail MAC differently")
	}

	for name, change := range map[string]func(*storage.AuditEvent){
		"nonce":  func(e *storage.AuditEvent) { e.Nonce = "n2" },
		"time":   func(e *storage.AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		"type":   func(e *storage.AuditEvent) { e.Type = "login.success" },
		"actor":  func(e *storage.AuditEvent) { e.Actor = "system" },
		"user":   func(e *storage.AuditEvent) { e.UserID = "u2" },
		"ip":     func(e *storage.AuditEvent) { e.IP = "198.51.100.1" },
		"agent":  func(e *storage.AuditEvent) { e.UserAgent = "curl" },
		"detail": func(e *storage.AuditEvent) { e.Detail = map[string]string{"a": "1", "b": "3"} },
		// A value may not smuggle in a key: encoding keeps them apart.
		"split": func(e *storage.AuditEvent) { e.Detail = map[string]string{"a": "1\",\"b\":\"2"} },
	} {
		changed := e
		change(&changed)
		if storage.AuditMAC(key, changed) == mac {
			t.Errorf("changing %s does not change the MAC", name)
		}
	}
	if storage.AuditMAC(testKey(t, "another secret, another secret!!"), e) == mac {
		t.Error("the key is not covered")
	}
	link := storage.AuditLink(key, "prev", 3, mac)
	for name, other := range map[string]string{
		"prev": storage.AuditLink(key, "other", 3, mac),
		"seq":  storage.AuditLink(key, "prev", 4, mac),
		"mac":  storage.AuditLink(key, "prev", 3, mac[1:]),
	} {
		if other == link {
			t.Errorf("the link does not cover %s", name)
		}
	}
}

// trail builds what a store holds: n legacy rows, then keyed rows sealed
// with one checkpoint at the end.
type trail struct {
	key    []byte
	events []storage.AuditEvent
	cps    []storage.AuditCheckpoint
}

func newTrail(t *testing.T, legacy int, keyed ...int64) *trail {
	tr := &trail{key: testKey(t, "test secret test secret test secret")}
	prev := ""
	for i := range legacy {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: time.Unix(int64(i), 0).UTC(), Type: "old", PrevHash: prev}
		e.Hash = storage.LegacyAuditHash(prev, e)
		prev = e.Hash
		tr.events = append(tr.events, e)
	}
	for _, seq := range keyed {
		e := storage.AuditEvent{Seq: seq, Time: time.Unix(seq, 0).UTC(), Type: "t", Nonce: "n" + string(rune('a'+seq))}
		e.MAC = storage.AuditMAC(tr.key, e)
		tr.events = append(tr.events, e)
	}
	tr.seal()
	return tr
}

// seal links every unlinked keyed row and checkpoints the end, as the store's sealer does.
func (tr *trail) seal() {
	prev := ""
	for i := range tr.events {
		e := &tr.events[i]
		if e.MAC != "" && e.Hash == "" {
			e.PrevHash, e.Hash = prev, storage.AuditLink(tr.key, prev, e.Seq, e.MAC)
		}
		prev = e.Hash
	}
	tr.checkpoint()
}

func (tr *trail) checkpoint() {
	end := storage.AuditAnchor{}
	if n := len(tr.events); n > 0 {
		end = storage.AuditAnchor{Seq: tr.events[n-1].Seq, Hash: tr.events[n-1].Hash}
	}
	prevMAC := ""
	if n := len(tr.cps); n > 0 {
		prevMAC = tr.cps[n-1].MAC
	}
	c := storage.AuditCheckpoint{ID: int64(len(tr.cps) + 1), Time: time.Unix(int64(1000+len(tr.cps)), 0).UTC(), Seq: end.Seq, Hash: end.Hash}
	c.MAC = storage.AuditCheckpointMAC(tr.key, prevMAC, c)
	tr.cps = append(tr.cps, c)
}

func (tr *trail) verify(expect ...storage.AuditAnchor) (storage.AuditReport, error) {
	v, err := storage.NewAuditVerifier(tr.key, tr.cps, expect...)
	if err != nil {
		return storage.AuditReport{}, err
	}
	// Two pages, to cross a page end.
	half := len(tr.events) / 2
	if err := v.Add(tr.events[:half]); err != nil {
		return storage.AuditReport{}, err
	}
	if err := v.Add(tr.events[half:]); err != nil {
		return storage.AuditReport{}, err
	}
	return v.Finish()
}

func (tr *trail) drop(seq int64) {
	for i, e := range tr.events {
		if e.Seq == seq {
			tr.events = append(tr.events[:i:i], tr.events[i+1:]...)
			return
		}
	}
}

func wantBreak(t *testing.T, what string, err error, seq int64) {
	t.Helper()
	var b *storage.AuditBreak
	if !errors.As(err, &b) || b.Seq != seq {
		t.Fatalf("%s: got %v, want a break at seq %d", what, err, seq)
	}
}

func TestAuditVerifierAcceptsAnIntactTrail(t *testing.T) {
	tr := newTrail(t, 3, 4, 5, 7, 8) // 6 was never committed
	rep, err := tr.verify(storage.AuditAnchor{Seq: 5, Hash: tr.events[4].Hash})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 7 || rep.Legacy != 3 || len(rep.SealGaps) != 1 || rep.SealGaps[0] != (storage.SeqRange{From: 6, To: 6}) ||
		rep.Last.Seq != 8 || rep.Checkpoints != 1 || rep.Unsealed != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep, err := newTrail(t, 0).verify(); err != nil || rep.Events != 0 || rep.Checkpoints != 1 {
		t.Fatalf("empty trail: %+v, %v", rep, err)
	}

	// A row appended after the seal is unsealed at the tail; one that
	// committed after its seq had been sealed over is an orphan.
	late := storage.AuditEvent{Seq: 6, Time: time.Unix(6, 0).UTC(), Type: "late", Nonce: "x"}
	late.MAC = storage.AuditMAC(tr.key, late)
	tr.events = append(tr.events[:5:5], append([]storage.AuditEvent{late}, tr.events[5:]...)...)
	next := storage.AuditEvent{Seq: 9, Time: time.Unix(9, 0).UTC(), Type: "t", Nonce: "y"}
	next.MAC = storage.AuditMAC(tr.key, next)
	tr.events = append(tr.events, next)
	rep, err = tr.verify()
	if err != nil || rep.Unsealed != 1 || len(rep.Orphans) != 1 || rep.Orphans[0] != 6 || rep.Last.Seq != 8 {
		t.Fatalf("orphan and unsealed tail: %+v, %v", rep, err)
	}
}

// The attack of the Hardening issue: delete a row, rebuild the chain with
// what the package exports, and verify said "intact".
func TestAuditVerifierCatchesARebuiltChain(t *testing.T) {
	t.Run("delete and relink without the key", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2, 3, 4)
		tr.drop(2)
		tr.events[1].PrevHash = tr.events[0].Hash // all an intruder can do
		_, err := tr.verify()
		wantBreak(t, "middle row deleted", err, 3)
	})
	t.Run("rewrite everything as unkeyed rows", func(t *testing.T) {
		tr := newTrail(t, 2, 3, 4, 5)
		tr.drop(4)
		prev := ""
		for i := range tr.events {
			e := &tr.events[i]
			e.Seq = int64(i + 1)
			e.Nonce, e.MAC = "", ""
			e.PrevHash, e.Hash = prev, storage.LegacyAuditHash(prev, *e)
			prev = e.Hash
		}
		_, err := tr.verify()
		wantBreak(t, "chain rebuilt by the unkeyed rule", err, 5) // the checkpoint names seq 5, now gone
	})
	t.Run("unkeyed row after keyed ones", func(t *testing.T) {
		tr := newTrail(t, 1, 2, 3)
		e := &tr.events[2]
		e.MAC, e.Nonce = "", ""
		e.Hash = storage.LegacyAuditHash(e.PrevHash, *e)
		_, err := tr.verify()
		wantBreak(t, "downgraded row", err, 3)
	})
	t.Run("edit a sealed row", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2, 3)
		tr.events[1].IP = "10.9.9.9"
		_, err := tr.verify()
		wantBreak(t, "edited row", err, 2)
	})
	t.Run("edit a legacy row", func(t *testing.T) {
		tr := newTrail(t, 3, 4)
		tr.events[1].Type = "forged"
		tr.events[1].Hash = storage.LegacyAuditHash(tr.events[1].PrevHash, tr.events[1]) // the next link no longer fits
		_, err := tr.verify()
		wantBreak(t, "rehashed legacy forgery", err, 3)
	})
	t.Run("swap two rows", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2, 3)
		tr.events[0].Seq, tr.events[1].Seq = 2, 1
		tr.events[0], tr.events[1] = tr.events[1], tr.events[0]
		_, err := tr.verify()
		wantBreak(t, "swapped rows", err, 1)
	})
	t.Run("clear the hash of a sealed row", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2, 3)
		tr.events[1].PrevHash, tr.events[1].Hash = "", ""
		_, err := tr.verify()
		wantBreak(t, "unsealed middle row", err, 3)
	})
}

func TestAuditVerifierCatchesACutTail(t *testing.T) {
	t.Run("rows behind a checkpoint", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2, 3)
		tr.events = tr.events[:2]
		_, err := tr.verify()
		wantBreak(t, "tail cut, checkpoint kept", err, 3)
	})
	t.Run("rows and checkpoints, against the noted anchor", func(t *testing.T) {
		tr := newTrail(t, 0, 1, 2)
		noted := storage.AuditAnchor{Seq: 2, Hash: tr.events[1].Hash}
		next := storage.AuditEvent{Seq: 3, Time: time.Unix(3, 0).UTC(), Type: "t", Nonce: "z"}
		next.MAC = storage.AuditMAC(tr.key, next)
		tr.events = append(tr.events, next)
		tr.seal()
		if _, err := tr.verify(noted); err != nil {
			t.Fatalf("grown trail against the noted anchor: %v", err)
		}
		tr.events, tr.cps = tr.events[:1], tr.cps[:1]
		tr.cps[0].Seq, tr.cps[0].Hash = 1, tr.events[0].Hash // cannot re-MAC: the old MAC stays
		if _, err := tr.verify(); err == nil {
			t.Fatal("edited checkpoint verifies")
		}
		tr.cps = nil
		_, err := tr.verify(noted)
		wantBreak(t, "tail and checkpoints cut", err, 2)
		_, err = tr.verify()
		wantBreak(t, "sealed rows without any checkpoint", err, 1)
	})
	t.Run("a checkpoint from the middle", func(t *testing.T) {
		tr := newTrail(t, 0, 1)
		tr.checkpoint()
		tr.checkpoint()
		tr.cps = append(tr.cps[:1], tr.cps[2])
		_, err := tr.verify()
		wantBreak(t, "checkpoint removed", err, 1)
	})
}
