package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/comstockloan/idp/storage"
)

type credentialRow struct {
	ID              []byte     `db:"id"`
	UserID          string     `db:"user_id"`
	PublicKey       []byte     `db:"public_key"`
	AttestationType string     `db:"attestation_type"`
	AAGUID          []byte     `db:"aaguid"`
	SignCount       int64      `db:"sign_count"`
	Transports      stringList `db:"transports"`
	UserPresent     bool       `db:"user_present"`
	UserVerified    bool       `db:"user_verified"`
	BackupEligible  bool       `db:"backup_eligible"`
	BackupState     bool       `db:"backup_state"`
	CloneWarning    bool       `db:"clone_warning"`
	Attachment      string     `db:"attachment"`
	Name            string     `db:"name"`
	CreatedAt       dbTime     `db:"created_at"`
	LastUsedAt      dbTime     `db:"last_used_at"`
}

const credentialColumns = `id, user_id, public_key, attestation_type, aaguid, sign_count, transports, user_present,
	user_verified, backup_eligible, backup_state, clone_warning, attachment, name, created_at, last_used_at`

func (r credentialRow) credential() storage.Credential {
	return storage.Credential{
		ID: r.ID, UserID: r.UserID, PublicKey: r.PublicKey, AttestationType: r.AttestationType, AAGUID: r.AAGUID,
		SignCount: uint32(r.SignCount), Transports: r.Transports, UserPresent: r.UserPresent,
		UserVerified: r.UserVerified, BackupEligible: r.BackupEligible, BackupState: r.BackupState,
		CloneWarning: r.CloneWarning, Attachment: r.Attachment, Name: r.Name, CreatedAt: r.CreatedAt.Time,
		LastUsedAt: r.LastUsedAt.ptr(),
	}
}

// CreateCredential stores a passkey. With onlyIfFirst the user's row is
// locked first (FOR UPDATE on PostgreSQL; the immediate transaction on
// SQLite), so two concurrent first enrolments cannot both see "no passkey".
func (s *Store) CreateCredential(ctx context.Context, c *storage.Credential, onlyIfFirst bool) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now().UTC()
	}
	return s.inTx(ctx, "create credential", func(tx *sqlx.Tx) error {
		if onlyIfFirst {
			lock := `SELECT id FROM users WHERE id = ?`
			if s.flavor == flavorPostgres {
				lock += ` FOR UPDATE`
			}
			var id string
			if err := tx.GetContext(ctx, &id, s.q(lock), c.UserID); err != nil {
				return wrap("create credential: lock user", err)
			}
			var n int
			if err := tx.GetContext(ctx, &n, s.q(`SELECT COUNT(*) FROM credentials WHERE user_id = ?`), c.UserID); err != nil {
				return wrap("create credential: count", err)
			}
			if n > 0 {
				return fmt.Errorf("create credential: user already has %d passkey(s): %w", n, storage.ErrConflict)
			}
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO credentials (`+credentialColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.UserID, c.PublicKey, c.AttestationType, c.AAGUID, int64(c.SignCount), listArg(c.Transports),
			c.UserPresent, c.UserVerified, c.BackupEligible, c.BackupState, c.CloneWarning, c.Attachment, c.Name,
			s.flavor.timeArg(c.CreatedAt), s.flavor.timePtrArg(c.LastUsedAt))
		return wrap("create credential", err)
	})
}

func (s *Store) CredentialByID(ctx context.Context, id []byte) (*storage.Credential, error) {
	var r credentialRow
	if err := s.get(ctx, &r, s.q(`SELECT `+credentialColumns+` FROM credentials WHERE id = ?`), id); err != nil {
		return nil, wrap("credential by id", err)
	}
	c := r.credential()
	return &c, nil
}

// credentialOwnerColumns name the credential's columns with a "c." prefix
// and the user's as "u.…", which sqlx maps onto credentialOwnerRow.User.
var credentialOwnerColumns = func() string {
	var cols []string
	for _, c := range strings.Split(credentialColumns, ",") {
		cols = append(cols, "c."+strings.TrimSpace(c))
	}
	for _, c := range strings.Split(userColumns, ", ") {
		cols = append(cols, "u."+c+` AS "u.`+c+`"`)
	}
	return strings.Join(cols, ", ")
}()

type credentialOwnerRow struct {
	credentialRow
	User userRow `db:"u"`
}

// CredentialOwner reads the owner's passkeys (the asked one among them)
// with the owner's row repeated on each: one statement, one snapshot, on
// the credentials' primary key and user index.
func (s *Store) CredentialOwner(ctx context.Context, id []byte) (*storage.CredentialOwner, error) {
	var rows []credentialOwnerRow
	if err := s.sel(ctx, &rows, s.q(`SELECT `+credentialOwnerColumns+`
		FROM credentials c JOIN users u ON u.id = c.user_id
		WHERE c.user_id = (SELECT user_id FROM credentials WHERE id = ?)
		ORDER BY c.created_at, c.id`), id); err != nil {
		return nil, wrap("credential owner", err)
	}
	out := &storage.CredentialOwner{Credentials: make([]storage.Credential, len(rows))}
	found := false
	for i, r := range rows {
		out.Credentials[i] = r.credential()
		if bytes.Equal(r.ID, id) {
			out.Credential, out.User, found = out.Credentials[i], r.User.user(), true
		}
	}
	if !found {
		return nil, fmt.Errorf("credential owner: %w", storage.ErrNotFound)
	}
	return out, nil
}

// CredentialsByUser returns the user's passkeys, oldest first.
func (s *Store) CredentialsByUser(ctx context.Context, userID string) ([]storage.Credential, error) {
	var rows []credentialRow
	if err := s.sel(ctx, &rows, s.q(`SELECT `+credentialColumns+` FROM credentials WHERE user_id = ?
		ORDER BY created_at, id`), userID); err != nil {
		return nil, wrap("credentials by user", err)
	}
	out := make([]storage.Credential, len(rows))
	for i, r := range rows {
		out[i] = r.credential()
	}
	return out, nil
}

func (s *Store) CountCredentials(ctx context.Context, userID string) (int, error) {
	var n int
	if err := s.get(ctx, &n, s.q(`SELECT COUNT(*) FROM credentials WHERE user_id = ?`), userID); err != nil {
		return 0, wrap("count credentials", err)
	}
	return n, nil
}

func (s *Store) UpdateCredentialUse(ctx context.Context, id []byte, use storage.CredentialUse) error {
	res, err := s.exec(ctx, s.q(`UPDATE credentials SET sign_count = ?, backup_state = ?, user_verified = ?,
		clone_warning = ?, last_used_at = ? WHERE id = ?`),
		int64(use.SignCount), use.BackupState, use.UserVerified, use.CloneWarning, s.flavor.timeArg(use.UsedAt), id)
	return mustAffect("update credential use", res, err)
}

// RenameCredential renames a passkey of userID; ErrNotFound if they do not
// own it.
func (s *Store) RenameCredential(ctx context.Context, userID string, id []byte, name string) error {
	res, err := s.exec(ctx, s.q(`UPDATE credentials SET name = ? WHERE id = ? AND user_id = ?`), name, id, userID)
	return mustAffect("rename credential", res, err)
}

func (s *Store) DeleteCredential(ctx context.Context, userID string, id []byte) error {
	res, err := s.exec(ctx, s.q(`DELETE FROM credentials WHERE id = ? AND user_id = ?`), id, userID)
	return mustAffect("delete credential", res, err)
}

func (s *Store) DeleteUserCredentials(ctx context.Context, userID string) (int, error) {
	res, err := s.exec(ctx, s.q(`DELETE FROM credentials WHERE user_id = ?`), userID)
	if err != nil {
		return 0, wrap("delete user credentials", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete user credentials: rows affected: %w", err)
	}
	return int(n), nil
}
