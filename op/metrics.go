package op

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// metrics count what the token endpoint hands out. They are counted from
// the answer (guard sees its final status), not where tokens are stored:
// a token stored for an answer that then failed never reached a client.
type metrics struct {
	tokens *prometheus.CounterVec
}

// newMetrics registers the counters on reg; with a nil reg they count
// without being exported (tests).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "idp_tokens_issued_total",
		Help: "Successful token endpoint answers by grant type (authorization_code, refresh_token).",
	}, []string{"grant"})}
	if reg != nil {
		if err := reg.Register(m.tokens); err != nil {
			return nil, fmt.Errorf("op metrics: %w", err)
		}
	}
	return m, nil
}

// answered counts a request guard has passed to zitadel, once its status
// is known.
func (m *metrics) answered(r *http.Request, status int) {
	if r.URL.Path != pathToken || status != http.StatusOK {
		return
	}
	grant := r.Form.Get("grant_type")
	switch grant {
	case string(oidc.GrantTypeCode), string(oidc.GrantTypeRefreshToken):
	default:
		grant = "other" // never a client-chosen label value
	}
	m.tokens.WithLabelValues(grant).Inc()
}

// Endpoint reports whether path is one of the provider's endpoints, so that
// HTTP metrics can label a request to the provider's catch-all route by its
// path without letting arbitrary paths become labels.
func Endpoint(path string) bool {
	_, ok := allowedMethods[path]
	return ok
}
