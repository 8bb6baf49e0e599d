package storagetest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy stands between a store and its PostgreSQL cluster, so a test can
// take the database away: Cut refuses and drops every connection (a
// restart or failover), Hang accepts them and never answers (a
// black-holing network), Resume forwards again on the same address.
type Proxy struct {
	t      testing.TB
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

// PostgresBehindProxy is DSN(t, "postgres") reached through a Proxy.
func PostgresBehindProxy(t testing.TB) (string, *Proxy) {
	t.Helper()
	u, err := url.Parse(DSN(t, "postgres"))
	if err != nil {
		t.Fatalf("storagetest: parse dsn: %v", err)
	}
	p := &Proxy{t: t, target: u.Host}
	p.listen("127.0.0.1:0", false)
	t.Cleanup(p.Cut)
	u.Host = p.addr
	return u.String(), p
}

// Cut refuses new connections and closes every open one.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Hang cuts, then accepts connections on the same address and never
// answers them.
func (p *Proxy) Hang() { p.Cut(); p.listen(p.addr, true) }

// Resume cuts, then forwards again on the same address.
func (p *Proxy) Resume() { p.Cut(); p.listen(p.addr, false) }

func (p *Proxy) listen(addr string, hang bool) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatalf("storagetest: proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if hang {
				continue // held open, never answered, closed by Cut
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}
