package login

import (
	"errors"
	"net/http"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
)

// enrolment is what the S5 endpoints need once rule 4 is checked: the
// flow's user, the proof the completed login will carry, and whether the
// new passkey must be the user's first (rule 1).
type enrolment struct {
	flow        *storage.LoginFlow
	user        *storage.User
	proof       proof
	onlyIfFirst bool
}

// authenticated says how and when the flow's user proved who they are and
// whether that was recent enough to create a passkey (rule 4).
func (h *Handler) authenticated(f *storage.LoginFlow) (p proof, recent, ok bool) {
	now := h.now()
	switch {
	case f.PasskeyVerifiedAt != nil:
		p = proof{amr: decodeFlowData(f).PasskeyAMR, acr: h.cfg.ACR.Passkey, at: *f.PasskeyVerifiedAt}
		return p, recentEnough(now, h.cfg.RecentAuth, f.PasskeyVerifiedAt), true
	case f.Purpose == purposeEnrolLink && f.OTPVerifiedAt != nil:
		// A staff link and the mailed code both stand for the mailbox of
		// address 1: one factor, so the lowest level the pages assert.
		p = proof{amr: []string{"otp"}, acr: h.cfg.ACR.Password, at: *f.OTPVerifiedAt}
		return p, recentEnough(now, h.cfg.RecentAuth, f.OTPVerifiedAt), true
	case f.PasswordVerifiedAt != nil && f.OTPVerifiedAt != nil:
		// The login is complete with its second factor; the password
		// came first.
		p = proof{amr: []string{"pwd", "otp", "mfa"}, acr: h.cfg.ACR.PasswordOTP, at: *f.OTPVerifiedAt}
		recent = recentEnough(now, h.cfg.RecentAuth, f.PasswordVerifiedAt, f.OTPVerifiedAt)
		return p, recent, true
	}
	return proof{}, false, false
}

func (h *Handler) enrolmentFlow(w http.ResponseWriter, r *http.Request) *enrolment {
	f := h.ceremonyFlow(w, r)
	if f == nil {
		return nil
	}
	if f.Step != stepCreate || f.UserID == "" {
		h.jsonFail(w, r, http.StatusBadRequest, "wrong_step", "err.flow_expired")
		return nil
	}
	p, recent, ok := h.authenticated(f)
	if !ok || !recent {
		h.jsonFail(w, r, http.StatusForbidden, "reauthenticate", "err.recent_auth")
		return nil
	}
	user, err := h.store.UserByID(r.Context(), f.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		h.jsonFail(w, r, http.StatusBadRequest, "flow_expired", "err.flow_expired")
		return nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "loading user for enrolment", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil
	}
	if user.Locked {
		h.jsonFail(w, r, http.StatusForbidden, "locked", "err.locked")
		return nil
	}
	// An enrolment link is the support centre's decision, made for a
	// customer who lost the device with their passkey: no password is
	// involved (rule 2 is about the temporary one) and rule 1's "only the
	// first" would strand them while the lost passkey is still listed.
	viaLink := f.Purpose == purposeEnrolLink
	if user.PasswordTemporary && f.PasskeyVerifiedAt == nil && !viaLink {
		h.jsonFail(w, r, http.StatusForbidden, "temporary_password", "err.temporary_password")
		return nil
	}
	// Password + OTP may only create the first passkey: a phished password
	// and code must never add one to an account that has one.
	return &enrolment{flow: f, user: user, proof: p, onlyIfFirst: onlyFirstPasskey(f.PasskeyVerifiedAt != nil || viaLink)}
}

func (h *Handler) passkeyRegisterOptions(w http.ResponseWriter, r *http.Request) {
	e := h.enrolmentFlow(w, r)
	if e == nil {
		return
	}
	if e.onlyIfFirst {
		n, err := h.store.CountCredentials(r.Context(), e.user.ID)
		if err != nil {
			h.log.ErrorContext(r.Context(), "counting passkeys", "err", err)
			h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
			return
		}
		if n > 0 {
			h.jsonFail(w, r, http.StatusConflict, "has_passkey", "err.passkey_registered_enrol")
			return
		}
	}
	opts, err := h.passkeys.BeginRegistration(r.Context(), e.user, e.flow.ID)
	h.writeOptions(w, r, "begin registration", opts, err)
}

func (h *Handler) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	e := h.enrolmentFlow(w, r)
	if e == nil {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	cred, err := h.passkeys.FinishRegistration(r.Context(), e.user, e.flow.ID, body, e.onlyIfFirst)
	if err != nil {
		h.passkeyError(w, r, "finish registration", err)
		return
	}
	h.passkeyAdded(r, e.user, cred)
	h.jsonComplete(w, r, e.flow, e.user, e.proof, nil)
}

// getCreate is S5.
func (h *Handler) getCreate(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepCreate)
	if f == nil {
		return
	}
	p := &templates.Page{
		Title: "s5.title", CrossDevice: decodeFlowData(f).CrossDevice,
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
		CreateOnly: f.Purpose == purposeEnrolLink,
	}
	// Past lifetimes.recent_auth (rule 4) the button could only fail: it
	// is shown off, with the reason and a fresh login from S1.
	if _, recent, ok := h.authenticated(f); ok && !recent {
		p.Error, p.CreateBlocked, p.LoginURL = "err.recent_auth", true, loginURL(f.AuthRequestID)
		p.PasskeyScript = false
	}
	h.render(w, r, http.StatusOK, "create", p)
}

// postCreateSkip is 「パスキー作成なしでログイン」.
func (h *Handler) postCreateSkip(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepCreate)
	if f == nil {
		return
	}
	// A staff enrolment link proves only the mailbox: it exists to create a
	// passkey, and skipping would turn it into a sign-in by mail alone.
	if f.Purpose == purposeEnrolLink {
		h.log.WarnContext(r.Context(), "S5 skip refused on an enrolment link's flow", "user", f.UserID)
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", "")
		return
	}
	p, _, ok := h.authenticated(f)
	if !ok {
		h.log.WarnContext(r.Context(), "S5 skip on a flow without proven factors")
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	if decodeFlowData(f).Offer {
		h.offerDeclined(r, user)
	}
	h.finish(w, r, f, user, p)
}
