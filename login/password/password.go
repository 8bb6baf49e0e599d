// Package password hashes and verifies login passwords.
//
// New hashes are argon2id in the PHC string format. Hashes imported from the
// previous system may be bcrypt ($2a$/$2b$/$2y$) and still verify.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

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
	case strings.HasPrefix(phc, "$2a$"), strings.HasPrefix(phc, "$2b$"), strings.HasPrefix(phc, "$2y$"):
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
// work either way so that response time does not tell whether a login ID is
// known (SPEC rule 7).
type Verifier struct {
	dummy string
}

// NewVerifier precomputes a dummy hash with the given params.
func NewVerifier(p Params) (*Verifier, error) {
	buf := make([]byte, 18)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("password: dummy secret: %w", err)
	}
	dummy, err := Hash(p, b64.EncodeToString(buf))
	if err != nil {
		return nil, fmt.Errorf("password: dummy hash: %w", err)
	}
	return &Verifier{dummy: dummy}, nil
}

// Verify checks pw against phc; when phc is empty (unknown user) it checks
// against the dummy hash and always reports false.
func (v *Verifier) Verify(phc, pw string) (bool, error) {
	if phc == "" {
		_, err := Verify(v.dummy, pw)
		return false, err
	}
	return Verify(phc, pw)
}
