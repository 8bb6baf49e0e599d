package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
)

func signingKey(id string, n time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID: id, Algorithm: "ES256", PrivateKey: []byte("sealed-" + id), PublicKey: []byte{0x30, 0x59, 0x01},
		CreatedAt: n, ActiveFrom: n.Add(time.Hour), RetireAt: n.Add(24 * time.Hour), ExpiresAt: n.Add(48 * time.Hour),
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	n := now()
	keys, err := s.ListSigningKeys(ctx)
	must(t, "list empty", err)
	if len(keys) != 0 {
		t.Fatalf("fresh store has keys: %+v", keys)
	}
	k1, k2 := signingKey("k1", n), signingKey("k2", n.Add(time.Second))
	must(t, "add", s.RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{k1, k2}, nil, nil
	}))
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list", err)
	wantEqual(t, "keys", keys, []storage.SigningKey{k1, k2})

	k3 := signingKey("k3", n.Add(2*time.Second))
	must(t, "rotate", s.RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
		wantEqual(t, "plan sees current keys", current, []storage.SigningKey{k1, k2})
		return []storage.SigningKey{k3}, []string{"k1"}, nil
	}))
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list after rotate", err)
	wantEqual(t, "keys after rotate", keys, []storage.SigningKey{k2, k3})

	planErr := errors.New("no entropy")
	err = s.RotateSigningKeys(ctx, func([]storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{signingKey("k4", n)}, []string{"k2"}, planErr
	})
	wantErr(t, "failing plan", err, planErr)
	err = s.RotateSigningKeys(ctx, func([]storage.SigningKey) ([]storage.SigningKey, []string, error) {
		return []storage.SigningKey{signingKey("k5", n), signingKey("k2", n)}, []string{"k3"}, nil
	})
	wantErr(t, "plan adding an existing key", err, storage.ErrAlreadyExists)
	keys, err = s.ListSigningKeys(ctx)
	must(t, "list after failed plans", err)
	wantEqual(t, "failed plans write nothing", keys, []storage.SigningKey{k2, k3})
}

// testSigningKeysConcurrent lets several rotations race with a plan that
// adds a key only when there is none: exactly one key may result.
func testSigningKeysConcurrent(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	n := now()
	errs := parallel(6, func(i int) error {
		return pick(i, a, b).RotateSigningKeys(ctx, func(current []storage.SigningKey) ([]storage.SigningKey, []string, error) {
			if len(current) > 0 {
				return nil, nil, nil
			}
			// Widen the window in which a second replica could slip in.
			time.Sleep(20 * time.Millisecond)
			return []storage.SigningKey{signingKey(fmt.Sprintf("k%d", i), n)}, nil, nil
		})
	})
	for i, err := range errs {
		must(t, fmt.Sprintf("rotation %d", i), err)
	}
	keys, err := a.ListSigningKeys(ctx)
	must(t, "list", err)
	if len(keys) != 1 {
		t.Fatalf("concurrent rotations added %d keys, want 1", len(keys))
	}
}
