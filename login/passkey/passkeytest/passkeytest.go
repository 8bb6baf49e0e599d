// Package passkeytest holds helpers for tests that play an authenticator:
// with descope/virtualwebauthn (passkeytest.go), or in headless Chromium with
// its virtual authenticator (chromium.go).
package passkeytest

import (
	"crypto/ecdsa"
	"crypto/x509"

	"github.com/descope/virtualwebauthn"
)

// NewCredential returns a P-256 credential whose public key virtualwebauthn
// encodes correctly. It writes the key's coordinates with big.Int.Bytes,
// which drops leading zero bytes, so about one key in 128 would be refused by
// a conforming server ("x or y coordinate has invalid length") and make a
// test flaky; such keys are drawn again.
func NewCredential() virtualwebauthn.Credential {
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		parsed, err := x509.ParsePKCS8PrivateKey(cred.Key.Data)
		if err != nil {
			panic("passkeytest: virtualwebauthn key is not PKCS#8: " + err.Error())
		}
		k := parsed.(*ecdsa.PrivateKey)
		if len(k.X.Bytes()) == 32 && len(k.Y.Bytes()) == 32 {
			return cred
		}
	}
}
