package op

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/comstockloan/idp/storage/storagetest"
)

// The cache of a verified secret lets only that exact secret skip bcrypt;
// unknown and public clients never pass.
func TestSecretCheckerCache(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		const right = "the-right-secret-of-32-characters"
		hash, err := bcrypt.GenerateFromPassword([]byte(right), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{
			Clients: []ClientConfig{{ID: "web", SecretHash: string(hash)}, {ID: "spa", Public: true}},
			Throttle: Throttle{Window: time.Minute, MaxSecretFailuresPerClient: 100,
				MaxSecretFailuresPerAddress: 100, MaxConcurrentSecretChecks: 2},
		}
		clients := map[string]*client{}
		for _, c := range cfg.Clients {
			clients[c.ID] = &client{cfg: c}
		}
		var compared int
		sc, err := newSecretChecker(cfg, storagetest.New(t, flavor), slog.New(slog.NewTextHandler(io.Discard, nil)),
			func() time.Time { return time.Now().UTC() }, clients)
		if err != nil {
			t.Fatal(err)
		}
		sc.hook = func() { compared++ }
		for i, tc := range []struct {
			id, secret string
			want       secretOutcome
			bcrypt     bool
		}{
			{"web", "wrong", secretWrong, true},
			{"web", right, secretOK, true},
			{"web", right, secretOK, false}, // remembered
			{"web", right[:len(right)-1] + "z", secretWrong, true},
			{"web", "", secretWrong, true},
			{"nobody", right, secretWrong, true},
			{"spa", "", secretWrong, false},
			{"spa", right, secretWrong, false},
		} {
			before := compared
			got, err := sc.check(t.Context(), "192.0.2.1", tc.id, tc.secret)
			if err != nil || got != tc.want {
				t.Errorf("case %d (%s, %q): %v, %v, want %v", i, tc.id, tc.secret, got, err, tc.want)
			}
			if ran := compared > before; ran != tc.bcrypt {
				t.Errorf("case %d (%s, %q): bcrypt ran %v, want %v", i, tc.id, tc.secret, ran, tc.bcrypt)
			}
		}
		if cost, err := bcrypt.Cost(sc.dummyHash); err != nil || cost != bcrypt.MinCost {
			t.Errorf("dummy hash cost %d (%v), want the clients' %d", cost, err, bcrypt.MinCost)
		}
	})
}
