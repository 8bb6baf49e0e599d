package login

import (
	"context"
	"fmt"

	"github.com/comstockloan/idp/storage/audit"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage"
)

// metrics count the login events an operator graphs and alerts on. Logins
// and one-time passwords are counted from the audit events (audited), so
// the dashboard and the trail never disagree; ceremonies are counted
// around the passkey calls (countedPasskeys), since a failed registration
// is logged, not audited. Every label value comes from this package's
// constants, never from a request.
type metrics struct {
	logins     *prometheus.CounterVec
	otpSent    prometheus.Counter
	otpFailed  *prometheus.CounterVec
	ceremonies *prometheus.CounterVec
}

// newMetrics registers the counters and the password-hashing gauges on
// reg; with a nil reg they count without being exported (tests).
func newMetrics(reg prometheus.Registerer, limiter *password.Limiter) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_logins_total",
			Help: "Sign-in attempts by method (passkey, password, password+otp) and result (success, failure, throttled); reason is the audit reason of a failure.",
		}, []string{"method", "result", "reason"}),
		otpSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "idp_otp_sent_total",
			Help: "One-time passwords handed to the mail relay.",
		}),
		otpFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_otp_failed_total",
			Help: "One-time password failures by reason: mail_failed (the relay refused), wrong_code, send_limit (hourly cap reached).",
		}, []string{"reason"}),
		ceremonies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "idp_webauthn_ceremonies_total",
			Help: "Finished WebAuthn ceremonies by kind (login, step_up, registration) and result (success, failure).",
		}, []string{"ceremony", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	collectors := []prometheus.Collector{m.logins, m.otpSent, m.otpFailed, m.ceremonies,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idp_password_hash_slots",
			Help: "Password hashes that may run at once on this replica.",
		}, func() float64 { return float64(limiter.Slots()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idp_password_hash_queue_depth",
			Help: "Password checks waiting for a hashing slot now.",
		}, func() float64 { return float64(limiter.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "idp_password_hash_peak_running",
			Help: "Highest number of password hashes that ran at once since start-up.",
		}, func() float64 { return float64(limiter.Peak()) }),
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("login metrics: %w", err)
		}
	}
	return m, nil
}

// audited counts what an audit event says about logins and one-time
// passwords.
func (m *metrics) audited(ev audit.Event, detail audit.Detail) {
	switch ev {
	case audit.LoginSuccess:
		m.logins.WithLabelValues(detail[audit.KeyMethod], "success", "").Inc()
	case audit.LoginFailure:
		m.logins.WithLabelValues(detail[audit.KeyMethod], "failure", detail[audit.KeyReason]).Inc()
	case audit.LoginThrottled:
		m.logins.WithLabelValues(methodPassword, "throttled", "").Inc()
	case audit.OTPSent:
		m.otpSent.Inc()
	case audit.OTPFailed:
		m.otpFailed.WithLabelValues(detail[audit.KeyReason]).Inc()
	case audit.OTPThrottled:
		m.otpFailed.WithLabelValues("send_limit").Inc()
	}
}

// countedPasskeys counts the outcome of every finished ceremony; the
// embedded Passkeys answers everything else.
type countedPasskeys struct {
	Passkeys
	m *metrics
}

func (c countedPasskeys) count(ceremony string, err error) {
	result := "success"
	if err != nil {
		result = "failure"
	}
	c.m.ceremonies.WithLabelValues(ceremony, result).Inc()
}

func (c countedPasskeys) FinishLogin(ctx context.Context, flowID string, assertionJSON []byte) (*PasskeyLogin, error) {
	res, err := c.Passkeys.FinishLogin(ctx, flowID, assertionJSON)
	c.count("login", err)
	return res, err
}

func (c countedPasskeys) FinishStepUp(ctx context.Context, flowID, userID string, assertionJSON []byte) (*PasskeyLogin, error) {
	res, err := c.Passkeys.FinishStepUp(ctx, flowID, userID, assertionJSON)
	c.count("step_up", err)
	return res, err
}

func (c countedPasskeys) FinishRegistration(ctx context.Context, user *storage.User, flowID string, attestationJSON []byte, onlyIfFirst bool) (*storage.Credential, error) {
	cred, err := c.Passkeys.FinishRegistration(ctx, user, flowID, attestationJSON, onlyIfFirst)
	c.count("registration", err)
	return cred, err
}
