package op_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// userReadCounter is the real store, counting the user reads that pass
// through it.
type userReadCounter struct {
	storage.Store
	reads atomic.Int64
}

func (c *userReadCounter) UserByID(ctx context.Context, id string) (*storage.User, error) {
	c.reads.Add(1)
	return c.Store.UserByID(ctx, id)
}

// zitadel asks for the token request's user up to three times; the read
// of the code's request answers them for a code exchange, one read for a
// refresh (TestLockedAndDeletedUsersAreRefused shows the answer is not
// kept past the request).
func TestTokenRequestReadsItsUserOnce(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		store := &userReadCounter{Store: storagetest.New(t, flavor)}
		e := newEnvOn(t, store, nil)
		pk := newPKCE()
		loc := e.authorize(authParams(webClientID, webRedirect, "openid profile offline_access", pk))
		store.reads.Store(0)
		tr := e.exchange(loc.Query().Get("code"), webRedirect, pk)
		if tr.status != http.StatusOK || tr.RefreshToken == "" {
			t.Fatalf("code exchange: %d %s", tr.status, tr.Error)
		}
		if n := store.reads.Load(); n != 0 {
			t.Errorf("code exchange read the user %d times beside its code, want 0", n)
		}
		store.reads.Store(0)
		if r := e.refresh(tr.RefreshToken); r.status != http.StatusOK || r.IDToken == "" {
			t.Fatalf("refresh: %d %s", r.status, r.Error)
		}
		if n := store.reads.Load(); n != 1 {
			t.Errorf("refresh read the user %d times, want 1", n)
		}
	})
}
