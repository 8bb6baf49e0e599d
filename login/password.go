package login

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

const maxFormBytes = 16 << 10

// parseForm bounds and parses a form post; false means a 400 was written.
func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.log.InfoContext(r.Context(), "unparsable form", "path", r.URL.Path, "err", err)
		h.renderError(w, r, http.StatusBadRequest, "err.bad_request", "")
		return false
	}
	return true
}

// passwordUser is the part of S1's 「ログイン >」 and S3's
// 「ID・パスワード認証」 they share: the throttle, the password (rule 7) and
// the lock. Without a user it returns the status and catalogue key to show;
// err is an infrastructure failure.
func (h *Handler) passwordUser(w http.ResponseWriter, r *http.Request, loginID, pw string) (user *storage.User, status int, key string, err error) {
	user, err = h.checkPassword(r, loginID, pw)
	switch {
	case errors.Is(err, errTooManyAttempts):
		retryAfter(w, h.cfg.PasswordThrottle.Window)
		return nil, http.StatusTooManyRequests, "err.too_many_attempts", nil
	case errors.Is(err, errHashBusy):
		retryAfter(w, busyRetryAfter)
		return nil, http.StatusTooManyRequests, "err.busy", nil
	case err != nil:
		return nil, 0, "", err
	case user == nil:
		return nil, http.StatusUnauthorized, "err.credentials", nil
	case user.Locked:
		h.log.InfoContext(r.Context(), "locked user refused", "user", user.ID, "path", r.URL.Path)
		h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: methodPassword, audit.KeyReason: "locked"})
		return nil, http.StatusForbidden, "err.locked", nil
	}
	return user, 0, "", nil
}

// busyRetryAfter is what a 429 for full hashing capacity asks the browser
// to wait: a spray passes in seconds or is throttled by then.
const busyRetryAfter = 5 * time.Second

func userIDOf(u *storage.User) string {
	if u == nil {
		return ""
	}
	return u.ID
}

// postLogin is F4: 「ログイン >」 with ID and password, for customers without
// a passkey.
func (h *Handler) postLogin(w http.ResponseWriter, r *http.Request) {
	r, cancel := detach(r)
	defer cancel()
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	f := h.liveFlow(w, r, "err.flow_expired")
	if f == nil {
		return
	}
	ar, ok := h.flowAuthRequest(w, r, f)
	if !ok {
		return
	}
	loginID := strings.TrimSpace(r.PostFormValue("loginID"))
	pw := r.PostFormValue("password")
	fail := func(status int, key string) {
		if status == http.StatusTooManyRequests { // with Retry-After: a direct answer (formerror.go)
			h.renderLogin(w, r, status, ar, loginID, key)
			return
		}
		h.refuse(w, r, f, pathLogin, status, key, loginID)
	}
	if ar != nil && h.passkeyOnly(ar) {
		h.log.InfoContext(ctx, "password login refused: client demands a passkey", "client", ar.ClientID)
		fail(http.StatusForbidden, "err.passkey_only")
		return
	}
	if loginID == "" || pw == "" {
		h.log.InfoContext(ctx, "password login with empty fields")
		fail(http.StatusBadRequest, "err.credentials")
		return
	}
	user, status, key, err := h.passwordUser(w, r, loginID, pw)
	if err != nil {
		h.internalError(w, r, "password login", err)
		return
	}
	if user == nil {
		fail(status, key)
		return
	}
	n, err := h.store.CountCredentials(ctx, user.ID)
	if err != nil {
		h.internalError(w, r, "counting passkeys", err)
		return
	}
	if v := passwordRule(useLogin, n, user.PasswordTemporary); !v.allowed() {
		h.log.InfoContext(ctx, "password login refused", "user", user.ID, "reason", v.reason)
		h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: methodPassword, audit.KeyReason: v.reason})
		fail(v.status, v.key)
		return
	}
	now := h.now()
	f.UserID, f.LoginID, f.Purpose = user.ID, loginID, purposeLogin
	f.PasswordVerifiedAt, f.OTPVerifiedAt, f.PasskeyVerifiedAt = timePtr(now), nil, nil
	encodeFlowData(f, flowData{ReturnTo: decodeFlowData(f).ReturnTo})
	if user.PasswordTemporary {
		f.Step = stepChangePassword
		if err := h.advanceFlow(w, r, f); err != nil {
			h.conflictOrInternal(w, r, err)
			return
		}
		http.Redirect(w, r, pathChangePassword, http.StatusSeeOther)
		return
	}
	d := flowData{ReturnTo: decodeFlowData(f).ReturnTo}
	// An S8 sign-in (no auth request) lands on S8, which shows the
	// passkeys and its own way to add one: the offer is for the way to a
	// website.
	d.Offer = ar != nil && passkeyOfferDue(now, h.cfg.PasskeyOfferInterval, h.passkeys != nil, n, user.PasswordTemporary, user.PasskeyOfferSkippedAt)
	switch {
	case needsCode(h.cfg.ACR, ar):
		// The client's acr_values want password + code: S4, then S5 when
		// the offer is due (its create and skip both complete with the
		// code), else the login completes after the code.
		d.CodeRequired = true
		encodeFlowData(f, d)
		if err := h.advanceFlow(w, r, f); err != nil {
			h.conflictOrInternal(w, r, err)
			return
		}
		h.askCode(w, r, f, user)
	case d.Offer:
		f.Step = stepOffer
		encodeFlowData(f, d)
		if err := h.advanceFlow(w, r, f); err != nil {
			h.conflictOrInternal(w, r, err)
			return
		}
		http.Redirect(w, r, pathOffer, http.StatusSeeOther)
	default:
		h.finish(w, r, f, user, proof{amr: []string{"pwd"}, acr: h.cfg.ACR.Password, at: now})
	}
}

// conflictOrInternal answers a failed flow write.
func (h *Handler) conflictOrInternal(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrConflict) {
		h.log.InfoContext(r.Context(), "concurrent flow update", "path", r.URL.Path)
		h.renderError(w, r, http.StatusConflict, "err.conflict", "")
		return
	}
	if errors.Is(err, storage.ErrNotFound) {
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", "")
		return
	}
	h.internalError(w, r, "writing login flow", err)
}

// getPassword is S3.
func (h *Handler) getPassword(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepPassword)
	if f == nil {
		return
	}
	status, key := formStatus(h.takeFormError(r, f, pathPassword))
	h.renderPassword(w, r, status, f, key)
}

func (h *Handler) renderPassword(w http.ResponseWriter, r *http.Request, status int, f *storage.LoginFlow, errKey string) {
	h.render(w, r, status, "password", &templates.Page{Title: "s3.title", Error: errKey, LoginID: f.LoginID, LoginURL: loginURL(f.AuthRequestID)})
}

// postPassword is S3's 「ID・パスワード認証」: rules 1, 2 and 7, then the OTP.
func (h *Handler) postPassword(w http.ResponseWriter, r *http.Request) {
	r, cancel := detach(r)
	defer cancel()
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	f := h.flowAt(w, r, stepPassword, stepOTP)
	if f == nil {
		return
	}
	if f.Step == stepOTP {
		// The password was accepted and stored, but its answer did not
		// arrive (a 503 while the code was being sent, a lost connection):
		// the retry continues at S4, sending the code if none went out.
		h.log.InfoContext(ctx, "S3 resubmitted after the password was accepted", "user", f.UserID)
		if f.OTPSentAt == nil {
			user := h.flowUser(w, r, f)
			if user == nil {
				return
			}
			h.sendCode(w, r, f, user)
			return
		}
		http.Redirect(w, r, pathOTP, http.StatusSeeOther)
		return
	}
	pw := r.PostFormValue("password")
	if pw == "" {
		h.log.InfoContext(ctx, "S3 with an empty password")
		h.refuse(w, r, f, pathPassword, http.StatusBadRequest, "err.password_required", "")
		return
	}
	user, status, key, err := h.passwordUser(w, r, f.LoginID, pw)
	if err != nil {
		h.internalError(w, r, "F1 password check", err)
		return
	}
	if user == nil {
		if status == http.StatusTooManyRequests { // with Retry-After: a direct answer (formerror.go)
			h.renderPassword(w, r, status, f, key)
			return
		}
		h.refuse(w, r, f, pathPassword, status, key, "")
		return
	}
	n, err := h.store.CountCredentials(ctx, user.ID)
	if err != nil {
		h.internalError(w, r, "counting passkeys", err)
		return
	}
	if v := passwordRule(useEnrol, n, user.PasswordTemporary); !v.allowed() {
		h.log.InfoContext(ctx, "F1 refused", "user", user.ID, "reason", v.reason)
		h.audit(r, audit.EnrolRefused, user.ID, audit.Detail{audit.KeyReason: v.reason})
		h.refuse(w, r, f, pathPassword, v.status, v.key, "")
		return
	}
	f.UserID = user.ID
	f.PasswordVerifiedAt = timePtr(h.now())
	f.Step = stepOTP
	f.OTPHash, f.OTPExpiresAt, f.OTPAttempts = "", nil, 0
	if err := h.advanceFlow(w, r, f); err != nil {
		h.conflictOrInternal(w, r, err)
		return
	}
	h.sendCode(w, r, f, user)
}
