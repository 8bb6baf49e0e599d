package login

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// rateOTPSend is the rate-event kind of an OTP mail, keyed by user ID, for
// the hourly resend limit across flows and replicas.
const rateOTPSend = "otp_send"

// otpHash is what the flow stores of its code: an HMAC under OTPKey,
// bound to the flow so equal codes of two flows never share a value. Six
// digits are a million guesses, so a plain hash would give every live code
// to anyone who can read login_flows; the key is not in the database.
func (h *Handler) otpHash(flowID, code string) string {
	m := hmac.New(sha256.New, h.cfg.OTPKey)
	m.Write([]byte(flowID + ":" + code))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// otpKeyInfo separates the code key from the other keys of crypto_key.
const otpKeyInfo = "comstockloan idp one-time password v1"

// OTPKey derives Config.OTPKey from the deployment's secret (crypto_key),
// so every replica agrees.
func OTPKey(secret []byte) ([]byte, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("otp key: secret has %d bytes, want at least 32", len(secret))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, otpKeyInfo, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("otp key: %w", err)
	}
	return key, nil
}

func newOTP() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("generating one-time password: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// issueOTP stores a new code on the flow and mails it to the user's address
// 1. It returns a status and catalogue key when the customer must be told
// something (throttled, mail failed); ("", 0) on success.
func (h *Handler) issueOTP(r *http.Request, f *storage.LoginFlow, user *storage.User) (int, string) {
	ctx := r.Context()
	now := h.now()
	sent, err := h.store.CountRateEvents(ctx, rateOTPSend, user.ID, now.Add(-time.Hour))
	if err != nil {
		h.log.ErrorContext(ctx, "counting OTP sends", "user", user.ID, "err", err)
		return errorStatus(err), "err.internal"
	}
	// The hourly cap counts every flow; the once-a-minute resend interval is
	// per flow only (postOTPResend). Holding it across flows would strand a
	// customer who restarts 「パスキー初回登録」 within a minute at S4 without
	// a code, to stop a burst that needs the password every time and is
	// bounded by this cap anyway.
	if sent >= h.cfg.OTP.MaxSendsPerHour {
		h.log.WarnContext(ctx, "OTP send limit reached", "user", user.ID, "sent_last_hour", sent)
		h.audit(r, audit.OTPThrottled, user.ID, nil)
		return http.StatusTooManyRequests, "err.resend_limit"
	}
	code, err := newOTP()
	if err != nil {
		h.log.ErrorContext(ctx, "issuing OTP", "err", err)
		return http.StatusInternalServerError, "err.internal"
	}
	f.OTPHash = h.otpHash(f.ID, code)
	f.OTPExpiresAt = timePtr(now.Add(h.cfg.OTP.Lifetime))
	f.OTPAttempts = 0
	f.OTPSentAt = timePtr(now)
	if err := h.updateFlow(r, f); err != nil {
		h.log.InfoContext(ctx, "storing OTP on flow", "err", err)
		if errors.Is(err, storage.ErrConflict) {
			return http.StatusConflict, "err.conflict"
		}
		return errorStatus(err), "err.internal"
	}
	// Record before sending: a relay that accepts and then errors must
	// still count against the hourly limit.
	if err := h.store.RecordRateEvent(ctx, rateOTPSend, user.ID, now); err != nil {
		h.log.ErrorContext(ctx, "recording OTP send", "user", user.ID, "err", err)
	}
	// The body follows the page language; the subject stays the configured
	// one, which the FAQ (S9) tells customers to look for in both languages.
	lang := languageFrom(ctx)
	msg := mail.Message{
		To:      user.Email,
		Subject: h.cfg.OTP.Subject,
		Body: fmt.Sprintf(templates.Text(lang, "mail.otp_body"), code, int(h.cfg.OTP.Lifetime.Minutes()),
			h.cfg.Support.Phone, h.cfg.Support.Email, templates.Hours(lang, h.cfg.Support.Hours)),
	}
	if err := h.mailer.Send(ctx, msg); err != nil {
		// The error text comes from SMTP and the address; never the code.
		h.log.ErrorContext(ctx, "sending OTP mail failed", "user", user.ID, "err", err)
		h.audit(r, audit.OTPFailed, user.ID, audit.Detail{audit.KeyReason: "mail_failed"})
		f.OTPHash, f.OTPExpiresAt, f.OTPSentAt = "", nil, nil
		if uerr := h.updateFlow(r, f); uerr != nil {
			h.log.ErrorContext(ctx, "clearing unsent OTP", "err", uerr)
		}
		return http.StatusServiceUnavailable, "err.mail_failed"
	}
	h.audit(r, audit.OTPSent, user.ID, nil)
	h.log.InfoContext(ctx, "OTP sent", "user", user.ID, "to", maskEmail(user.Email))
	return 0, ""
}

// otpState says why the flow's code cannot be used, or "" when it can.
func (h *Handler) otpState(f *storage.LoginFlow) string {
	switch {
	case f.OTPHash == "" || f.OTPAttempts >= h.cfg.OTP.MaxAttempts:
		return "err.otp_dead"
	case f.OTPExpiresAt == nil || !h.now().Before(*f.OTPExpiresAt):
		return "err.otp_expired"
	}
	return ""
}

// getOTP is S4.
func (h *Handler) getOTP(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepOTP)
	if f == nil {
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	status, key := formStatus(h.takeFormError(r, f, pathOTP))
	h.renderOTP(w, r, status, f, user, key)
}

// otpRefused answers a code that could not be issued: a refusal shown by
// S4's GET, or our own failure at once.
// sendCode mails the code of a flow now at S4 and sends the browser there;
// a refused send (too soon, the hourly limit, the mail failing) is S4's
// refusal, shown by its GET.
func (h *Handler) sendCode(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User) {
	if status, key := h.issueOTP(r, f, user); key != "" {
		h.otpRefused(w, r, f, user, status, key)
		return
	}
	http.Redirect(w, r, pathOTP+"?sent=1", http.StatusSeeOther)
}

func (h *Handler) otpRefused(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User, status int, key string) {
	if key == "err.internal" {
		h.renderOTP(w, r, status, f, user, key)
		return
	}
	h.refuse(w, r, f, pathOTP, status, key, "")
}

func (h *Handler) renderOTP(w http.ResponseWriter, r *http.Request, status int, f *storage.LoginFlow, user *storage.User, errKey string) {
	dead := h.otpState(f)
	if errKey == "" {
		errKey = dead
	}
	p := &templates.Page{
		Title: "s4.title", Error: errKey, MaskedEmail: maskEmail(user.Email),
		OTPDead: dead != "", DevMailURL: h.cfg.DevMailURL,
		OfferSkip: offerSkippable(f),
	}
	if r.Method == http.MethodGet && r.URL.Query().Get("sent") == "1" && errKey == "" {
		p.Notice = "s4.sent"
	}
	if errKey == "err.otp_wrong" {
		p.ErrorArgs = []any{max(0, h.cfg.OTP.MaxAttempts-f.OTPAttempts)}
	}
	h.render(w, r, status, "otp", p)
}

const maxOTPRaces = 5

// postOTP checks the code. Every guess is counted: a guess that loses the
// optimistic-lock race re-reads the flow and is judged again against it.
func (h *Handler) postOTP(w http.ResponseWriter, r *http.Request) {
	// Like a password, a code guess is counted whether or not the client
	// waits for the verdict.
	r, cancel := detach(r)
	defer cancel()
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	f := h.flowAt(w, r, stepOTP)
	if f == nil {
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	code, ok := normalizeOTP(r.PostFormValue("code"))
	if !ok {
		h.log.InfoContext(ctx, "malformed OTP", "user", user.ID)
		h.refuse(w, r, f, pathOTP, http.StatusBadRequest, "err.otp_format", "")
		return
	}
	for range maxOTPRaces {
		if state := h.otpState(f); state != "" {
			h.log.InfoContext(ctx, "OTP no longer usable", "user", user.ID, "state", state)
			h.refuse(w, r, f, pathOTP, http.StatusBadRequest, state, "")
			return
		}
		now := h.now()
		right := subtle.ConstantTimeCompare([]byte(h.otpHash(f.ID, code)), []byte(f.OTPHash)) == 1
		d := decodeFlowData(f)
		completeNow := d.CodeRequired && !d.Offer
		if right {
			f.OTPHash, f.OTPExpiresAt = "", nil // single use
			f.OTPVerifiedAt = timePtr(now)
			if !completeNow {
				f.Step = stepCreate
			}
			setFormError(f, nil)
		} else {
			f.OTPAttempts++
			key := "err.otp_wrong"
			if f.OTPAttempts >= h.cfg.OTP.MaxAttempts {
				f.OTPHash = ""
				key = "err.otp_dead"
			}
			// The refusal S4's GET shows rides on the write that
			// counts the try.
			setFormError(f, &formError{Path: pathOTP, Key: key, Status: http.StatusUnauthorized})
		}
		var err error
		if right {
			err = h.advanceFlow(w, r, f)
		} else {
			err = h.updateFlow(r, f)
		}
		if errors.Is(err, storage.ErrConflict) {
			f, err = h.currentFlow(r)
			if err != nil || f.Step != stepOTP {
				h.log.InfoContext(ctx, "flow moved on during OTP check", "user", user.ID, "err", err)
				h.renderError(w, r, http.StatusConflict, "err.conflict", "")
				return
			}
			continue
		}
		if err != nil {
			h.conflictOrInternal(w, r, err)
			return
		}
		if right {
			h.audit(r, audit.OTPVerified, user.ID, nil)
			if f.Purpose == purposeEnrolLink {
				if err := h.enrolLinkVerified(r, user.ID, *f.OTPVerifiedAt); err != nil {
					h.internalError(w, r, "ending access after an enrolment link", err)
					return
				}
			}
			if completeNow {
				h.completeAfterCode(w, r, f, user)
				return
			}
			http.Redirect(w, r, pathCreate, http.StatusSeeOther)
			return
		}
		h.audit(r, audit.OTPFailed, user.ID, audit.Detail{audit.KeyReason: "wrong_code", audit.KeyAttempts: fmt.Sprint(f.OTPAttempts)})
		if f.OTPHash == "" {
			h.audit(r, audit.OTPLocked, user.ID, audit.Detail{audit.KeyAttempts: fmt.Sprint(f.OTPAttempts)})
			h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: methodPasswordOTP, audit.KeyReason: "otp_attempts"})
		}
		h.log.InfoContext(ctx, "wrong OTP", "user", user.ID, "attempts", f.OTPAttempts)
		http.Redirect(w, r, pathOTP, http.StatusSeeOther)
		return
	}
	h.log.WarnContext(ctx, "OTP check kept losing races", "user", user.ID)
	h.renderError(w, r, http.StatusConflict, "err.conflict", "")
}

// completeAfterCode ends a flow whose code the client's acr_values asked
// for: the login is password + code, now.
func (h *Handler) completeAfterCode(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User) {
	p, _, ok := h.authenticated(f)
	if !ok {
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return
	}
	h.finish(w, r, f, user, p)
}

// maxOTPInput bounds what normalizeOTP looks at: a pasted code with
// separators is a few dozen bytes at most.
const maxOTPInput = 64

// normalizeOTP turns what a customer may type or paste for the code into
// six ASCII digits: full-width digits (１２３４５６, what a Japanese IME
// gives) become ASCII, and spaces (ASCII, no-break and ideographic) and
// hyphens or dashes (including the IME's 「ー」) between groups are
// dropped, so 「123 456」 and 「１２３－４５６」 are the code 123456. The
// mapping is explicit rather than NFKC, which would also accept ① or ²
// as digits. Anything else is not a code (false), which the caller
// answers without counting a try.
func normalizeOTP(s string) (string, bool) {
	if len(s) > maxOTPInput {
		return "", false
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c >= '０' && c <= '９':
			b.WriteRune('0' + (c - '０'))
		case otpSeparator(c):
		default:
			return "", false
		}
	}
	if b.Len() != 6 {
		return "", false
	}
	return b.String(), true
}

// otpSeparator reports whether c may stand between the digits of a typed
// or pasted code.
func otpSeparator(c rune) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\u00a0', '\u3000', // spaces, no-break, ideographic
		'-', '\uff0d', '\u2010', '\u2011', '\u2012', '\u2013', '\u2014', '\u2212', // hyphens, dashes, minus
		'\u30fc', '\uff70': // 「ー」 full- and half-width, what an IME types for "-"
		return true
	}
	return false
}

// postOTPResend is 「再送信」, throttled per flow and per user.
func (h *Handler) postOTPResend(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f := h.flowAt(w, r, stepOTP)
	if f == nil {
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	if f.OTPSentAt != nil && h.now().Sub(*f.OTPSentAt) < h.cfg.OTP.ResendInterval {
		h.log.InfoContext(ctx, "OTP resend too soon", "user", user.ID)
		h.refuse(w, r, f, pathOTP, http.StatusTooManyRequests, "err.resend_too_soon", "")
		return
	}
	h.sendCode(w, r, f, user)
}

// maskEmail shows enough of the address to recognise it: t***@e***.com.
func maskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" {
		return "***"
	}
	first := func(s string) string {
		r := []rune(s)
		return string(r[0]) + "***"
	}
	host, tld := domain, ""
	if i := strings.LastIndex(domain, "."); i > 0 {
		host, tld = domain[:i], domain[i:]
	}
	return first(local) + "@" + first(host) + tld
}
