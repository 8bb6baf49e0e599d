package password

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy is returned by Limiter.Acquire when every hashing slot is taken
// and the queue is full, or the wait ran out: the caller answers 429 at
// once instead of holding the request (and its memory) open.
var ErrBusy = errors.New("password: hashing capacity exhausted")

// Limiter bounds how many argon2id computations run at once. Each one
// allocates the full memory cost (19 MiB at the defaults), so an unbounded
// password spray turns into gigabytes of heap and a server that answers no
// one; with the bound, memory stays near slots × cost and the rest of the
// server (passkey logins, tokens) keeps its CPU.
type Limiter struct {
	slots   chan struct{}
	waiting atomic.Int64
	queue   int64
	maxWait time.Duration
	// running counts computations in progress, for tests and metrics.
	running atomic.Int64
	peak    atomic.Int64
}

// LimiterConfig sizes a Limiter. Zero fields take the defaults of
// LimiterFor.
type LimiterConfig struct {
	// MemoryBudget is the heap, in bytes, that concurrent hashes may use.
	MemoryBudget int64
	// Queue is how many requests may wait for a slot; beyond it, ErrBusy.
	Queue int
	// MaxWait is how long a queued request waits before ErrBusy.
	MaxWait time.Duration
}

// DefaultMaxWait keeps a queued login well inside any proxy timeout.
const DefaultMaxWait = 2 * time.Second

// NewLimiter sizes the limiter from cfg and the hash cost p: as many slots
// as the memory budget holds, but no more than half the CPUs, so that a
// spray leaves the other half to passkey logins and tokens, and at least
// one. The default budget is an
// eighth of the memory this process may use (cgroup limit, else physical
// memory), at most 1 GiB; the default queue is four waiters per slot.
func NewLimiter(cfg LimiterConfig, p Params) *Limiter {
	budget := cfg.MemoryBudget
	if budget <= 0 {
		budget = defaultBudget()
	}
	per := int64(p.MemoryKiB) * 1024
	if per <= 0 {
		per = 1
	}
	n := int(budget / per)
	n = min(n, (runtime.GOMAXPROCS(0)+1)/2)
	n = max(n, 1)
	queue := cfg.Queue
	if queue <= 0 {
		queue = 4 * n
	}
	wait := cfg.MaxWait
	if wait <= 0 {
		wait = DefaultMaxWait
	}
	return &Limiter{slots: make(chan struct{}, n), queue: int64(queue), maxWait: wait}
}

// Slots is the number of hashes that may run at once.
func (l *Limiter) Slots() int { return cap(l.slots) }

// Waiting is the number of requests queued for a slot now.
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Peak is the highest number of hashes that ran at once so far.
func (l *Limiter) Peak() int { return int(l.peak.Load()) }

// Slot is one hashing slot, held from Acquire to Release. The verifier's
// computations take it as an argument, so none can run outside the bound.
type Slot struct {
	l    *Limiter
	once sync.Once
}

// Release gives the slot back; later calls do nothing.
func (s *Slot) Release() {
	s.once.Do(func() {
		s.l.running.Add(-1)
		<-s.l.slots
	})
}

// Acquire takes a slot, waiting in the queue at most MaxWait. ErrBusy
// means no slot: answer 429 at once, before any other work.
func (l *Limiter) Acquire(ctx context.Context) (*Slot, error) {
	select {
	case l.slots <- struct{}{}:
		return l.took(), nil
	default:
	}
	if l.waiting.Add(1) > l.queue {
		l.waiting.Add(-1)
		return nil, ErrBusy
	}
	defer l.waiting.Add(-1)
	t := time.NewTimer(l.maxWait)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.took(), nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ErrBusy
	}
}

func (l *Limiter) took() *Slot {
	n := l.running.Add(1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return &Slot{l: l}
}

const maxDefaultBudget = 1 << 30

// defaultBudget is an eighth of the memory available to the process.
func defaultBudget() int64 {
	avail := cgroupMemoryLimit()
	if avail <= 0 {
		avail = physicalMemory()
	}
	if avail <= 0 {
		return 256 << 20
	}
	return min(avail/8, maxDefaultBudget)
}

// cgroupMemoryLimit reads the container's limit (cgroup v2); 0 when there
// is none.
func cgroupMemoryLimit() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil { // "max": unlimited
		return 0
	}
	return n
}

// physicalMemory reads MemTotal from /proc/meminfo; 0 elsewhere.
func physicalMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			kib, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0
			}
			return kib * 1024
		}
	}
	return 0
}
