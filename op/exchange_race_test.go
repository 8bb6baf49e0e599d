package op_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// signOutAfterCodeRead is the real store, with the customer signed out
// everywhere right after the token endpoint has read the code: the
// interleaving of an exchange and a staff sign-out.
type signOutAfterCodeRead struct{ storage.Store }

func (s signOutAfterCodeRead) AuthRequestByCode(ctx context.Context, codeHash string) (*storage.AuthRequest, *storage.User, error) {
	ar, u, err := s.Store.AuthRequestByCode(ctx, codeHash)
	if err == nil {
		if _, err := s.EndUserAccess(ctx, ar.UserID, "", time.Now()); err != nil {
			return nil, nil, err
		}
	}
	return ar, u, err
}

// A sign-out everywhere that lands between the code's read and its
// exchange leaves the client invalid_grant and no tokens, never a 500.
func TestSignOutDuringTheExchangeIssuesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		st := storagetest.New(t, flavor)
		e := newEnvOn(t, signOutAfterCodeRead{st}, nil)
		pk := newPKCE()
		code := e.authorize(authParams(webClientID, webRedirect, "openid offline_access", pk)).Query().Get("code")
		tr := e.exchange(code, webRedirect, pk)
		if tr.status != http.StatusBadRequest || tr.Error != "invalid_grant" || tr.AccessToken != "" {
			t.Fatalf("exchange across a sign-out: %d %q access=%q, want 400 invalid_grant", tr.status, tr.Error, tr.AccessToken)
		}
		var issued int
		if err := st.DB().Get(&issued, `SELECT (SELECT COUNT(*) FROM access_tokens) + (SELECT COUNT(*) FROM refresh_tokens)`); err != nil {
			t.Fatal(err)
		}
		if issued != 0 {
			t.Fatalf("%d tokens stored by an exchange refused after the sign-out", issued)
		}
	})
}
