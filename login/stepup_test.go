package login

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/comstockloan/idp/storage/storagetest"
)

// A refused S8 step-up with another customer's passkey (both on a shared
// PC) leaves that passkey exactly as it was: no last-used time, counter or
// flags written for a login that did not happen.
func TestS8StepUpWithAnotherUsersPasskeyWritesNothing(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		a, ua, _, _, ub, db := enrolledPair(t, flavor)
		before := a.credentials(ub)
		if len(before) != 1 {
			t.Fatalf("%d passkeys of the other customer", len(before))
		}
		ownBefore := a.credentials(ua)
		sessionBefore := a.cookie(sessionCookie)

		a.expect(a.assert(db, pathAccountStepUpOpt, pathAccountStepUpFin), http.StatusForbidden, `"code":"wrong_user"`)

		if after := a.credentials(ub); !reflect.DeepEqual(after, before) {
			t.Fatalf("the other customer's passkey changed:\nbefore %+v\nafter  %+v", before[0], after[0])
		}
		if after := a.credentials(ua); !reflect.DeepEqual(after, ownBefore) {
			t.Fatalf("the session user's passkey changed: %+v", after)
		}
		if a.cookie(sessionCookie) != sessionBefore {
			t.Fatal("a refused step-up renewed the session")
		}
		if !hasEvent(a.audit(), "login.failure", ua.ID, map[string]string{"reason": "step_up_other_user", "asserted_user": ub.ID}) {
			t.Fatal("no step_up_other_user audit event naming the asserted user")
		}
	})
}
