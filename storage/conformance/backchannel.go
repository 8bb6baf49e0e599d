package conformance

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

// signIn creates a live session of user and completes one auth request per
// client from it, as the login pages do.
func signIn(t *testing.T, s storage.Store, id, user string, expires time.Time, clients ...string) *storage.Session {
	t.Helper()
	ctx := t.Context()
	n := now()
	se := &storage.Session{ID: id, UserID: user, AuthTime: n, CreatedAt: n, LastSeenAt: n, ExpiresAt: expires}
	must(t, "create session "+id, s.CreateSession(ctx, se))
	for i, c := range clients {
		ar := fullAuthRequest(fmt.Sprintf("ar-%s-%s", id, c), n)
		if slices.Contains(clients[:i], c) {
			ar.ID += fmt.Sprintf("-%d", i)
		}
		ar.ClientID = c
		must(t, "create auth request", s.CreateAuthRequest(ctx, ar))
		must(t, "complete from session "+id, complete(ctx, s, ar.ID, user, n, []string{"pwd"}, "1", se.SID))
	}
	return se
}

// owed claims everything due far in the future and returns it as
// "client sid subject" lines, sorted, deleting what it claimed.
func owed(t *testing.T, s storage.Store) []string {
	t.Helper()
	got, err := s.ClaimBackchannelLogouts(t.Context(), now().Add(time.Hour), time.Minute, 1000)
	must(t, "claim", err)
	var out []string
	for _, l := range got {
		out = append(out, l.ClientID+" "+l.SID+" "+l.Subject)
		must(t, "delete claimed", s.DeleteBackchannelLogout(t.Context(), l.ID))
	}
	slices.Sort(out)
	return out
}

// testBackchannelEnqueue: every way a session ends owes one logout per
// client it signed in to (once per client, however often), with its sid
// and user; a renewal keeps the sid and owes nothing; a completion from
// an ended session fails and records nothing.
func testBackchannelEnqueue(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	newUser(t, s, "u2")
	hour := n.Add(time.Hour)

	a := signIn(t, s, "a", "u1", hour, "web", "app", "web")
	if a.SID == "" || a.SID == a.ID || a.SID == storage.HashSecret(a.ID) {
		t.Fatalf("session sid %q: want a fresh identifier unrelated to the row key", a.SID)
	}
	ar, err := s.AuthRequestByID(ctx, "ar-a-web")
	must(t, "completed request", err)
	if ar.SessionID != a.SID {
		t.Fatalf("auth request sid %q, want the session's %q", ar.SessionID, a.SID)
	}
	if got := owed(t, s); len(got) != 0 {
		t.Fatalf("nothing ended yet, but owed %v", got)
	}

	must(t, "logout", s.DeleteSession(ctx, a.ID))
	wantEqual(t, "owed after logout", owed(t, s), []string{"app " + a.SID + " u1", "web " + a.SID + " u1"})
	must(t, "logout again", s.DeleteSession(ctx, a.ID))
	wantEqual(t, "owed after a second logout", owed(t, s), []string(nil))

	keep := signIn(t, s, "keep", "u1", hour, "web")
	phone := signIn(t, s, "phone", "u1", hour, "app")
	other := signIn(t, s, "other", "u2", hour, "web")
	signIn(t, s, "quiet", "u1", hour) // signed in to no client: owes nothing
	_, err = s.EndUserAccess(ctx, "u1", keep.ID, n)
	must(t, "end user access", err)
	wantEqual(t, "owed after end user access", owed(t, s), []string{"app " + phone.SID + " u1"})

	must(t, "delete user", s.DeleteUser(ctx, "u2"))
	wantEqual(t, "owed after delete user", owed(t, s), []string{"web " + other.SID + " u2"})

	// Renewal: the same session under a new key, nothing owed; its end
	// owes the clients it had before.
	next := &storage.Session{ID: "keep-2", UserID: "u1", AuthTime: n.Add(time.Second), AMR: []string{"hwk"}, ACR: "2",
		CreatedAt: n.Add(time.Second), LastSeenAt: n.Add(time.Second), ExpiresAt: hour}
	must(t, "renew", s.RenewSession(ctx, keep.ID, next))
	if next.SID != keep.SID || !next.CreatedAt.Equal(keep.CreatedAt) {
		t.Fatalf("renewed session sid %q created %v, want %q %v", next.SID, next.CreatedAt, keep.SID, keep.CreatedAt)
	}
	_, err = s.SessionByID(ctx, keep.ID)
	wantErr(t, "old key after renewal", err, storage.ErrNotFound)
	got, err := s.SessionByID(ctx, next.ID)
	must(t, "renewed session", err)
	wantEqual(t, "renewed session", *got, *next)
	wantEqual(t, "owed after renewal", owed(t, s), []string(nil))
	wantErr(t, "renew an ended session", s.RenewSession(ctx, keep.ID, &storage.Session{ID: "keep-3", UserID: "u1", ExpiresAt: hour}), storage.ErrNotFound)

	// A completion from an ended session fails and leaves the request as
	// it was.
	must(t, "create late request", s.CreateAuthRequest(ctx, fullAuthRequest("ar-late", n)))
	must(t, "logout renewed", s.DeleteSession(ctx, next.ID))
	wantEqual(t, "owed after logout of the renewed session", owed(t, s), []string{"web " + keep.SID + " u1"})
	err = complete(ctx, s, "ar-late", "u1", n, []string{"pwd"}, "1", keep.SID)
	wantErr(t, "complete from an ended session", err, storage.ErrNotFound)
	wantErr(t, "complete from an ended session", err, storage.ErrSessionEnded)
	late, err := s.AuthRequestByID(ctx, "ar-late")
	must(t, "late request", err)
	if late.Done {
		t.Fatal("a completion from an ended session completed the request")
	}

	// A failed completion (already completed) records no client.
	racer := signIn(t, s, "racer", "u1", hour)
	twice := fullAuthRequest("ar-twice", n)
	twice.ClientID = "twice"
	must(t, "create twice request", s.CreateAuthRequest(ctx, twice))
	must(t, "complete twice request", complete(ctx, s, "ar-twice", "u1", n, []string{"pwd"}, "1", ""))
	wantErr(t, "complete twice", complete(ctx, s, "ar-twice", "u1", n, []string{"pwd"}, "1", racer.SID), storage.ErrConflict)
	must(t, "complete late request", complete(ctx, s, "ar-late", "u1", n, []string{"pwd"}, "1", racer.SID))
	wantErr(t, "complete late request again", complete(ctx, s, "ar-late", "u1", n, []string{"pwd"}, "1", racer.SID), storage.ErrConflict)
	must(t, "logout racer", s.DeleteSession(ctx, racer.ID))
	wantEqual(t, "owed after the racer's logout", owed(t, s), []string{"loan-web " + racer.SID + " u1"})

	// Expiry ends a session as any other.
	expiring := signIn(t, s, "expiring", "u1", n.Add(time.Second), "web")
	_, err = s.DeleteExpired(ctx, n.Add(2*time.Second))
	must(t, "delete expired", err)
	wantEqual(t, "owed after expiry", owed(t, s), []string{"web " + expiring.SID + " u1"})
}

// testBackchannelClaim: a claim leases its rows (Attempts counted up) until
// they are retried, deleted or the lease runs out; Retry keeps the reason;
// rows come due in order and at most limit at a time.
func testBackchannelClaim(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, s, "u1")
	for i := range 3 {
		se := signIn(t, s, fmt.Sprintf("s%d", i), "u1", n.Add(time.Hour), "web")
		must(t, "logout", s.DeleteSession(ctx, se.ID))
	}
	at := n.Add(time.Minute) // everything enqueued is due
	first, err := s.ClaimBackchannelLogouts(ctx, at, 30*time.Second, 2)
	must(t, "claim", err)
	if len(first) != 2 {
		t.Fatalf("claimed %d, want the limit 2", len(first))
	}
	for _, l := range first {
		if l.Attempts != 1 || l.ID == "" || l.ClientID != "web" || l.Subject != "u1" || l.SID == "" || l.CreatedAt.IsZero() {
			t.Fatalf("claimed %+v", l)
		}
		if !l.NextAttemptAt.Equal(at.Add(30 * time.Second)) {
			t.Fatalf("leased until %v, want %v", l.NextAttemptAt, at.Add(30*time.Second))
		}
	}
	rest, err := s.ClaimBackchannelLogouts(ctx, at, 30*time.Second, 10)
	must(t, "claim rest", err)
	if len(rest) != 1 || rest[0].ID == first[0].ID || rest[0].ID == first[1].ID {
		t.Fatalf("second claim: %+v (leased rows must not come back)", rest)
	}
	none, err := s.ClaimBackchannelLogouts(ctx, at.Add(29*time.Second), 30*time.Second, 10)
	must(t, "claim during the lease", err)
	if len(none) != 0 {
		t.Fatalf("claimed %d during the lease", len(none))
	}

	must(t, "retry", s.RetryBackchannelLogout(ctx, first[0].ID, at.Add(10*time.Minute), "status 500"))
	must(t, "delivered", s.DeleteBackchannelLogout(ctx, first[1].ID))
	must(t, "delivered twice", s.DeleteBackchannelLogout(ctx, first[1].ID))
	wantErr(t, "retry a delivered one", s.RetryBackchannelLogout(ctx, first[1].ID, at, "x"), storage.ErrNotFound)

	// The lease of rest[0] ran out (its replica died): due again.
	again, err := s.ClaimBackchannelLogouts(ctx, at.Add(30*time.Second), time.Minute, 10)
	must(t, "claim after the lease", err)
	if len(again) != 1 || again[0].ID != rest[0].ID || again[0].Attempts != 2 {
		t.Fatalf("after the lease: %+v, want %s on its second attempt", again, rest[0].ID)
	}
	must(t, "delivered on the second attempt", s.DeleteBackchannelLogout(ctx, rest[0].ID))
	retried, err := s.ClaimBackchannelLogouts(ctx, at.Add(10*time.Minute), time.Minute, 10)
	must(t, "claim the retried one", err)
	if len(retried) != 1 || retried[0].ID != first[0].ID || retried[0].Attempts != 2 || retried[0].LastError != "status 500" {
		t.Fatalf("retried: %+v", retried)
	}
	_, err = s.ClaimBackchannelLogouts(ctx, at, 0, 1)
	if err == nil {
		t.Fatal("a claim without a lease was accepted")
	}
}

// testBackchannelClaimConcurrent: 40 claims at once on two replicas hand
// every due logout out exactly once.
func testBackchannelClaimConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	for i := range 40 {
		signIn(t, a, fmt.Sprintf("s%02d", i), "u1", n.Add(time.Hour), "web")
	}
	_, err := a.EndUserAccess(ctx, "u1", "", n)
	must(t, "end user access", err)
	claimed := make([][]storage.BackchannelLogout, 40)
	errs := parallel(40, func(i int) error {
		var err error
		claimed[i], err = pick(i, a, b).ClaimBackchannelLogouts(ctx, n.Add(time.Minute), time.Hour, 3)
		return err
	})
	seen := map[string]int{}
	for i, err := range errs {
		must(t, fmt.Sprintf("claim %d", i), err)
		for _, l := range claimed[i] {
			if prev, dup := seen[l.ID]; dup {
				t.Fatalf("logout %s claimed by %d and %d", l.ID, prev, i)
			}
			seen[l.ID] = i
		}
	}
	if len(seen) != 40 {
		t.Fatalf("claimed %d distinct logouts, want 40", len(seen))
	}
}

// testBackchannelCompletionRacesEnd: completions from a session racing its
// end on two replicas: every completion that succeeded is owed a logout,
// and the others failed with ErrNotFound (never recorded and lost).
func testBackchannelCompletionRacesEnd(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	newUser(t, a, "u1")
	se := signIn(t, a, "s", "u1", n.Add(time.Hour))
	for i := range 40 {
		ar := fullAuthRequest(fmt.Sprintf("ar%02d", i), n)
		ar.ClientID = fmt.Sprintf("c%02d", i)
		must(t, "create auth request", a.CreateAuthRequest(ctx, ar))
	}
	errs := parallel(41, func(i int) error {
		if i == 20 {
			_, err := pick(i, a, b).EndUserAccess(ctx, "u1", "", n)
			return err
		}
		if i > 20 {
			i--
		}
		return complete(ctx, pick(i, a, b), fmt.Sprintf("ar%02d", i), "u1", n, []string{"pwd"}, "1", se.SID)
	})
	var want []string
	for i, err := range errs {
		switch {
		case i == 20:
			must(t, "end user access", err)
		case err == nil:
			c := i
			if i > 20 {
				c--
			}
			want = append(want, fmt.Sprintf("c%02d %s u1", c, se.SID))
		case !errors.Is(err, storage.ErrNotFound):
			t.Fatalf("completion %d: %v", i, err)
		}
	}
	slices.Sort(want)
	wantEqual(t, "owed for the completions that won", owed(t, a), want)
}
