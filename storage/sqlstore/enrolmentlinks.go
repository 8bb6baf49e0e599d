package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

// EnrolmentLinkRetention is how long a link's row outlives its expiry, so
// that opening an old link still says "expired" rather than "unknown".
const EnrolmentLinkRetention = 30 * 24 * time.Hour

type enrolmentLinkRow struct {
	ID           string `db:"id"`
	UserID       string `db:"user_id"`
	IssuedBy     string `db:"issued_by"`
	CreatedAt    dbTime `db:"created_at"`
	ExpiresAt    dbTime `db:"expires_at"`
	UsedAt       dbTime `db:"used_at"`
	SupersededAt dbTime `db:"superseded_at"`
}

// CreateEnrolmentLink supersedes the user's live link before inserting the
// new one; the partial unique index on live links turns a concurrent
// issue into ErrConflict instead of two live links.
func (s *Store) CreateEnrolmentLink(ctx context.Context, l *storage.EnrolmentLink) error {
	if l.CreatedAt.IsZero() {
		l.CreatedAt = s.now().UTC()
	}
	err := s.inTx(ctx, "create enrolment link", func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE enrolment_links SET superseded_at = ?
			WHERE user_id = ? AND used_at IS NULL AND superseded_at IS NULL`), s.flavor.timeArg(l.CreatedAt), l.UserID); err != nil {
			return wrap("create enrolment link: supersede", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO enrolment_links (id, user_id, issued_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?)`), l.ID, l.UserID, l.IssuedBy, s.flavor.timeArg(l.CreatedAt), s.flavor.timeArg(l.ExpiresAt))
		return wrap("create enrolment link", err)
	})
	if errors.Is(err, storage.ErrAlreadyExists) {
		// The ID is 256 random bits: the clash is the live-link index.
		return fmt.Errorf("create enrolment link: another link was issued at the same time: %w", storage.ErrConflict)
	}
	return err
}

func (s *Store) EnrolmentLinkByID(ctx context.Context, id string) (*storage.EnrolmentLink, error) {
	var r enrolmentLinkRow
	if err := s.get(ctx, &r, s.q(`SELECT id, user_id, issued_by, created_at, expires_at, used_at, superseded_at
		FROM enrolment_links WHERE id = ?`), id); err != nil {
		return nil, wrap("enrolment link by id", err)
	}
	return &storage.EnrolmentLink{
		ID: r.ID, UserID: r.UserID, IssuedBy: r.IssuedBy, CreatedAt: r.CreatedAt.Time, ExpiresAt: r.ExpiresAt.Time,
		UsedAt: r.UsedAt.ptr(), SupersededAt: r.SupersededAt.ptr(),
	}, nil
}

// UseEnrolmentLink is one guarded UPDATE: the row changes only while
// live, so the database picks the single winner of concurrent openings.
func (s *Store) UseEnrolmentLink(ctx context.Context, id string, now time.Time) error {
	t := s.flavor.timeArg(now)
	res, err := s.exec(ctx, s.q(`UPDATE enrolment_links SET used_at = ?
		WHERE id = ? AND used_at IS NULL AND superseded_at IS NULL AND expires_at > ?`), t, id, t)
	if err := mustAffect("use enrolment link", res, err); !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if _, err := s.EnrolmentLinkByID(ctx, id); err != nil {
		return fmt.Errorf("use enrolment link: %w", err)
	}
	return fmt.Errorf("use enrolment link: used, superseded or expired: %w", storage.ErrConflict)
}
