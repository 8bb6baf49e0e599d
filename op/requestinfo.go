package op

import (
	"context"
	"net"
	"net/http"
	"strings"
)

// requestInfo is what guard learns about a request before zitadel runs,
// for the storage methods zitadel calls with only a context.
type requestInfo struct {
	addr string // the client address the throttles key on
	// verified is the client ID and secret guard has checked, so that
	// zitadel's own check of the same pair costs nothing.
	verified *presentedSecret
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, info *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, info)
}

// requestInfoFrom never returns nil: a call that did not pass guard has an
// empty address.
func requestInfoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{}
}

// clientAddress is the address throttles use. Behind a load balancer
// (trustProxy) it is the last X-Forwarded-For entry: the one our own proxy
// appended, which a client cannot forge. The same rule as package login's,
// so one address is one address for every throttle.
func clientAddress(r *http.Request, trustProxy bool) string {
	if trustProxy {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			// Only an address: a misconfigured proxy passing the
			// client's header through must not put arbitrary text into
			// throttle keys.
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
