package sqlstore

// The audit trail is appended by every login of every replica, so appending
// must not serialise them. It is therefore split in two steps:
//
//   - AppendAudit is one INSERT with no lock and no read: the database
//     assigns seq (an identity column, AUTOINCREMENT on SQLite) and the row
//     carries a random nonce and its MAC under the audit key (derived from
//     the deployment secret, never stored), computed before the insert. The
//     MAC cannot cover seq, which is not known yet; the nonce keeps equal
//     events apart. A row can be deleted, but not edited or forged.
//   - SealAudit links the rows in seq order into the keyed chain
//     (hash = AuditLink(prev hash, seq, mac)) in batches, under the audit
//     lock taken once per batch. Every replica runs it every few seconds
//     with a try-lock, so one does the work and the others skip; `idp audit
//     verify` runs it too, waiting for the lock. Once sealed, a row cannot
//     be removed or moved without breaking the link of the row after it.
//
// Gaps: a PostgreSQL sequence leaves a hole for every rolled-back insert, and
// a transaction holding seq N may commit after N+1. The sealer therefore
// stops at a hole until the row after it is older than auditGapGrace (by
// the store clock's inserted_at), then links past it. The chain records the
// hole implicitly (the row after it links to the row before it), so verify
// tells a hole that existed at sealing (reported, not an error) from a
// sealed row deleted later (an error). A row that commits after its hole
// was sealed over is an "orphan": MAC-checked and reported, never chained.
//
// Truncation: deleting the newest rows leaves a valid shorter chain, so the
// sealer writes a checkpoint (time, last sealed seq, chain hash, MACed and
// chained to the previous checkpoint) at least every checkpoint interval,
// even with no new events, and logs it (logs leave the machine). Verify
// fails when a checkpoint names a row that is not in the chain, when the
// newest checkpoint is older than the interval allows, or when an anchor
// noted elsewhere (--expect-seq/--expect-hash) does not match.
//
// On SQLite the write lock is database-wide anyway; the split still turns
// five statements per append into one.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

const (
	// auditGapGrace is how long the sealer waits for a missing seq before
	// linking past it; an insert is a single short statement, so a row
	// missing for this long was rolled back (or deleted).
	auditGapGrace = time.Minute
	// auditSealBatch bounds the rows one sealing transaction links.
	auditSealBatch = 500
)

type auditRow struct {
	Seq        int64  `db:"seq"`
	Time       dbTime `db:"time"`
	Type       string `db:"type"`
	Actor      string `db:"actor"`
	UserID     string `db:"user_id"`
	IP         string `db:"ip"`
	UserAgent  string `db:"user_agent"`
	Detail     string `db:"detail"`
	Nonce      string `db:"nonce"`
	MAC        string `db:"mac"`
	InsertedAt dbTime `db:"inserted_at"`
	PrevHash   string `db:"prev_hash"`
	Hash       string `db:"hash"`
}

const auditColumns = `seq, time, type, actor, user_id, ip, user_agent, detail, nonce, mac, inserted_at, prev_hash, hash`

// WithAuditKey sets the key (storage.AuditKey of the deployment secret)
// that AppendAudit and SealAudit MAC with; without one they fail. It
// returns s.
func (s *Store) WithAuditKey(key []byte) *Store {
	s.auditKey = append([]byte(nil), key...)
	return s
}

// AppendAudit stores e with its MAC in one INSERT and sets e.Seq, e.Nonce
// and e.MAC (and e.Time to now when zero; the time is kept at the stored
// microsecond precision so the MAC survives the round trip). e.PrevHash and
// e.Hash are cleared: the row is linked later by SealAudit.
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
	if len(s.auditKey) == 0 {
		return fmt.Errorf("append audit: %w", storage.ErrNoAuditKey)
	}
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	e.Time = e.Time.UTC().Truncate(time.Microsecond)
	detail, err := json.Marshal(e.Detail)
	if err != nil {
		return fmt.Errorf("append audit: encode detail: %w", err)
	}
	if e.Detail == nil {
		detail = []byte("{}")
	}
	e.Nonce = rand.Text() // 128 random bits
	e.MAC = storage.AuditMAC(s.auditKey, *e)
	e.PrevHash, e.Hash = "", ""
	err = s.queryRowx(ctx, s.q(`INSERT INTO audit_events (time, type, actor, user_id, ip, user_agent,
		detail, nonce, mac, inserted_at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '') RETURNING seq`),
		s.flavor.timeArg(e.Time), e.Type, e.Actor, e.UserID, e.IP, e.UserAgent, string(detail),
		e.Nonce, e.MAC, s.flavor.timeArg(s.now())).Scan(&e.Seq)
	return wrap("append audit", err)
}

// ListAudit returns up to limit events after afterSeq in Seq order; limit
// <= 0 means all.
func (s *Store) ListAudit(ctx context.Context, afterSeq int64, limit int) ([]storage.AuditEvent, error) {
	query, args := `SELECT `+auditColumns+` FROM audit_events WHERE seq > ? ORDER BY seq`, []any{afterSeq}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	var rows []auditRow
	if err := s.sel(ctx, &rows, s.q(query), args...); err != nil {
		return nil, wrap("list audit", err)
	}
	out := make([]storage.AuditEvent, len(rows))
	for i, r := range rows {
		e, err := r.event()
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out[i] = e
	}
	return out, nil
}

func (r auditRow) event() (storage.AuditEvent, error) {
	var detail map[string]string
	if err := json.Unmarshal([]byte(r.Detail), &detail); err != nil {
		return storage.AuditEvent{}, fmt.Errorf("seq %d: decode detail: %w", r.Seq, err)
	}
	if len(detail) == 0 {
		detail = nil
	}
	return storage.AuditEvent{
		Seq: r.Seq, Time: r.Time.Time, Type: r.Type, Actor: r.Actor, UserID: r.UserID, IP: r.IP,
		UserAgent: r.UserAgent, Detail: detail, Nonce: r.Nonce, MAC: r.MAC, PrevHash: r.PrevHash, Hash: r.Hash,
	}, nil
}

// SealAudit links the unsealed rows into the chain, a batch per
// transaction, and writes a checkpoint in the last one when it is due.
func (s *Store) SealAudit(ctx context.Context, opts storage.AuditSealOptions) (*storage.AuditCheckpoint, error) {
	if len(s.auditKey) == 0 {
		return nil, fmt.Errorf("seal audit: %w", storage.ErrNoAuditKey)
	}
	now := opts.Now.UTC().Truncate(time.Microsecond)
	var written *storage.AuditCheckpoint
	for {
		var (
			cp   *storage.AuditCheckpoint
			end  storage.AuditAnchor
			n    int
			more bool
		)
		err := s.inTx(ctx, "seal audit", func(tx *sqlx.Tx) error {
			got, err := s.lockAuditSealer(ctx, tx, opts.Wait)
			if err != nil || !got {
				return err
			}
			if end, n, err = s.sealBatch(ctx, tx, now); err != nil {
				return err
			}
			more = n == auditSealBatch
			cp, err = s.checkpoint(ctx, tx, now, end, opts.CheckpointEvery, !more)
			return err
		})
		if err != nil {
			return nil, err
		}
		// Logged because logs leave the machine: every seal and checkpoint
		// there is an anchor `idp audit verify --expect-seq/--expect-hash`
		// can hold the database to.
		if n > 0 {
			s.logger.InfoContext(ctx, "audit sealed", "seq", end.Seq, "hash", end.Hash, "rows", n)
		}
		if cp != nil {
			s.logger.InfoContext(ctx, "audit checkpoint", "seq", cp.Seq, "hash", cp.Hash, "at", cp.Time, "checkpoint", cp.ID)
			written = cp
		}
		if !more {
			return written, nil
		}
	}
}

// lockAuditSealer takes the audit lock for tx, or reports that another
// sealer holds it. On SQLite the immediate transaction is the lock.
func (s *Store) lockAuditSealer(ctx context.Context, tx *sqlx.Tx, wait bool) (bool, error) {
	if wait || s.flavor != flavorPostgres {
		return true, s.lockTx(ctx, tx, lockAudit)
	}
	var got bool
	err := tx.GetContext(ctx, &got, `SELECT pg_try_advisory_xact_lock(hashtext(coalesce(current_schema(), '')), $1)`, int32(lockAudit))
	if err != nil {
		return false, fmt.Errorf("try %s lock: %w", lockAudit, err)
	}
	return got, nil
}

// sealBatch links up to auditSealBatch rows after the last sealed one and
// returns the new end of the chain and how many rows it linked.
func (s *Store) sealBatch(ctx context.Context, tx *sqlx.Tx, now time.Time) (storage.AuditAnchor, int, error) {
	var last storage.AuditAnchor
	err := tx.QueryRowxContext(ctx, `SELECT seq, hash FROM audit_events WHERE hash <> '' ORDER BY seq DESC LIMIT 1`).
		Scan(&last.Seq, &last.Hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return last, 0, wrap("seal audit: read chain end", err)
	}
	var rows []auditRow
	err = tx.SelectContext(ctx, &rows, s.q(`SELECT `+auditColumns+` FROM audit_events
		WHERE hash = '' AND seq > ? ORDER BY seq LIMIT ?`), last.Seq, auditSealBatch)
	if err != nil {
		return last, 0, wrap("seal audit: read unsealed", err)
	}
	n := 0
	for _, r := range rows {
		if r.Seq != last.Seq+1 && r.InsertedAt.After(now.Add(-auditGapGrace)) {
			// A hole that may still fill: an insert holding that seq may
			// not have committed yet.
			break
		}
		e, err := r.event()
		if err != nil {
			return last, n, fmt.Errorf("seal audit: %w", err)
		}
		if storage.AuditMAC(s.auditKey, e) != e.MAC {
			// Sealed as found, so that it keeps its place and verify names
			// it; refusing would stall the chain for good.
			s.logger.ErrorContext(ctx, "audit row fails its MAC: forged or altered before sealing", "seq", r.Seq)
		}
		if r.Seq != last.Seq+1 {
			s.logger.WarnContext(ctx, "audit seq gap sealed over: a rolled-back insert, or a row deleted before sealing",
				"from", last.Seq+1, "to", r.Seq-1)
		}
		hash := storage.AuditLink(s.auditKey, last.Hash, r.Seq, r.MAC)
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?`),
			last.Hash, hash, r.Seq); err != nil {
			return last, n, wrap("seal audit: link", err)
		}
		last = storage.AuditAnchor{Seq: r.Seq, Hash: hash}
		n++
	}
	return last, n, nil
}

// checkpoint writes a checkpoint of the chain end when there is none yet,
// or when final and the newest is at least every old (every 0: always).
func (s *Store) checkpoint(ctx context.Context, tx *sqlx.Tx, now time.Time, end storage.AuditAnchor, every time.Duration, final bool) (*storage.AuditCheckpoint, error) {
	var prev struct {
		Time dbTime `db:"time"`
		Seq  int64  `db:"seq"`
		MAC  string `db:"mac"`
	}
	err := tx.GetContext(ctx, &prev, `SELECT time, seq, mac FROM audit_checkpoints ORDER BY id DESC LIMIT 1`)
	none := errors.Is(err, sql.ErrNoRows)
	if err != nil && !none {
		return nil, wrap("seal audit: read checkpoint", err)
	}
	if end.Seq < prev.Seq {
		// The chain stays usable (verify names the cut), but this is an
		// incident, and the log is where it is noticed first.
		s.logger.ErrorContext(ctx, "audit chain ends before its newest checkpoint: sealed events were removed",
			"seq", end.Seq, "checkpoint_seq", prev.Seq)
	}
	if !none && (!final || now.Sub(prev.Time.Time) < every) {
		return nil, nil
	}
	cp := &storage.AuditCheckpoint{Time: now, Seq: end.Seq, Hash: end.Hash}
	cp.MAC = storage.AuditCheckpointMAC(s.auditKey, prev.MAC, *cp)
	err = tx.QueryRowxContext(ctx, s.q(`INSERT INTO audit_checkpoints (time, seq, hash, mac) VALUES (?, ?, ?, ?) RETURNING id`),
		s.flavor.timeArg(cp.Time), cp.Seq, cp.Hash, cp.MAC).Scan(&cp.ID)
	if err != nil {
		return nil, wrap("seal audit: write checkpoint", err)
	}
	return cp, nil
}

// ListAuditCheckpoints returns every checkpoint in the order written.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]storage.AuditCheckpoint, error) {
	var rows []struct {
		ID   int64  `db:"id"`
		Time dbTime `db:"time"`
		Seq  int64  `db:"seq"`
		Hash string `db:"hash"`
		MAC  string `db:"mac"`
	}
	if err := s.sel(ctx, &rows, `SELECT id, time, seq, hash, mac FROM audit_checkpoints ORDER BY id`); err != nil {
		return nil, wrap("list audit checkpoints", err)
	}
	out := make([]storage.AuditCheckpoint, len(rows))
	for i, r := range rows {
		out[i] = storage.AuditCheckpoint{ID: r.ID, Time: r.Time.Time, Seq: r.Seq, Hash: r.Hash, MAC: r.MAC}
	}
	return out, nil
}
