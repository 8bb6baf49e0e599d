package main

import (
	"context"
	"errors"
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

		last := c.auditEvents()[4]
		if out := c.ok("audit", "verify"); !strings.Contains(out, "intact: 5 events; last seq 5, hash "+last.Hash) {
			t.Errorf("verify: %q", out)
		}

		out := c.ok("audit", "list", "--user", "alice", "--limit", "2")
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
		go func() { done <- run(ctx, []string{"serve", "--config", c.config}, nil, &out, &errOut) }()

		var loaded *storage.AuditEvent
		for loaded == nil {
			select {
			case err := <-done:
				t.Fatalf("serve ended early: %v\n%s", err, errOut.String())
			case <-time.After(50 * time.Millisecond):
			}
			for _, e := range c.auditEvents() {
				if e.Type == "config.loaded" {
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
	})
}
