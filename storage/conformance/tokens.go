package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func testAccessTokens(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	at := &storage.AccessToken{
		ID: "at1", ClientID: "web", Subject: "u1", Audience: []string{"web", "api"}, Scopes: []string{"openid"},
		AuthRequestID: "ar1", RefreshTokenID: "", ExpiresAt: n.Add(time.Hour), CreatedAt: n,
	}
	must(t, "create", s.CreateAccessToken(ctx, at))
	wantErr(t, "duplicate", s.CreateAccessToken(ctx, at), storage.ErrAlreadyExists)
	got, err := s.AccessTokenByID(ctx, "at1")
	must(t, "by id", err)
	wantEqual(t, "access token", *got, *at)

	must(t, "create expired", s.CreateAccessToken(ctx, &storage.AccessToken{ID: "old", ClientID: "web", Subject: "u1", CreatedAt: n.Add(-time.Hour), ExpiresAt: n}))
	_, err = s.AccessTokenByID(ctx, "old")
	wantErr(t, "expired", err, storage.ErrNotFound)

	must(t, "delete", s.DeleteAccessToken(ctx, "at1"))
	_, err = s.AccessTokenByID(ctx, "at1")
	wantErr(t, "deleted", err, storage.ErrNotFound)
}

// issue creates a refresh token with its access token, as a code exchange does.
func issue(t *testing.T, s storage.Store, id, family, client, subject, authRequest string, n time.Time) {
	t.Helper()
	must(t, "create refresh token "+id, s.CreateRefreshToken(t.Context(),
		&storage.RefreshToken{ID: id, FamilyID: family, ClientID: client, Subject: subject, AuthRequestID: authRequest,
			AccessTokenID: "at-" + id, CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour)},
		&storage.AccessToken{ID: "at-" + id, ClientID: client, Subject: subject, AuthRequestID: authRequest,
			RefreshTokenID: id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
}

func successor(id, authRequest string, n time.Time) (*storage.RefreshToken, *storage.AccessToken) {
	return &storage.RefreshToken{ID: id, ClientID: "web", Subject: "u1", AuthRequestID: authRequest,
			AccessTokenID: "at-" + id, CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour)},
		&storage.AccessToken{ID: "at-" + id, ClientID: "web", Subject: "u1", AuthRequestID: authRequest,
			RefreshTokenID: id, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
}

func wantAccessToken(t *testing.T, s storage.Store, id string, present bool) {
	t.Helper()
	_, err := s.AccessTokenByID(t.Context(), id)
	if present {
		must(t, "access token "+id, err)
	} else {
		wantErr(t, "access token "+id, err, storage.ErrNotFound)
	}
}

func wantRevoked(t *testing.T, s storage.Store, id string, revoked bool) {
	t.Helper()
	rt, err := s.RefreshTokenByID(t.Context(), id)
	must(t, "refresh token "+id, err)
	if (rt.RevokedAt != nil) != revoked {
		t.Fatalf("refresh token %s: revoked at %v, want revoked=%v", id, rt.RevokedAt, revoked)
	}
}

func testRefreshRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	full := &storage.RefreshToken{
		ID: storage.HashSecret("rt1"), FamilyID: "fam", ClientID: "web", Subject: "u1", Audience: []string{"web"},
		Scopes: []string{"openid", "offline_access"}, AMR: []string{"hwk"}, ACR: "phr", AuthTime: n.Add(-time.Minute),
		AuthRequestID: "ar1", AccessTokenID: "at1", CreatedAt: n, ExpiresAt: n.Add(24 * time.Hour),
	}
	must(t, "create", s.CreateRefreshToken(ctx, full, &storage.AccessToken{ID: "at1", ClientID: "web", Subject: "u1",
		AuthRequestID: "ar1", RefreshTokenID: full.ID, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
	got, err := s.RefreshTokenByID(ctx, full.ID)
	must(t, "by id", err)
	wantEqual(t, "refresh token", *got, *full)
	wantAccessToken(t, s, "at1", true)

	next, nextAT := successor("rt2", "ar1", n.Add(time.Minute))
	rotatedAt := n.Add(time.Minute)
	must(t, "rotate", s.RotateRefreshToken(ctx, full.ID, next, nextAT, rotatedAt))
	got, err = s.RefreshTokenByID(ctx, full.ID)
	must(t, "old after rotate", err)
	if got.RotatedAt == nil || !got.RotatedAt.Equal(rotatedAt) || got.RevokedAt != nil {
		t.Fatalf("old after rotate: rotated %v revoked %v", got.RotatedAt, got.RevokedAt)
	}
	got, err = s.RefreshTokenByID(ctx, "rt2")
	must(t, "successor", err)
	if got.FamilyID != "fam" || got.RotatedAt != nil || got.RevokedAt != nil {
		t.Fatalf("successor: %+v", got)
	}
	wantAccessToken(t, s, "at-rt2", true)

	// Replaying the rotated token revokes the family: the successor and
	// every access token issued with the family.
	next3, nextAT3 := successor("rt3", "ar1", n.Add(2*time.Minute))
	wantErr(t, "reuse", s.RotateRefreshToken(ctx, full.ID, next3, nextAT3, n.Add(2*time.Minute)), storage.ErrRefreshTokenReused)
	wantRevoked(t, s, "rt2", true)
	wantAccessToken(t, s, "at1", false)
	wantAccessToken(t, s, "at-rt2", false)
	_, err = s.RefreshTokenByID(ctx, "rt3")
	wantErr(t, "successor of a reused token", err, storage.ErrNotFound)
	wantAccessToken(t, s, "at-rt3", false)

	// A revoked (not rotated) token is reuse too.
	next4, nextAT4 := successor("rt4", "ar1", n)
	wantErr(t, "rotate revoked", s.RotateRefreshToken(ctx, "rt2", next4, nextAT4, n.Add(3*time.Minute)), storage.ErrRefreshTokenReused)

	next5, nextAT5 := successor("rt5", "ar1", n)
	wantErr(t, "rotate unknown", s.RotateRefreshToken(ctx, "nope", next5, nextAT5, n), storage.ErrNotFound)

	must(t, "create expired", s.CreateRefreshToken(ctx, &storage.RefreshToken{ID: "old", ClientID: "web", Subject: "u1", CreatedAt: n.Add(-48 * time.Hour), ExpiresAt: n.Add(-time.Second)}, nil))
	_, err = s.RefreshTokenByID(ctx, "old")
	wantErr(t, "expired by id", err, storage.ErrNotFound)
	next6, nextAT6 := successor("rt6", "ar1", n)
	wantErr(t, "rotate expired", s.RotateRefreshToken(ctx, "old", next6, nextAT6, n), storage.ErrNotFound)

	// RevokeRefreshToken revokes a whole family.
	issue(t, s, "f2-a", "f2", "web", "u1", "ar2", n)
	nb, nbAT := successor("f2-b", "ar2", n)
	must(t, "rotate f2", s.RotateRefreshToken(ctx, "f2-a", nb, nbAT, n))
	must(t, "revoke", s.RevokeRefreshToken(ctx, "f2-b", n))
	wantRevoked(t, s, "f2-a", true)
	wantRevoked(t, s, "f2-b", true)
	wantAccessToken(t, s, "at-f2-a", false)
	wantAccessToken(t, s, "at-f2-b", false)
	wantErr(t, "revoke unknown", s.RevokeRefreshToken(ctx, "nope", n), storage.ErrNotFound)
}

func testRefreshConcurrentRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "rt", "fam", "web", "u1", "ar", n)
	errs := parallel(8, func(i int) error {
		next, at := successor(fmt.Sprintf("next-%d", i), "ar", n)
		return s.RotateRefreshToken(ctx, "rt", next, at, n)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrRefreshTokenReused):
			t.Fatalf("rotation %d: unexpected error %v", i, err)
		}
	}
	if wins != 1 {
		t.Fatalf("concurrent rotation: %d winners, want 1", wins)
	}
	// The losers presented a rotated token: the winner's successor is
	// revoked with the family.
	for i, err := range errs {
		if err == nil {
			wantRevoked(t, s, fmt.Sprintf("next-%d", i), true)
			wantAccessToken(t, s, fmt.Sprintf("at-next-%d", i), false)
		}
	}
}

func testRevokeGrant(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "a1", "famA", "web", "u1", "arA", n)
	next, at := successor("a2", "arA", n)
	must(t, "rotate", s.RotateRefreshToken(ctx, "a1", next, at, n))
	must(t, "plain access token", s.CreateAccessToken(ctx, &storage.AccessToken{ID: "atA", ClientID: "web", Subject: "u1", AuthRequestID: "arA", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
	issue(t, s, "b1", "famB", "web", "u1", "arB", n)

	must(t, "revoke grant", s.RevokeGrant(ctx, "arA", n))
	wantRevoked(t, s, "a1", true)
	wantRevoked(t, s, "a2", true)
	wantAccessToken(t, s, "at-a1", false)
	wantAccessToken(t, s, "at-a2", false)
	wantAccessToken(t, s, "atA", false)
	wantRevoked(t, s, "b1", false)
	wantAccessToken(t, s, "at-b1", true)
}

// testRevocationRacesRotation: revocations racing rotations of the same
// family must neither fail nor leave a live token behind.
func testRevocationRacesRotation(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	issue(t, s, "rt", "fam", "web", "u1", "ar", n)
	errs := parallel(9, func(i int) error {
		switch i % 3 {
		case 0:
			return s.RevokeGrant(ctx, "ar", n)
		case 1:
			_, err := s.EndUserAccess(ctx, "u1", "", n)
			return err
		}
		next, at := successor(fmt.Sprintf("next-%d", i), "ar", n)
		err := s.RotateRefreshToken(ctx, "rt", next, at, n)
		if errors.Is(err, storage.ErrRefreshTokenReused) {
			return nil
		}
		return err
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("racer %d", i), err)
	}
	// A rotation may have won after every revocation: revoke once more,
	// then nothing of the family may be usable.
	must(t, "final revoke", s.RevokeGrant(ctx, "ar", n))
	wantRevoked(t, s, "rt", true)
	wantAccessToken(t, s, "at-rt", false)
	for i := 2; i < 9; i += 3 {
		id := fmt.Sprintf("next-%d", i)
		if _, err := s.RefreshTokenByID(ctx, id); err == nil {
			wantRevoked(t, s, id, true)
		}
		wantAccessToken(t, s, "at-"+id, false)
	}
}
