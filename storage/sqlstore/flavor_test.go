package sqlstore_test

import (
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

// Times go in in any zone and precision and come out in UTC, exact to the
// microsecond.
func TestTimesComeBackUTCMicroseconds(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		t.Parallel()
		s := storagetest.New(t, flavor)
		ctx := t.Context()
		jst := time.FixedZone("JST", 9*60*60)
		in := time.Now().In(jst).Add(time.Hour).Round(0)
		in = in.Add(time.Duration(789 - in.Nanosecond()%1000)) // sub-microsecond digits to drop
		if err := s.CreateLoginFlow(ctx, &storage.LoginFlow{ID: "f", CreatedAt: in, ExpiresAt: in, OTPSentAt: &in}); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := s.LoginFlowByID(ctx, "f")
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		want := in.UTC().Truncate(time.Microsecond)
		for name, tm := range map[string]time.Time{"created": got.CreatedAt, "expires": got.ExpiresAt, "otp sent": *got.OTPSentAt} {
			if tm != want {
				t.Errorf("%s: got %v (%v), want %v", name, tm, tm.Location(), want)
			}
		}
	})
}
