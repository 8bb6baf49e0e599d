package login

import (
	"net/http"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/templates"
)

// The passkey offer after a password login (F4): the page between a right
// password and the website, for a customer without a passkey
// (passkeyOfferDue in policy.go). Accepting leads to the e-mail code (S4)
// and S5, because a password alone never creates a passkey (rule 4);
// declining completes the login at once and is remembered for
// Config.PasskeyOfferInterval.
const (
	pathOffer     = "/login/passkey/offer"
	pathOfferSkip = "/login/passkey/offer/skip"
)

// getOffer is the offer page.
func (h *Handler) getOffer(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepOffer)
	if f == nil {
		return
	}
	h.render(w, r, http.StatusOK, "offer", &templates.Page{Title: "offer.title", LoginID: f.LoginID})
}

// postOffer is 「パスキーを設定する」: the e-mail code first.
func (h *Handler) postOffer(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepOffer)
	if f == nil {
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	if user.Locked { // no code is mailed for a locked account
		h.renderError(w, r, http.StatusForbidden, "err.locked", "")
		return
	}
	h.askCode(w, r, f, user)
}

// askCode moves a flow whose password is proven to S4 and mails the code.
func (h *Handler) askCode(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User) {
	f.Step = stepOTP
	f.OTPHash, f.OTPExpiresAt, f.OTPAttempts, f.OTPSentAt, f.OTPVerifiedAt = "", nil, 0, nil, nil
	if err := h.updateFlow(r, f); err != nil {
		h.conflictOrInternal(w, r, err)
		return
	}
	h.sendCode(w, r, f, user)
}

// postOfferSkip is 「今はしない」, at the offer or at S4 of an offer: the
// password login completes now. Only an offer's flow may end this way; an
// F1 enrolment or a code the client demands never does.
func (h *Handler) postOfferSkip(w http.ResponseWriter, r *http.Request) {
	f := h.flowAt(w, r, stepOffer, stepOTP)
	if f == nil {
		return
	}
	if !offerSkippable(f) || f.PasswordVerifiedAt == nil {
		h.log.WarnContext(r.Context(), "passkey offer skipped on a flow without an offer", "step", f.Step, "purpose", f.Purpose)
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return
	}
	user := h.flowUser(w, r, f)
	if user == nil {
		return
	}
	h.offerDeclined(r, user)
	h.finish(w, r, f, user, proof{amr: []string{"pwd"}, acr: h.cfg.ACR.Password, at: *f.PasswordVerifiedAt})
}

// offerSkippable: the flow is an offer that may end with the password
// alone; not when the client demands the code.
func offerSkippable(f *storage.LoginFlow) bool {
	d := decodeFlowData(f)
	return d.Offer && !d.CodeRequired && f.Purpose == purposeLogin
}

// offerDeclined remembers that the customer said no. A failure costs only
// an early repeat of the offer, so it never stops the login.
func (h *Handler) offerDeclined(r *http.Request, user *storage.User) {
	if err := h.store.SetPasskeyOfferSkipped(r.Context(), user.ID, h.now()); err != nil {
		h.log.ErrorContext(r.Context(), "remembering the declined passkey offer", "user", user.ID, "err", err)
		return
	}
	h.log.InfoContext(r.Context(), "passkey offer declined", "user", user.ID)
}
