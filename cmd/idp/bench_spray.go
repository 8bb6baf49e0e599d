package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// benchSpray is a password spray with passkey logins probing the server's
// responsiveness beside it.
func benchSpray(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench spray", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s spray
	fs.StringVar(&s.issuer, "issuer", "http://localhost:8080", "the IdP's issuer URL")
	fs.StringVar(&s.clientID, "client-id", "demo-rp", "a registered client")
	fs.StringVar(&s.redirectURI, "redirect-uri", "http://localhost:8081/callback", "one of the client's redirect URIs")
	fs.IntVar(&s.requests, "requests", 300, "wrong-password posts in the spray")
	fs.IntVar(&s.concurrency, "concurrency", 300, "spray posts in flight at once")
	fs.IntVar(&s.probes, "probes", 2, "workers calling the passkey login options endpoint during the spray")
	fs.DurationVar(&s.timeout, "timeout", 30*time.Second, "per-request timeout (an unanswered request counts as lost)")
	fs.BoolVar(&s.spreadAddresses, "spread-addresses", false, "send a different X-Forwarded-For per request (needs trust_proxy_headers: a spray from many addresses)")
	fs.IntVar(&s.pid, "pid", 0, "the IdP's process ID on this machine, to report its peak RSS (VmHWM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rep, err := s.run(ctx)
	if err != nil {
		return err
	}
	rep.print(stdout)
	return nil
}

type spray struct {
	issuer, clientID, redirectURI string
	requests, concurrency, probes int
	timeout                       time.Duration
	spreadAddresses               bool
	pid                           int
}

type sprayReport struct {
	statuses      map[string]int
	sprayLatency  []time.Duration
	probeLatency  []time.Duration
	probeStatuses map[string]int
	elapsed       time.Duration
	rssBefore     int64 // KiB, 0 when unknown
	peakRSS       int64
}

// browser is one cookie jar that has started an authorization request
// and holds its flow at S1.
func (s *spray) browser(ctx context.Context, n int) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: s.timeout}
	verifier := make([]byte, 32)
	_, _ = rand.Read(verifier)
	sum := sha256.Sum256([]byte(base64.RawURLEncoding.EncodeToString(verifier)))
	q := url.Values{
		"client_id": {s.clientID}, "redirect_uri": {s.redirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "state": {rand.Text()}, "nonce": {rand.Text()},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.issuer, "/")+"/authorize?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	s.address(req, n)
	res, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasSuffix(res.Request.URL.Path, "/login") {
		return nil, fmt.Errorf("authorize ended at %s with %d, want the login page", res.Request.URL, res.StatusCode)
	}
	return c, nil
}

func (s *spray) address(req *http.Request, n int) {
	if s.spreadAddresses {
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff))
	}
}

func (s *spray) post(ctx context.Context, c *http.Client, path, contentType, body string, n int) (string, time.Duration) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.issuer, "/")+path, strings.NewReader(body))
	if err != nil {
		return "error", 0
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Origin", strings.TrimSuffix(s.issuer, "/"))
	s.address(req, n)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	t0 := time.Now()
	res, err := c.Do(req)
	d := time.Since(t0)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "Timeout") {
			return "timeout", d
		}
		return "error", d
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return strconv.Itoa(res.StatusCode), d
}

func (s *spray) run(ctx context.Context) (*sprayReport, error) {
	rep := &sprayReport{statuses: map[string]int{}, probeStatuses: map[string]int{}}
	rep.rssBefore = rssKiB(s.pid, "VmRSS")
	// Every browser first reaches S1, so the spray measures the password
	// check, not the authorization request.
	browsers := make([]*http.Client, s.requests)
	for i := range browsers {
		c, err := s.browser(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("browser %d: %w", i, err)
		}
		browsers[i] = c
	}
	probes := make([]*http.Client, s.probes)
	for i := range probes {
		c, err := s.browser(ctx, s.requests+i)
		if err != nil {
			return nil, fmt.Errorf("probe %d: %w", i, err)
		}
		probes[i] = c
	}
	var mu sync.Mutex
	done := make(chan struct{})
	var probesWG sync.WaitGroup
	for i, c := range probes {
		probesWG.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				st, d := s.post(ctx, c, "/login/passkey/login/options", "application/json", `{}`, s.requests+i)
				mu.Lock()
				rep.probeStatuses[st]++
				rep.probeLatency = append(rep.probeLatency, d)
				mu.Unlock()
			}
		})
	}
	sem := make(chan struct{}, s.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range browsers {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			form := url.Values{"loginID": {fmt.Sprintf("spray-%06d", i)}, "password": {"not-the-password"}}
			st, d := s.post(ctx, c, "/login", "application/x-www-form-urlencoded", form.Encode(), i)
			mu.Lock()
			rep.statuses[st]++
			rep.sprayLatency = append(rep.sprayLatency, d)
			mu.Unlock()
		})
	}
	wg.Wait()
	rep.elapsed = time.Since(start)
	close(done)
	probesWG.Wait()
	rep.peakRSS = rssKiB(s.pid, "VmHWM")
	return rep, nil
}

func (r *sprayReport) print(w io.Writer) {
	total, answered := 0, 0
	for st, n := range r.statuses {
		total += n
		if st != "timeout" && st != "error" {
			answered += n
		}
	}
	fmt.Fprintf(w, "spray: %d posts in %v, answered %d (%.1f%%), statuses %v\n",
		total, r.elapsed.Round(time.Millisecond), answered, 100*float64(answered)/float64(max(total, 1)), r.statuses)
	fmt.Fprintf(w, "spray latency: p50 %v p99 %v max %v\n", percentile(r.sprayLatency, 0.5).Round(time.Millisecond),
		percentile(r.sprayLatency, 0.99).Round(time.Millisecond), percentile(r.sprayLatency, 1).Round(time.Millisecond))
	fmt.Fprintf(w, "passkey options during the spray: %d calls, statuses %v, p50 %v p99 %v\n", len(r.probeLatency), r.probeStatuses,
		percentile(r.probeLatency, 0.5).Round(time.Millisecond), percentile(r.probeLatency, 0.99).Round(time.Millisecond))
	if r.peakRSS > 0 {
		fmt.Fprintf(w, "server RSS: %d MiB before, peak %d MiB\n", r.rssBefore/1024, r.peakRSS/1024)
	}
}
