package sqlstore_test

import (
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// ListUsers is outside storage.Store (the CLI's tests are its only
// callers), so its behaviour is pinned here rather than in conformance.
func TestListUsersOrdersByLoginID(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		s := storagetest.New(t, flavor)
		ctx := t.Context()
		n := time.Now().UTC()
		for _, id := range []string{"u1", "u0"} {
			u := &storage.User{ID: id, LoginID: "login-" + id, Email: id + "@example.jp", PasswordHash: "x", CreatedAt: n, UpdatedAt: n}
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatalf("create user %s: %v", id, err)
			}
		}
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatalf("list users: %v", err)
		}
		if len(list) != 2 || list[0].ID != "u0" || list[1].ID != "u1" {
			t.Fatalf("list users: got %+v, want u0 and u1 by login id", list)
		}
	})
}
