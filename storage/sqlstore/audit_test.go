package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

func appendN(t *testing.T, s *sqlstore.Store, n int) {
	t.Helper()
	for i := range n {
		if err := s.AppendAudit(t.Context(), &storage.AuditEvent{Type: "login.success", UserID: fmt.Sprint("u", i)}); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func seal(t *testing.T, s *sqlstore.Store, now time.Time) *storage.AuditCheckpoint {
	t.Helper()
	cp, err := s.SealAudit(t.Context(), storage.AuditSealOptions{Now: now, Wait: true})
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return cp
}

func exec(t *testing.T, s *sqlstore.Store, query string, args ...any) {
	t.Helper()
	if _, err := s.DB().Exec(s.DB().Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func verify(s *sqlstore.Store, expect ...storage.AuditAnchor) (storage.AuditReport, error) {
	return storage.VerifyAudit(context.Background(), s, storagetest.AuditKey(), expect...)
}

func wantBreakAt(t *testing.T, what string, err error, seq int64) {
	t.Helper()
	var b *storage.AuditBreak
	if !errors.As(err, &b) || b.Seq != seq {
		t.Fatalf("%s: got %v, want a break at seq %d", what, err, seq)
	}
}

// What an intruder with SQL access (but not the secret) does to the rows is
// caught at the row they touched.
func TestAuditTamperingInDatabaseIsDetected(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		for name, tc := range map[string]struct {
			tamper func(s *sqlstore.Store)
			seq    int64
		}{
			"edit a row": {func(s *sqlstore.Store) {
				exec(t, s, `UPDATE audit_events SET user_id = ? WHERE seq = ?`, "someone-else", 2)
			}, 2},
			"delete a middle row and relink the next": {func(s *sqlstore.Store) {
				exec(t, s, `DELETE FROM audit_events WHERE seq = 2`)
				exec(t, s, `UPDATE audit_events SET prev_hash = (SELECT hash FROM audit_events WHERE seq = 1) WHERE seq = 3`)
			}, 3},
			"delete the newest rows": {func(s *sqlstore.Store) {
				exec(t, s, `DELETE FROM audit_events WHERE seq >= 3`)
			}, 4}, // the checkpoint names seq 4
			"delete the newest rows and checkpoints": {func(s *sqlstore.Store) {
				exec(t, s, `DELETE FROM audit_events WHERE seq >= 3`)
				exec(t, s, `DELETE FROM audit_checkpoints`)
			}, 2}, // sealed rows without a checkpoint
			"forge a row": {func(s *sqlstore.Store) {
				exec(t, s, `INSERT INTO audit_events (time, type, actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, prev_hash, hash)
					SELECT time, 'user.unlocked', actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, '', '' FROM audit_events WHERE seq = 1`)
			}, 5}, // unsealed: only its MAC protects it, and it fails
		} {
			t.Run(name, func(t *testing.T) {
				s := storagetest.New(t, flavor)
				appendN(t, s, 4)
				seal(t, s, time.Now())
				if _, err := verify(s); err != nil {
					t.Fatalf("before tampering: %v", err)
				}
				tc.tamper(s)
				_, err := verify(s)
				wantBreakAt(t, "after tampering", err, tc.seq)
			})
		}
	})
}

// A seq that is missing when the sealer reaches it is waited for, then
// linked past; the chain then tells that gap from a row deleted later.
func TestAuditSealerHandlesGaps(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		ctx := t.Context()
		now := time.Now()
		s := storagetest.New(t, flavor).WithClock(func() time.Time { return now })
		appendN(t, s, 2)
		if flavor == "postgres" {
			// A rolled-back insert leaves its seq unused (3).
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO audit_events (time, type, actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, prev_hash, hash)
				VALUES (now(), 'x', '', '', '', '', '{}', '', '', now(), '', '')`); err != nil {
				t.Fatal(err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
		} else {
			// SQLite reuses a rolled-back seq; a row deleted before sealing
			// leaves the same hole.
			appendN(t, s, 1)
			exec(t, s, `DELETE FROM audit_events WHERE seq = 3`)
		}
		appendN(t, s, 2) // 4, 5

		seal(t, s, now)
		rep, err := verify(s)
		if err != nil || rep.Last.Seq != 2 || rep.Unsealed != 2 {
			t.Fatalf("within the grace time the sealer waits at the hole: %+v, %v", rep, err)
		}
		seal(t, s, now.Add(2*time.Minute))
		rep, err = verify(s)
		if err != nil || rep.Last.Seq != 5 || rep.Unsealed != 0 || len(rep.SealGaps) != 1 || rep.SealGaps[0] != (storage.SeqRange{From: 3, To: 3}) {
			t.Fatalf("after the grace time: %+v, %v", rep, err)
		}

		exec(t, s, `DELETE FROM audit_events WHERE seq = 4`)
		_, err = verify(s)
		wantBreakAt(t, "sealed row deleted next to a sealed gap", err, 5)
	})
}

// PostgreSQL hands out seqs before commit: a row that commits after a later
// one is waited for, not skipped, and sealed in its place.
func TestAuditSealerWaitsForInFlightInsert(t *testing.T) {
	// PostgreSQL only: SQLite assigns seqs in commit order, one writer at a time.
	ctx := t.Context()
	s := storagetest.New(t, "postgres")
	key := storagetest.AuditKey()
	slow := storage.AuditEvent{Time: time.Now().UTC().Truncate(time.Microsecond), Type: "slow", Nonce: "slow-nonce"}
	slow.MAC = storage.AuditMAC(key, slow)
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO audit_events (time, type, actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, prev_hash, hash)
			VALUES ($1, $2, '', '', '', '', '{}', $3, $4, now(), '', '')`, slow.Time, slow.Type, slow.Nonce, slow.MAC); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1) // seq 2 commits first
	seal(t, s, time.Now())
	if rep, err := verify(s); err != nil || rep.Last.Seq != 0 || rep.Unsealed != 1 {
		t.Fatalf("sealed past an uncommitted seq: %+v, %v", rep, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	seal(t, s, time.Now())
	rep, err := verify(s)
	if err != nil || rep.Last.Seq != 2 || len(rep.SealGaps) != 0 || rep.Unsealed != 0 {
		t.Fatalf("after the slow commit: %+v, %v", rep, err)
	}
}

// Appending takes no store-wide lock: it succeeds while another
// transaction holds the sealer's lock, and a try-lock sealer steps aside.
func TestAuditAppendTakesNoLock(t *testing.T) {
	// PostgreSQL only: SQLite has one writer at a time; there the gain is one
	// statement instead of five.
	s := storagetest.New(t, "postgres")
	tx, err := s.DB().BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// The lock SealAudit takes (lockAudit = 3 in query.go).
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')), 3)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for i := range 3 {
		if err := s.AppendAudit(ctx, &storage.AuditEvent{Type: "login.success", UserID: fmt.Sprint("u", i)}); err != nil {
			t.Fatalf("append while the audit lock is held: %v", err)
		}
	}
	if cp, err := s.SealAudit(ctx, storage.AuditSealOptions{Now: time.Now()}); err != nil || cp != nil {
		t.Fatalf("try-lock sealer while the lock is held: %+v, %v; want nothing done", cp, err)
	}
	// The lock is real: a waiting sealer does wait.
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := s.SealAudit(short, storage.AuditSealOptions{Now: time.Now(), Wait: true}); err == nil {
		t.Fatal("waiting sealer got the lock another transaction holds")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	seal(t, s, time.Now())
	if rep, err := verify(s); err != nil || rep.Last.Seq != 3 {
		t.Fatalf("after the lock is released: %+v, %v", rep, err)
	}
}

// A store without the key appends nothing: an unkeyed row would fail
// verify for ever.
func TestAuditWithoutKeyRefuses(t *testing.T) {
	dsn := storagetest.DSN(t, "sqlite")
	s, err := sqlstore.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AppendAudit(t.Context(), &storage.AuditEvent{Type: "x"}); !errors.Is(err, storage.ErrNoAuditKey) {
		t.Fatalf("append without key: %v", err)
	}
	if _, err := s.SealAudit(t.Context(), storage.AuditSealOptions{Now: time.Now()}); !errors.Is(err, storage.ErrNoAuditKey) {
		t.Fatalf("seal without key: %v", err)
	}
}

// Rows of the unkeyed chain survive migration 0006: verify checks them by
// the old rule and the first checkpoint pins them; new rows continue the seq.
func TestAuditMigrationKeepsUnkeyedRows(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		dsn := storagetest.EmptyDSN(t, flavor)
		s := storagetest.Open(t, dsn)
		if err := s.MigrateUpTo(t.Context(), 4); err != nil {
			t.Fatal(err)
		}
		prev := ""
		for i := range 3 {
			e := storage.AuditEvent{Seq: int64(i + 1), Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), Type: "login.success",
				UserID: "u1", Detail: map[string]string{"n": fmt.Sprint(i)}}
			e.PrevHash, e.Hash = prev, storage.LegacyAuditHash(prev, e)
			prev = e.Hash
			exec(t, s, `INSERT INTO audit_events (seq, time, type, actor, user_id, ip, user_agent, detail, prev_hash, hash)
				VALUES (?, ?, ?, '', ?, '', '', ?, ?, ?)`, e.Seq, timeArg(flavor, e.Time), e.Type, e.UserID, fmt.Sprintf(`{"n":"%d"}`, i), e.PrevHash, e.Hash)
		}
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		rep, err := verify(s)
		if err != nil || rep.Legacy != 3 || rep.Checkpoints != 0 {
			t.Fatalf("migrated, never sealed: %+v, %v", rep, err)
		}
		appendN(t, s, 2)
		cp := seal(t, s, time.Now())
		if cp == nil || cp.Seq != 5 {
			t.Fatalf("first checkpoint %+v, want seq 5", cp)
		}
		rep, err = verify(s)
		if err != nil || rep.Legacy != 3 || rep.Events != 5 || rep.Last.Seq != 5 {
			t.Fatalf("after keyed rows: %+v, %v", rep, err)
		}
		// An unkeyed row is anyone's to recompute, but the keyed link
		// after the last one pins the whole unkeyed prefix.
		exec(t, s, `DELETE FROM audit_events WHERE seq = 3`)
		_, err = verify(s)
		wantBreakAt(t, "last unkeyed row deleted", err, 4)
	})
}

func timeArg(flavor string, t time.Time) any {
	if flavor == "sqlite" {
		return t.UnixMicro()
	}
	return t
}

// BenchmarkAppendAuditParallel appends from many goroutines at once, as
// concurrent logins do.
func BenchmarkAppendAuditParallel(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			s := storagetest.New(b, flavor)
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.AppendAudit(context.Background(), &storage.AuditEvent{Type: "login.success", UserID: "u1", IP: "203.0.113.7"}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
