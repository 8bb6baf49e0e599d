package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type auditRow struct {
	Seq       int64  `db:"seq"`
	Time      dbTime `db:"time"`
	Type      string `db:"type"`
	Actor     string `db:"actor"`
	UserID    string `db:"user_id"`
	IP        string `db:"ip"`
	UserAgent string `db:"user_agent"`
	Detail    string `db:"detail"`
	PrevHash  string `db:"prev_hash"`
	Hash      string `db:"hash"`
}

// AppendAudit chains e onto the last event under the store-wide audit lock:
// it sets e.Seq, e.PrevHash and e.Hash (and e.Time to now when zero; the
// time is kept at the stored microsecond precision so the hash survives the
// round trip).
func (s *Store) AppendAudit(ctx context.Context, e *storage.AuditEvent) error {
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
	return s.inTx(ctx, "append audit", func(tx *sqlx.Tx) error {
		if err := s.lockTx(ctx, tx, lockAudit); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		var last struct {
			Seq  int64  `db:"seq"`
			Hash string `db:"hash"`
		}
		err := tx.GetContext(ctx, &last, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return wrap("append audit: read last", err)
		}
		e.Seq = last.Seq + 1
		e.PrevHash = last.Hash
		e.Hash = storage.AuditHash(e.PrevHash, *e)
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO audit_events (seq, time, type, actor, user_id, ip, user_agent,
			detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			e.Seq, s.flavor.timeArg(e.Time), e.Type, e.Actor, e.UserID, e.IP, e.UserAgent, string(detail),
			e.PrevHash, e.Hash)
		return wrap("append audit", err)
	})
}

// ListAudit returns up to limit events after afterSeq in Seq order; limit
// <= 0 means all.
func (s *Store) ListAudit(ctx context.Context, afterSeq int64, limit int) ([]storage.AuditEvent, error) {
	query, args := `SELECT seq, time, type, actor, user_id, ip, user_agent, detail, prev_hash, hash
		FROM audit_events WHERE seq > ? ORDER BY seq`, []any{afterSeq}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	var rows []auditRow
	if err := s.db.SelectContext(ctx, &rows, s.q(query), args...); err != nil {
		return nil, wrap("list audit", err)
	}
	out := make([]storage.AuditEvent, len(rows))
	for i, r := range rows {
		var detail map[string]string
		if err := json.Unmarshal([]byte(r.Detail), &detail); err != nil {
			return nil, fmt.Errorf("list audit: seq %d: decode detail: %w", r.Seq, err)
		}
		if len(detail) == 0 {
			detail = nil
		}
		out[i] = storage.AuditEvent{
			Seq: r.Seq, Time: r.Time.Time, Type: r.Type, Actor: r.Actor, UserID: r.UserID, IP: r.IP,
			UserAgent: r.UserAgent, Detail: detail, PrevHash: r.PrevHash, Hash: r.Hash,
		}
	}
	return out, nil
}
