package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func TestAuditVerifyAndList(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx := context.Background()
		if out := c.ok("audit", "verify"); !strings.Contains(out, "intact: 0 events") {
			t.Errorf("empty trail: %q", out)
		}
		now := time.Now().UTC()
		if err := c.store.CreateUser(ctx, &storage.User{ID: "alice-id", LoginID: "alice", Email: "alice@example.com",
			PasswordHash: "$2a$04$xxxxxxxxxxxxxxxxxxxxxuxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		appendEvent := func(typ, userID, ip string) {
			t.Helper()
			if err := c.store.AppendAudit(ctx, &storage.AuditEvent{Type: typ, Actor: "user:" + userID, UserID: userID, IP: ip,
				Time: time.Date(2026, 11, 25, 15, 30, 0, 0, time.UTC)}); err != nil {
				t.Fatal(err)
			}
		}
		appendEvent("login.success", "alice-id", "203.0.113.1") // 1
		appendEvent("login.success", "bob-id", "203.0.113.2")   // 2
		c.ok("users", "lock", "alice")                          // 3
		c.ok("users", "unlock", "alice")                        // 4
		appendEvent("login.failure", "alice-id", "203.0.113.3") // 5

		// No server runs: verify seals what was appended.
		out := c.ok("audit", "verify")
		last := c.auditEvents()[4]
		if last.Hash == "" || !strings.Contains(out, "intact: 5 events; last seq 5, hash "+last.Hash+"\n") {
			t.Errorf("verify: %q (last event %+v)", out, last)
		}
		if out := c.ok("audit", "verify", "--expect-seq", "5", "--expect-hash", last.Hash); !strings.Contains(out, "intact: 5 events") {
			t.Errorf("verify against the noted anchor: %q", out)
		}

		out = c.ok("audit", "list", "--user", "alice", "--limit", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "user.unlocked") || !strings.Contains(lines[0], "staff:tester") ||
			!strings.Contains(lines[1], "2026-11-26 00:30:00 JST  login.failure") || !strings.Contains(lines[1], "alice (alice-id)") ||
			!strings.Contains(lines[1], "ip 203.0.113.3") || lines[2] != "2 event(s)" {
			t.Errorf("list --user alice --limit 2:\n%s", out)
		}
		out = c.ok("audit", "list")
		if !strings.Contains(out, "5 event(s)") || !strings.Contains(out, "user - (bob-id)") {
			t.Errorf("list:\n%s", out)
		}

		// A deleted user's history stays findable by login ID.
		c.ok("users", "delete", "alice", "--yes")
		out = c.ok("audit", "list", "--user", "alice")
		if !strings.Contains(out, "5 event(s)") || !strings.Contains(out, "login.success              user:alice-id        user alice (alice-id)") ||
			strings.Contains(out, "bob-id") {
			t.Errorf("list --user of a deleted user:\n%s", out)
		}

		// Tampering with one row breaks the chain there...
		if _, err := c.store.DB().ExecContext(ctx, c.store.DB().Rebind(`UPDATE audit_events SET ip = ? WHERE seq = ?`), "10.9.9.9", 3); err != nil {
			t.Fatal(err)
		}
		r := c.run("audit", "verify")
		if r.status() != 1 || !strings.Contains(r.err.Error(), "audit chain broken at event seq 3") {
			t.Fatalf("after tampering seq 3: status %d, %v, %q", r.status(), r.err, r.stdout)
		}
		// ...and removing the first row is noticed too, at the row after it.
		if _, err := c.store.DB().ExecContext(ctx, c.store.DB().Rebind(`DELETE FROM audit_events WHERE seq = ?`), 1); err != nil {
			t.Fatal(err)
		}
		r = c.run("audit", "verify")
		if r.status() != 1 || !strings.Contains(r.err.Error(), "audit chain broken at event seq 2") {
			t.Fatalf("after deleting seq 1: status %d, %v", r.status(), r.err)
		}
	})
}

func TestServeAuditsConfigLoaded(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out, errOut lockedBuffer
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--config", c.config, "--log-format", "text"}, nil, &out, &errOut)
		}()

		var loaded *storage.AuditEvent
		for loaded == nil {
			select {
			case err := <-done:
				t.Fatalf("serve ended early: %v\n%s", err, errOut.String())
			case <-time.After(50 * time.Millisecond):
			}
			// Sealed too: the replica's sealer runs as it starts serving.
			for _, e := range c.auditEvents() {
				if e.Type == "config.loaded" && e.Hash != "" {
					loaded = &e
				}
			}
		}
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve after cancel: %v", err)
		}
		if loaded.Actor != "system" || loaded.Detail["clients"] != "web,app" || len(loaded.Detail["config_sha256"]) != 64 ||
			loaded.Detail["issuer"] != "https://id.example.com" {
			t.Errorf("config.loaded event = %+v", loaded)
		}
		if !strings.Contains(errOut.String(), "type=config.loaded") {
			t.Errorf("config.loaded not logged:\n%s", errOut.String())
		}
		if !strings.Contains(errOut.String(), "msg=\"audit checkpoint\"") {
			t.Errorf("the sealer's checkpoint not logged:\n%s", errOut.String())
		}
	})
}

// verifyAnchor runs `idp audit verify` and returns the last seq and hash it
// printed, for the operator to note elsewhere.
func (c *cli) verifyAnchor(args ...string) (seq, hash string) {
	c.t.Helper()
	out := c.ok(append([]string{"audit", "verify"}, args...)...)
	m := regexp.MustCompile(`last seq (\d+), hash ([0-9a-f]{64})\n`).FindStringSubmatch(out)
	if m == nil {
		c.t.Fatalf("no last seq/hash in %q", out)
	}
	return m[1], m[2]
}

func (c *cli) exec(query string, args ...any) {
	c.t.Helper()
	if _, err := c.store.DB().Exec(c.store.DB().Rebind(query), args...); err != nil {
		c.t.Fatalf("%s: %v", query, err)
	}
}

func (c *cli) wantVerifyFails(what, want string, args ...string) {
	c.t.Helper()
	r := c.run(append([]string{"audit", "verify"}, args...)...)
	if r.status() != 1 || !strings.Contains(r.err.Error(), want) {
		c.t.Fatalf("%s: status %d, %v; want an error containing %q\nstdout: %s", what, r.status(), r.err, want, r.stdout)
	}
}

// The Hardening issue's attack: rows were deleted and the chain rebuilt
// with the exported hash function, and verify said intact.
func TestAuditVerifyCatchesARebuiltChain(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx := context.Background()
		c.ok("audit", "verify") // a server would have checkpointed the empty trail
		for i := range 5 {
			if err := c.store.AppendAudit(ctx, &storage.AuditEvent{Type: "login.failure", UserID: "alice-id", IP: fmt.Sprint("203.0.113.", i)}); err != nil {
				t.Fatal(err)
			}
		}
		seq, hash := c.verifyAnchor()
		if seq != "5" {
			t.Fatalf("last seq %s, want 5", seq)
		}

		// Delete seq 3 and rebuild a seamless chain by every rule the
		// package exports that needs no key.
		c.exec(`DELETE FROM audit_events WHERE seq = 3`)
		prev := ""
		for i, e := range c.auditEvents() {
			e.Seq, e.Nonce, e.MAC, e.PrevHash = int64(i+1), "", "", prev
			e.Hash = storage.LegacyAuditHash(prev, e)
			c.exec(`UPDATE audit_events SET seq = ?, nonce = '', mac = '', prev_hash = ?, hash = ? WHERE nonce = ?`,
				e.Seq, e.PrevHash, e.Hash, c.auditEvents()[i].Nonce)
			prev = e.Hash
		}
		c.wantVerifyFails("rebuilt chain", "audit chain broken at event seq 5: checkpoint")
		// With the checkpoints gone too, the trail looks like one that was
		// never sealed, and verify says so (without sealing it, so that a
		// second run says it again), and the noted anchor catches it.
		c.exec(`DELETE FROM audit_checkpoints`)
		for range 2 {
			c.wantVerifyFails("rebuilt chain without checkpoints", "audit events but no checkpoint")
		}
		c.wantVerifyFails("rebuilt chain against the noted anchor", "audit chain broken at event seq 5: the expected last seq",
			"--allow-stale", "--expect-seq", seq, "--expect-hash", hash)
	})
}

func TestAuditVerifyCatchesACutTail(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx := context.Background()
		appendEvents := func(n int) {
			for range n {
				if err := c.store.AppendAudit(ctx, &storage.AuditEvent{Type: "login.success", UserID: "alice-id"}); err != nil {
					t.Fatal(err)
				}
			}
		}
		c.ok("audit", "verify")
		appendEvents(3)
		seq, hash := c.verifyAnchor()
		appendEvents(2)
		c.verifyAnchor("--expect-seq", seq, "--expect-hash", hash) // the trail grew past the anchor: fine

		// Cut the newest rows: the checkpoints of the last runs name seq 3 and 5.
		c.exec(`DELETE FROM audit_events WHERE seq > 2`)
		c.wantVerifyFails("tail cut", "audit chain broken at event seq 3: checkpoint") // the first checkpoint past the cut
		// Cut the checkpoints that name the removed rows too: the anchor
		// noted from an earlier run catches it.
		c.exec(`DELETE FROM audit_checkpoints WHERE seq > 2`)
		c.wantVerifyFails("tail and checkpoints cut", "audit chain broken at event seq 3: the expected last seq",
			"--expect-seq", seq, "--expect-hash", hash)
	})
}

// The sealer's checkpoints stopped an hour ago: the tail after them may
// have been cut, and verify says so until told no server ran.
func TestAuditVerifyFailsOnAStaleCheckpoint(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		ctx := context.Background()
		if err := c.store.AppendAudit(ctx, &storage.AuditEvent{Type: "login.success", UserID: "alice-id"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.store.SealAudit(ctx, storage.AuditSealOptions{Now: time.Now().Add(-time.Hour), Wait: true}); err != nil {
			t.Fatal(err)
		}
		c.wantVerifyFails("stale checkpoint", "the newest audit checkpoint is from")
		out := c.ok("audit", "verify", "--allow-stale")
		if !strings.Contains(out, "warning: the newest audit checkpoint is from") || !strings.Contains(out, "intact: 1 events") ||
			!strings.Contains(out, "no checkpoint from") {
			t.Fatalf("verify --allow-stale:\n%s", out)
		}
		c.ok("audit", "verify") // this run's checkpoint is fresh
	})
}
