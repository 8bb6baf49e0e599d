package login

import (
	"context"
	"fmt"
	"testing"

	"github.com/comstockloan/idp/storage"
)

// Rule 3: a code is random and short-lived, but it is only six digits. What
// the flow stores of it must not give it away to someone who can read the
// database: trying every code against the stored value needs the key,
// which is not there.
func TestRule3StoredCodeNeedsTheKey(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	u := e.createUser("hana", "s3cret-pass")
	code := e.startF1(u, "s3cret-pass")
	f, err := e.store.LoginFlowByID(context.Background(), storage.HashSecret(e.cookie(flowCookie)))
	if err != nil {
		t.Fatal(err)
	}
	if f.OTPHash != e.h.otpHash(f.ID, code) {
		t.Fatal("the stored value is not the keyed hash of the mailed code")
	}
	for n := range 1_000_000 {
		guess := fmt.Sprintf("%06d", n)
		if storage.HashSecret(f.ID+":"+guess) == f.OTPHash || storage.HashSecret(guess) == f.OTPHash {
			t.Fatalf("the stored value gives the code away without a key: %s", guess)
		}
	}
	other, err := OTPKey([]byte("another deployment's crypto key, 32 bytes+"))
	if err != nil {
		t.Fatal(err)
	}
	e.h.cfg.OTPKey = other
	if e.h.otpHash(f.ID, code) == f.OTPHash {
		t.Fatal("another key gives the same stored value")
	}
}
