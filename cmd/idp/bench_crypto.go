package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/comstockloan/idp/login/password"
)

// cryptoOptions say how long each limit is measured and with which
// argon2id cost (the target's password section).
type cryptoOptions struct {
	each   time.Duration
	params password.Params
	cpus   int
}

func (o *cryptoOptions) register(fs *flag.FlagSet) {
	o.params = password.DefaultParams
	fs.DurationVar(&o.each, "crypto-time", time.Second, "how long each crypto limit is measured in this process (0: skip)")
	fs.Func("argon2id", fmt.Sprintf("the target's argon2id cost as m=KiB,t=N,p=N (default the server's, m=%d,t=%d,p=%d)",
		o.params.MemoryKiB, o.params.Iterations, o.params.Parallelism), func(s string) error {
		var p password.Params
		if _, err := fmt.Sscanf(s, "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil || p.MemoryKiB == 0 || p.Iterations == 0 || p.Parallelism == 0 {
			return fmt.Errorf("want m=KiB,t=N,p=N, got %q", s)
		}
		o.params = p
		return nil
	})
	fs.IntVar(&o.cpus, "crypto-cpus", runtime.NumCPU(), "goroutines measuring each limit: the CPUs the IdP has")
}

// cryptoLimits are operations per second on this machine with every CPU
// busy: what the IdP could do at most if it did nothing else.
type cryptoLimits struct {
	cpus       int
	each       time.Duration
	params     password.Params
	rs256      float64
	es256      float64
	p256Verify float64
	argon2id   float64
}

func (l cryptoLimits) sign(alg string) float64 {
	if alg == "ES256" {
		return l.es256
	}
	return l.rs256
}

func benchCrypto(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("idp bench crypto", stderr)
	var o cryptoOptions
	o.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.each <= 0 {
		return usagef("bench crypto: want a positive --crypto-time")
	}
	l, err := o.measure(ctx)
	if err != nil {
		return err
	}
	l.print(stdout)
	return nil
}

// measure runs each operation on all CPUs for o.each; nil when skipped.
func (o *cryptoOptions) measure(ctx context.Context) (*cryptoLimits, error) {
	if o.each <= 0 {
		return nil, nil
	}
	l := &cryptoLimits{cpus: max(o.cpus, 1), each: o.each, params: o.params}
	// The key sizes the IdP's signing keys have (op/keys.go).
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte("a header.a payload"))
	sig, err := ecdsa.SignASN1(rand.Reader, ecKey, digest[:])
	if err != nil {
		return nil, err
	}
	var failed atomic.Bool
	ops := []struct {
		rate *float64
		op   func()
	}{
		{&l.rs256, func() {
			if _, err := rsa.SignPKCS1v15(nil, rsaKey, crypto.SHA256, digest[:]); err != nil {
				failed.Store(true)
			}
		}},
		{&l.es256, func() {
			if _, err := ecdsa.SignASN1(rand.Reader, ecKey, digest[:]); err != nil {
				failed.Store(true)
			}
		}},
		{&l.p256Verify, func() {
			if !ecdsa.VerifyASN1(&ecKey.PublicKey, digest[:], sig) {
				failed.Store(true)
			}
		}},
		{&l.argon2id, func() {
			if _, err := password.Hash(o.params, "correct horse battery staple"); err != nil {
				failed.Store(true)
			}
		}},
	}
	for _, op := range ops {
		*op.rate = rate(ctx, l.cpus, o.each, op.op)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if failed.Load() {
		return nil, fmt.Errorf("bench: a crypto operation failed while measuring")
	}
	return l, nil
}

// rate is how many times per second cpus goroutines manage op: the best
// of five slices of d, since on a shared machine a neighbour's burst would
// otherwise lower the limit and flatter the IdP's share of it.
func rate(ctx context.Context, cpus int, d time.Duration, op func()) float64 {
	best := 0.0
	for range 5 {
		best = max(best, rateOnce(ctx, cpus, d/5, op))
	}
	return best
}

func rateOnce(ctx context.Context, cpus int, d time.Duration, op func()) float64 {
	var n atomic.Int64
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for range cpus {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				op()
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

func (l *cryptoLimits) print(w io.Writer) {
	if l == nil {
		fmt.Fprintln(w, "crypto limits: not measured (--crypto-time 0)")
		return
	}
	fmt.Fprintf(w, "crypto limits (%d goroutines, %v each, load average %s): RS256 sign %.0f/s, ES256 sign %.0f/s, P-256 verify %.0f/s, argon2id (m=%d,t=%d,p=%d) %.1f/s\n",
		l.cpus, l.each, loadAverage(), l.rs256, l.es256, l.p256Verify, l.params.MemoryKiB, l.params.Iterations, l.params.Parallelism, l.argon2id)
}
