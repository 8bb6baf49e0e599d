package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

func BenchmarkCreateLoginFlow(b *testing.B) {
	for _, flavor := range storagetest.Flavors() {
		b.Run(flavor, func(b *testing.B) {
			s := storagetest.New(b, flavor)
			ctx := context.Background()
			n := time.Now()
			for i := 0; b.Loop(); i++ {
				f := &storage.LoginFlow{ID: fmt.Sprint("flow-", i), Step: "start", Version: 1, CreatedAt: n, ExpiresAt: n.Add(time.Hour)}
				if err := s.CreateLoginFlow(ctx, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
