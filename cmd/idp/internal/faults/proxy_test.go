package faults

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Headers between the proxy and the test's clients.
const (
	// pinHeader sends a request to one replica (by index) instead of the
	// next one; the proxy removes it.
	pinHeader = "X-Faults-Pin"
	// replicaHeader names the replica (index) that answered, or the one
	// the proxy failed to reach.
	replicaHeader = "X-Faults-Replica"
	// proxyErrorHeader marks a 502 the proxy made itself because the
	// replica could not answer (dead, or died mid-request).
	proxyErrorHeader = "X-Faults-Proxy-Error"
)

// roundRobin is the load balancer in front of the replicas. Each client
// address gets the next replica for every request, so consecutive steps
// of one browser's flow never land on the same replica while all are up.
// A replica that refuses the connection (dead, or draining with its
// listener closed) is skipped, as a load balancer does; any other failure
// is a 502 to the client.
type roundRobin struct {
	backends  []string
	transport *http.Transport

	mu   sync.Mutex
	next map[string]int
	hits map[int]int
}

func newRoundRobin(backends []string) *roundRobin {
	return &roundRobin{
		backends: backends,
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
		next: map[string]int{},
		hits: map[int]int{},
	}
}

func (p *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "proxy: unreadable body", http.StatusBadRequest)
		return
	}
	order := p.order(r)
	for i, idx := range order {
		out := r.Clone(r.Context())
		out.Header.Del(pinHeader)
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		refused := false
		target := &url.URL{Scheme: "http", Host: p.backends[idx]}
		rp := &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host // the issuer's host, as a load balancer keeps it
				pr.SetXForwarded()
			},
			Transport: p.transport,
			ModifyResponse: func(res *http.Response) error {
				res.Header.Set(replicaHeader, strconv.Itoa(idx))
				p.count(idx)
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				if errors.Is(err, syscall.ECONNREFUSED) && i < len(order)-1 {
					refused = true
					return
				}
				w.Header().Set(replicaHeader, strconv.Itoa(idx))
				w.Header().Set(proxyErrorHeader, err.Error())
				w.WriteHeader(http.StatusBadGateway)
			},
		}
		rp.ServeHTTP(w, out)
		if !refused {
			return
		}
	}
}

// order lists the replicas to try: the pinned one, or all of them from
// this client's next one on.
func (p *roundRobin) order(r *http.Request) []int {
	if pin := r.Header.Get(pinHeader); pin != "" {
		idx, err := strconv.Atoi(pin)
		if err == nil && idx >= 0 && idx < len(p.backends) {
			return []int{idx}
		}
	}
	client, _, _ := net.SplitHostPort(r.RemoteAddr)
	p.mu.Lock()
	first := p.next[client]
	p.next[client] = (first + 1) % len(p.backends)
	p.mu.Unlock()
	order := make([]int, len(p.backends))
	for i := range order {
		order[i] = (first + i) % len(p.backends)
	}
	return order
}

func (p *roundRobin) count(idx int) {
	p.mu.Lock()
	p.hits[idx]++
	p.mu.Unlock()
}

// answered is how many answers each replica gave through the proxy.
func (p *roundRobin) answered() map[int]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[int]int, len(p.hits))
	for k, v := range p.hits {
		out[k] = v
	}
	return out
}
