package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func BenchmarkTakeWebAuthnSession(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			s := storagetest.New(b, flavor)
			ctx := context.Background()
			n := time.Now()
			for i := 0; b.Loop(); i++ {
				ch := fmt.Sprint("challenge-", i)
				if err := s.SaveWebAuthnSession(ctx, &storage.WebAuthnSession{Challenge: ch, Ceremony: "login", CreatedAt: n, ExpiresAt: n.Add(time.Minute)}); err != nil {
					b.Fatal(err)
				}
				if _, err := s.TakeWebAuthnSession(ctx, ch, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
