package conformance

import (
	"errors"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

// testEnrolmentLinks: a link works once, not after expiry, and not after a
// newer link for the same user; another user's links are untouched.
func testEnrolmentLinks(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	link := func(id, user string, created time.Time, life time.Duration) *storage.EnrolmentLink {
		l := &storage.EnrolmentLink{ID: id, UserID: user, IssuedBy: "staff:suzuki", CreatedAt: created, ExpiresAt: created.Add(life)}
		must(t, "create link "+id, s.CreateEnrolmentLink(ctx, l))
		return l
	}
	first := link("first", "u1", n.Add(-time.Hour), 24*time.Hour)
	got, err := s.EnrolmentLinkByID(ctx, "first")
	must(t, "link by id", err)
	wantEqual(t, "link", *got, *first)
	other := link("other", "u2", n.Add(-time.Hour), 24*time.Hour)

	second := link("second", "u1", n, 24*time.Hour)
	got, err = s.EnrolmentLinkByID(ctx, "first")
	must(t, "superseded link", err)
	if got.SupersededAt == nil || !got.SupersededAt.Equal(second.CreatedAt) || got.UsedAt != nil {
		t.Fatalf("first link after a newer one: %+v", got)
	}
	wantErr(t, "use superseded", s.UseEnrolmentLink(ctx, "first", n), storage.ErrConflict)

	must(t, "use second", s.UseEnrolmentLink(ctx, "second", n))
	wantErr(t, "use twice", s.UseEnrolmentLink(ctx, "second", n), storage.ErrConflict)
	got, err = s.EnrolmentLinkByID(ctx, "second")
	must(t, "used link", err)
	if got.UsedAt == nil || !got.UsedAt.Equal(n) {
		t.Fatalf("used link: %+v", got)
	}
	wantErr(t, "use unknown", s.UseEnrolmentLink(ctx, "nope", n), storage.ErrNotFound)
	_, err = s.EnrolmentLinkByID(ctx, "nope")
	wantErr(t, "unknown link", err, storage.ErrNotFound)

	// Expiry is "at or before", as everywhere.
	link("short", "u1", n.Add(-time.Hour), time.Hour)
	wantErr(t, "use at expiry", s.UseEnrolmentLink(ctx, "short", n), storage.ErrConflict)

	got, err = s.EnrolmentLinkByID(ctx, "other")
	must(t, "other user's link", err)
	wantEqual(t, "other user's link", *got, *other)
	must(t, "use other user's link", s.UseEnrolmentLink(ctx, "other", n))

	wantErr(t, "link for unknown user", s.CreateEnrolmentLink(ctx, &storage.EnrolmentLink{
		ID: "ghost", UserID: "nobody", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}), storage.ErrNotFound)

	// Swept a retention period after expiry (sqlstore keeps 30 days), and
	// with the user.
	_, err = s.DeleteExpired(ctx, n.Add(60*24*time.Hour))
	must(t, "sweep", err)
	_, err = s.EnrolmentLinkByID(ctx, "second")
	wantErr(t, "swept link", err, storage.ErrNotFound)
	link("fresh", "u2", n, time.Hour)
	must(t, "delete user", s.DeleteUser(ctx, "u2"))
	_, err = s.EnrolmentLinkByID(ctx, "fresh")
	wantErr(t, "link of a deleted user", err, storage.ErrNotFound)
}

// testEnrolmentLinkConcurrentUse: 40 openings of one link at once, across
// replicas, and exactly one wins.
func testEnrolmentLinkConcurrentUse(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	must(t, "create link", a.CreateEnrolmentLink(ctx, &storage.EnrolmentLink{ID: "l", UserID: "u1", CreatedAt: n, ExpiresAt: n.Add(time.Hour)}))
	won := 0
	for i, err := range parallel(40, func(i int) error { return pick(i, a, b).UseEnrolmentLink(ctx, "l", n) }) {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 40 concurrent uses succeeded, want 1", won)
	}
}

// testEnrolmentLinkConcurrentIssue: two staff issuing at once leave at
// most one live link, never two.
func testEnrolmentLinkConcurrentIssue(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	ids := []string{"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"}
	errs := parallel(len(ids), func(i int) error {
		return pick(i, a, b).CreateEnrolmentLink(ctx, &storage.EnrolmentLink{ID: ids[i], UserID: "u1", CreatedAt: n, ExpiresAt: n.Add(time.Hour)})
	})
	for i, err := range errs {
		if err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("issue %d: %v", i, err)
		}
	}
	live := 0
	for _, id := range ids {
		if a.UseEnrolmentLink(ctx, id, n) == nil {
			live++
		}
	}
	if live > 1 {
		t.Fatalf("%d live links after concurrent issues, want at most 1", live)
	}
}
