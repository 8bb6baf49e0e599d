package password

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

var tiny = Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestHashVerifyRoundTrip(t *testing.T) {
	h, err := Hash(tiny, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", h)
	}
	if ok, err := Verify(h, "correct horse"); err != nil || !ok {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	if ok, err := Verify(h, "correct horsE"); err != nil || ok {
		t.Fatalf("Verify(wrong) = %v, %v", ok, err)
	}
	h2, _ := Hash(tiny, "correct horse")
	if h == h2 {
		t.Fatal("two hashes of the same password share a salt")
	}
}

func TestVerifyBcrypt(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("imported"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(string(b), "imported"); err != nil || !ok {
		t.Fatalf("bcrypt right = %v, %v", ok, err)
	}
	if ok, err := Verify(string(b), "other"); err != nil || ok {
		t.Fatalf("bcrypt wrong = %v, %v", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	for _, h := range []string{"", "plain", "$argon2id$v=19$m=64$x$y", "$argon2id$v=18$m=64,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA"} {
		if _, err := Verify(h, "x"); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) err = %v, want ErrMalformedHash", h, err)
		}
	}
}

func TestVerifierUnknownUserNeverMatches(t *testing.T) {
	v, err := NewVerifier(tiny, NewLimiter(LimiterConfig{}, tiny))
	if err != nil {
		t.Fatal(err)
	}
	slot, err := v.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	if ok, err := v.Verify(slot, "", ""); err != nil || ok {
		t.Fatalf("dummy verify = %v, %v", ok, err)
	}
	h, _ := Hash(tiny, "pw")
	if ok, _ := v.Verify(slot, h, "pw"); !ok {
		t.Fatal("real hash did not verify through Verifier")
	}
}
