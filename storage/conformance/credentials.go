package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func credential(id, userID string, n time.Time) *storage.Credential {
	return &storage.Credential{
		ID: []byte(id), UserID: userID, PublicKey: []byte("cose-" + id), AttestationType: "none",
		AAGUID: []byte{0xad, 0xce, 0x00, 0x02}, SignCount: 7, Transports: []string{"internal", "hybrid"},
		UserPresent: true, UserVerified: true, BackupEligible: true, BackupState: true,
		Attachment: "platform", Name: "iPhone", CreatedAt: n,
	}
}

func testCredentials(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")

	c1 := credential("cred-1", "u1", n)
	must(t, "create first", s.CreateCredential(ctx, c1, true))
	got, err := s.CredentialByID(ctx, c1.ID)
	must(t, "by id", err)
	wantEqual(t, "credential", *got, *c1)

	wantErr(t, "second passkey with onlyIfFirst", s.CreateCredential(ctx, credential("cred-2", "u1", n), true), storage.ErrConflict)
	c2 := credential("cred-2", "u1", n.Add(time.Second))
	c2.Transports, c2.BackupEligible, c2.BackupState, c2.Attachment = nil, false, false, "cross-platform"
	c2.SignCount = 1<<32 - 1
	must(t, "second passkey", s.CreateCredential(ctx, c2, false))
	wantErr(t, "same credential for another user", s.CreateCredential(ctx, credential("cred-1", "u2", n), false), storage.ErrAlreadyExists)
	wantErr(t, "same credential for another user, first", s.CreateCredential(ctx, credential("cred-1", "u2", n), true), storage.ErrAlreadyExists)
	wantErr(t, "credential of a missing user", s.CreateCredential(ctx, credential("cred-x", "nobody", n), false), storage.ErrNotFound)

	list, err := s.CredentialsByUser(ctx, "u1")
	must(t, "by user", err)
	wantEqual(t, "credentials by user", list, []storage.Credential{*c1, *c2})
	if c, err := s.CountCredentials(ctx, "u1"); err != nil || c != 2 {
		t.Fatalf("count: %d, %v", c, err)
	}
	if c, err := s.CountCredentials(ctx, "u2"); err != nil || c != 0 {
		t.Fatalf("count u2: %d, %v", c, err)
	}

	used := n.Add(time.Hour)
	must(t, "use", s.UpdateCredentialUse(ctx, c1.ID, storage.CredentialUse{SignCount: 8, BackupState: false, UserVerified: true, CloneWarning: true, UsedAt: used}))
	got, err = s.CredentialByID(ctx, c1.ID)
	must(t, "by id after use", err)
	if got.SignCount != 8 || got.BackupState || !got.CloneWarning || got.LastUsedAt == nil || !got.LastUsedAt.Equal(used) {
		t.Fatalf("after use: %+v", got)
	}
	wantErr(t, "use missing", s.UpdateCredentialUse(ctx, []byte("nope"), storage.CredentialUse{UsedAt: used}), storage.ErrNotFound)

	wantErr(t, "rename by non-owner", s.RenameCredential(ctx, "u2", c1.ID, "stolen"), storage.ErrNotFound)
	must(t, "rename", s.RenameCredential(ctx, "u1", c1.ID, "仕事用 iPhone"))
	got, err = s.CredentialByID(ctx, c1.ID)
	must(t, "by id after rename", err)
	if got.Name != "仕事用 iPhone" {
		t.Fatalf("name after rename: %q", got.Name)
	}

	wantErr(t, "delete by non-owner", s.DeleteCredential(ctx, "u2", c1.ID), storage.ErrNotFound)
	must(t, "delete", s.DeleteCredential(ctx, "u1", c1.ID))
	_, err = s.CredentialByID(ctx, c1.ID)
	wantErr(t, "deleted", err, storage.ErrNotFound)
	wantErr(t, "delete twice", s.DeleteCredential(ctx, "u1", c1.ID), storage.ErrNotFound)

	must(t, "third", s.CreateCredential(ctx, credential("cred-3", "u1", n), false))
	if c, err := s.DeleteUserCredentials(ctx, "u1"); err != nil || c != 2 {
		t.Fatalf("delete user credentials: %d, %v", c, err)
	}
	// With none left, a first passkey may be enrolled again (rule 6).
	must(t, "first again", s.CreateCredential(ctx, credential("cred-4", "u1", n), true))
}

// testCredentialOwner: a passkey comes with its user, as UserByID reads
// them, and all of that user's passkeys in CredentialsByUser's order, never
// another user's; a locked owner is read as locked (the caller refuses
// after the signature); an unknown credential, or one whose user was
// deleted, is ErrNotFound.
func testCredentialOwner(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	u1 := newUser(t, s, "u1")
	newUser(t, s, "u2")
	c1 := credential("cred-1", "u1", n)
	c2 := credential("cred-2", "u1", n.Add(time.Second))
	c2.Name, c2.SignCount = "YubiKey", 0
	other := credential("cred-other", "u2", n.Add(-time.Second))
	for _, c := range []*storage.Credential{c2, other, c1} {
		must(t, "create "+string(c.ID), s.CreateCredential(ctx, c, false))
	}

	for _, c := range []*storage.Credential{c1, c2} {
		got, err := s.CredentialOwner(ctx, c.ID)
		must(t, "owner of "+string(c.ID), err)
		wantEqual(t, "credential "+string(c.ID), got.Credential, *c)
		wantEqual(t, "user of "+string(c.ID), got.User, *u1)
		wantEqual(t, "passkeys of the owner of "+string(c.ID), got.Credentials, []storage.Credential{*c1, *c2})
	}
	got, err := s.CredentialOwner(ctx, other.ID)
	must(t, "owner of the other user's passkey", err)
	if got.User.ID != "u2" || len(got.Credentials) != 1 || string(got.Credentials[0].ID) != "cred-other" {
		t.Fatalf("owner of u2's passkey: %+v", got)
	}

	must(t, "lock u1", s.SetUserLocked(ctx, "u1", true))
	got, err = s.CredentialOwner(ctx, c1.ID)
	must(t, "owner of a locked user's passkey", err)
	if !got.User.Locked {
		t.Fatal("a locked owner was read unlocked")
	}

	_, err = s.CredentialOwner(ctx, []byte("nope"))
	wantErr(t, "unknown credential", err, storage.ErrNotFound)
	must(t, "delete u2", s.DeleteUser(ctx, "u2"))
	_, err = s.CredentialOwner(ctx, other.ID)
	wantErr(t, "passkey of a deleted user", err, storage.ErrNotFound)
}

// testCredentialOnlyIfFirstConcurrent: racing first enrolments leave one passkey.
func testCredentialOnlyIfFirstConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	errs := parallel(10, func(i int) error {
		return pick(i, a, b).CreateCredential(ctx, credential(fmt.Sprintf("cred-%d", i), "u1", n), true)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("enrolment %d: unexpected error %v", i, err)
		}
	}
	if c, err := b.CountCredentials(ctx, "u1"); err != nil || c != 1 || wins != 1 {
		t.Fatalf("concurrent first enrolment: %d passkeys, %d winners, err %v; want 1", c, wins, err)
	}
}
