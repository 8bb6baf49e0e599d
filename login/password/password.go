// Package password hashes and verifies login passwords.
//
// New hashes are argon2id in the PHC string format. Hashes imported from the
// previous system may be bcrypt ($2a$/$2b$/$2y$) and still verify.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Params are the argon2id cost parameters.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
}

// DefaultParams is the OWASP minimum recommendation for argon2id.
var DefaultParams = Params{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// ErrMalformedHash is returned when a stored hash cannot be parsed.
var ErrMalformedHash = errors.New("password: malformed hash")

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string of pw.
func Hash(p Params, pw string) (string, error) {
	if p.MemoryKiB == 0 || p.Iterations == 0 || p.Parallelism == 0 {
		return "", fmt.Errorf("password: invalid argon2id params %+v", p)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: reading salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the stored hash phc (argon2id or bcrypt).
// A wrong password is (false, nil); an unparseable hash is an error.
func Verify(phc, pw string) (bool, error) {
	switch {
	case strings.HasPrefix(phc, "$argon2id$"):
		return verifyArgon2id(phc, pw)
	case isBcrypt(phc):
		err := bcrypt.CompareHashAndPassword([]byte(phc), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("password: bcrypt: %w", err)
		}
		return true, nil
	default:
		return false, ErrMalformedHash
	}
}

func verifyArgon2id(phc, pw string) (bool, error) {
	// $argon2id$v=19$m=..,t=..,p=..$salt$key
	parts := strings.Split(phc, "$")
	if len(parts) != 6 {
		return false, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, ErrMalformedHash
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return false, ErrMalformedHash
	}
	if p.MemoryKiB == 0 || p.Iterations == 0 || p.Parallelism == 0 {
		return false, ErrMalformedHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, ErrMalformedHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, ErrMalformedHash
	}
	got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// Verifier checks passwords of users who may not exist, spending the same
// work whoever they are, so that response time tells neither whether a
// login ID is known nor how its password is stored (rule 7, docs/rules.md). Every
// check costs one argon2id computation plus, while bcrypt hashes imported
// from the previous system remain, one bcrypt computation at the highest
// stored cost (SetBcryptCost):
//
//	argon2id user: real argon2id + dummy bcrypt at that cost
//	bcrypt user:   dummy argon2id + real bcrypt, padded up to that cost
//	unknown user:  dummy argon2id + dummy bcrypt at that cost
//
// Every computation needs a Slot of the Limiter (Acquire), so a spray
// queues or gets ErrBusy instead of exhausting memory.
type Verifier struct {
	params     Params
	dummy      string
	limiter    *Limiter
	bcryptCost atomic.Int32
	// bcryptDummies holds one bcrypt hash per cost, made on first use.
	bcryptDummies sync.Map // int -> []byte
}

// NewVerifier precomputes a dummy hash with the params of new hashes.
func NewVerifier(p Params, limiter *Limiter) (*Verifier, error) {
	if limiter == nil {
		return nil, errors.New("password: a verifier needs a limiter")
	}
	dummy, err := Hash(p, randomText())
	if err != nil {
		return nil, fmt.Errorf("password: dummy hash: %w", err)
	}
	return &Verifier{params: p, dummy: dummy, limiter: limiter}, nil
}

func randomText() string {
	buf := make([]byte, 18)
	_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+)
	return b64.EncodeToString(buf)
}

// Limiter is the bound the verifier's computations run under.
func (v *Verifier) Limiter() *Limiter { return v.limiter }

// Acquire takes the hashing slot that Verify and Hash need.
func (v *Verifier) Acquire(ctx context.Context) (*Slot, error) { return v.limiter.Acquire(ctx) }

// SetBcryptCost sets the bcrypt cost every check is padded to: the highest
// cost of any stored bcrypt hash, 0 when none is left.
func (v *Verifier) SetBcryptCost(cost int) {
	if cost != 0 && (cost < bcrypt.MinCost || cost > bcrypt.MaxCost) {
		return
	}
	v.bcryptCost.Store(int32(cost))
}

// BcryptCost is the cost checks are padded to now.
func (v *Verifier) BcryptCost() int { return int(v.bcryptCost.Load()) }

// Verify checks pw against phc; when phc is empty (unknown user) it does
// the same work against dummies and reports false. The slot must be held.
func (v *Verifier) Verify(_ *Slot, phc, pw string) (bool, error) {
	pad := v.BcryptCost()
	switch {
	case phc == "":
		_, err := verifyArgon2id(v.dummy, pw)
		v.padBcrypt(pw, 0, pad)
		return false, err
	case isBcrypt(phc):
		cost, err := bcrypt.Cost([]byte(phc))
		if err != nil {
			_, _ = verifyArgon2id(v.dummy, pw)
			v.padBcrypt(pw, 0, pad)
			return false, fmt.Errorf("password: bcrypt: %w", err)
		}
		if cost > pad {
			// A hash costlier than the known maximum: pad everyone to it
			// from now on rather than stand out.
			v.SetBcryptCost(cost)
		}
		_, _ = verifyArgon2id(v.dummy, pw)
		ok, err := Verify(phc, pw)
		v.padBcrypt(pw, cost, pad)
		return ok, err
	default:
		ok, err := Verify(phc, pw)
		v.padBcrypt(pw, 0, pad)
		return ok, err
	}
}

// padBcrypt spends the bcrypt work between a check that already did cost
// from (0: none) and one that does cost to. bcrypt's work doubles per cost
// step, so 2^to - 2^from is exactly the sum of single runs at from,
// from+1, …, to-1.
func (v *Verifier) padBcrypt(pw string, from, to int) {
	if to == 0 || from >= to {
		return
	}
	if from == 0 {
		_ = bcrypt.CompareHashAndPassword(v.bcryptDummy(to), []byte(pw))
		return
	}
	for c := from; c < to; c++ {
		_ = bcrypt.CompareHashAndPassword(v.bcryptDummy(c), []byte(pw))
	}
}

func (v *Verifier) bcryptDummy(cost int) []byte {
	if h, ok := v.bcryptDummies.Load(cost); ok {
		return h.([]byte)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(randomText()), cost)
	if err != nil { // only for an invalid cost, which SetBcryptCost refuses
		return nil
	}
	v.bcryptDummies.Store(cost, h)
	return h
}

// Hash is Hash with the verifier's params; the slot must be held.
func (v *Verifier) Hash(_ *Slot, pw string) (string, error) {
	return Hash(v.params, pw)
}

// NeedsRehash reports whether a stored hash (verified just now) should be
// replaced by an argon2id hash of the same password: imported bcrypt.
func NeedsRehash(phc string) bool { return isBcrypt(phc) }

func isBcrypt(phc string) bool {
	return strings.HasPrefix(phc, "$2a$") || strings.HasPrefix(phc, "$2b$") || strings.HasPrefix(phc, "$2y$")
}
