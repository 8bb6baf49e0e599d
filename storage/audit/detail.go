package audit

import (
	"encoding/base64"
	"fmt"

	"github.com/comstockloan/idp/storage"
)

// Detail is the free-form part of an event, under typed keys.
type Detail map[Key]string

// WithAccessEnded adds what storage.Store.EndUserAccess ended to d (a new
// Detail when d is nil) and returns it: every event that ends a user's
// sessions and tokens, on S8 or by staff, says so with the same keys.
func (d Detail) WithAccessEnded(a storage.AccessEnded) Detail {
	if d == nil {
		d = Detail{}
	}
	d[KeySessionsEnded] = fmt.Sprint(a.Sessions)
	d[KeyRefreshTokensRevoked] = fmt.Sprint(a.RefreshTokens)
	d[KeyAccessTokensRevoked] = fmt.Sprint(a.AccessTokens)
	return d
}

// Credential is how the trail names a passkey under KeyCredential: the
// base64url form `idp users show` prints and `delete-passkeys --id` takes.
func Credential(id []byte) string {
	return base64.RawURLEncoding.EncodeToString(id)
}

// stored is d with the stored keys; nil stays nil (the store writes {}).
// A key outside Keys is an error, but the rest is kept for the log line.
func (d Detail) stored() (map[string]string, error) {
	if d == nil {
		return nil, nil
	}
	var err error
	out := make(map[string]string, len(d))
	for k, v := range d {
		if !k.valid() {
			err = fmt.Errorf("detail key %s is not one of audit.Keys", k)
			continue
		}
		out[k.String()] = v
	}
	return out, err
}
