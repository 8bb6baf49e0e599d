package storage_test

import (
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func TestAuditHashIsCanonical(t *testing.T) {
	jst := time.FixedZone("JST", 9*60*60)
	at := time.Date(2026, 11, 25, 18, 0, 0, 123456789, jst)
	e := storage.AuditEvent{Seq: 3, Time: at, Type: "passkey.deleted", Actor: "staff:sato", UserID: "u1",
		IP: "203.0.113.7", UserAgent: "cli", Detail: map[string]string{"b": "2", "a": "1"}}
	h := storage.AuditHash("prev", e)

	same := e
	same.Time = at.UTC().Truncate(time.Microsecond) // what a store gives back
	same.Detail = map[string]string{"a": "1", "b": "2"}
	same.PrevHash, same.Hash = "ignored", "ignored"
	if got := storage.AuditHash("prev", same); got != h {
		t.Fatalf("hash depends on zone, precision or map order: %s != %s", got, h)
	}
	empty := e
	empty.Detail = nil
	emptyMap := e
	emptyMap.Detail = map[string]string{}
	if storage.AuditHash("prev", empty) != storage.AuditHash("prev", emptyMap) {
		t.Fatal("nil and empty Detail hash differently")
	}

	for name, change := range map[string]func(*storage.AuditEvent){
		"seq":    func(e *storage.AuditEvent) { e.Seq++ },
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
		if storage.AuditHash("prev", changed) == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	if storage.AuditHash("other", e) == h {
		t.Error("prevHash is not covered")
	}
}

func TestVerifyAuditChain(t *testing.T) {
	var chain []storage.AuditEvent
	prev := ""
	for i := range 4 {
		e := storage.AuditEvent{Seq: int64(i + 1), Time: time.Unix(int64(i), 0).UTC(), Type: "t", PrevHash: prev}
		e.Hash = storage.AuditHash(prev, e)
		prev = e.Hash
		chain = append(chain, e)
	}
	if seq, ok := storage.VerifyAuditChain(chain, ""); !ok {
		t.Fatalf("valid chain broken at %d", seq)
	}
	if seq, ok := storage.VerifyAuditChain(nil, ""); !ok || seq != 0 {
		t.Fatalf("empty chain: (%d, %v)", seq, ok)
	}
	if seq, ok := storage.VerifyAuditChain(chain[2:], chain[1].Hash); !ok {
		t.Fatalf("tail broken at %d", seq)
	}
	if seq, ok := storage.VerifyAuditChain(chain[2:], "wrong"); ok || seq != 3 {
		t.Fatalf("tail with wrong start: (%d, %v), want (3, false)", seq, ok)
	}

	forged := append([]storage.AuditEvent(nil), chain...)
	forged[1].Type = "forged"
	forged[1].Hash = storage.AuditHash(forged[1].PrevHash, forged[1]) // rehashed, but the next link no longer fits
	if seq, ok := storage.VerifyAuditChain(forged, ""); ok || seq != 3 {
		t.Fatalf("rehashed forgery: (%d, %v), want (3, false)", seq, ok)
	}
	swapped := []storage.AuditEvent{chain[0], chain[2], chain[1], chain[3]}
	if seq, ok := storage.VerifyAuditChain(swapped, ""); ok || seq != 3 {
		t.Fatalf("reordered: (%d, %v), want (3, false)", seq, ok)
	}
}
