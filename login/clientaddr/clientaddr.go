// Package clientaddr names the client of a request the way throttles and
// the audit trail must see it, for the login pages and the OP alike.
package clientaddr

import (
	"net"
	"net/http"
	"strings"
)

// Of is the client's address. Behind a load balancer (trustProxy) it is the
// last X-Forwarded-For entry: the one our own proxy appended, which a
// client cannot forge. Only an IP address counts: a misconfigured proxy
// passing the client's header through must not put arbitrary text into
// throttle keys and the audit trail, so anything else falls back to the
// peer.
func Of(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip := net.ParseIP(strings.TrimSpace(last)); ip != nil {
				return ip.String()
			}
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
