package sqlstore

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// SQLite's writers get the one writer in the order they asked: each
// writer queues only once the one before it waits, and the turn goes to
// them in that order.
func TestSQLiteWritersTakeTurnsInOrder(t *testing.T) {
	s, err := Open(t.Context(), "sqlite:"+filepath.Join(t.TempDir(), "turns.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const writers = 8
	hold, err := s.takeWriteTurn(t.Context(), "UPDATE x")
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan int, writers)
	for i := range writers {
		go func() {
			release, err := s.takeWriteTurn(context.Background(), "INSERT INTO x")
			if err != nil {
				order <- -1
				return
			}
			order <- i
			release()
		}()
		waitForWriters(t, i+1)
	}
	// A read never waits for a writer's turn.
	if release, err := s.takeWriteTurn(t.Context(), "SELECT 1"); err != nil {
		t.Fatal(err)
	} else {
		release()
	}
	hold()
	for want := range writers {
		if got := <-order; got != want {
			t.Fatalf("writer %d got the turn when writer %d was next", got, want)
		}
	}
}

// waitForWriters polls (bounded, no time asserted) until n goroutines wait
// in takeWriteTurn.
func waitForWriters(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for range 10000 {
		dump := string(buf[:runtime.Stack(buf, true)])
		waiting := 0
		for _, g := range strings.Split(dump, "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "takeWriteTurn") {
				waiting++
			}
		}
		if waiting == n {
			return
		}
		runtime.Gosched()
	}
	t.Fatalf("never saw %d writers waiting for their turn", n)
}
