package login

import (
	"errors"
	"net/http"

	"github.com/comstockloan/idp/storage"
)

// Post/redirect/get: a refused form post (S1, S3, S4, S7) is answered with
// a 303 to the GET page of its step, and the refusal waits on the flow
// row until that GET shows it, once. Back then never lands on a POST
// answer ("Confirm Form Resubmission"), and a reload never sends the
// password again. The GET that shows the refusal carries its status
// (400, 401, 403, 409), so access logs and tests still tell the outcomes
// apart. Answers with Retry-After (a paused login, full hashing capacity)
// stay direct 429s: the header only means something on the answer to the
// attempt, and a reload is refused again before any password is checked.

// formError is the refusal of the last form post of a flow.
type formError struct {
	Path   string `json:"path"`   // the GET page that shows it
	Key    string `json:"key"`    // catalogue key
	Status int    `json:"status"` // of the GET that shows it
	// LoginID is what S1's login ID field held, to fill it again.
	LoginID string `json:"login_id,omitempty"`
}

// maxRefusalRaces bounds the rewrites of a refusal that lost the flow's
// compare-and-set to a concurrent request of the same flow.
const maxRefusalRaces = 3

// refuse keeps the refusal on f and sends the browser to page. A flow
// that moved on or went meanwhile gets the redirect anyway: the page then
// shows where the flow is.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, page string, status int, key, loginID string) {
	for range maxRefusalRaces {
		setFormError(f, &formError{Path: page, Key: key, Status: status, LoginID: loginID})
		err := h.updateFlow(r, f)
		if err == nil {
			break
		}
		if errors.Is(err, storage.ErrNotFound) {
			break
		}
		if !errors.Is(err, storage.ErrConflict) {
			h.internalError(w, r, "storing a form refusal", err)
			return
		}
		if f, err = h.currentFlow(r); err != nil {
			break
		}
	}
	http.Redirect(w, r, page, http.StatusSeeOther)
}

func setFormError(f *storage.LoginFlow, fe *formError) {
	d := decodeFlowData(f)
	d.FormError = fe
	encodeFlowData(f, d)
}

// takeFormError returns the refusal waiting for page and clears it, so a
// reload or Back shows the page without it; nil when there is none.
func (h *Handler) takeFormError(r *http.Request, f *storage.LoginFlow, page string) *formError {
	fe := decodeFlowData(f).FormError
	if fe == nil || fe.Path != page {
		return nil
	}
	setFormError(f, nil)
	if err := h.updateFlow(r, f); err != nil {
		// Shown again on the next GET at worst.
		h.log.InfoContext(r.Context(), "clearing a shown form refusal", "path", page, "err", err)
	}
	return fe
}

// formStatus is the status of a GET page showing fe (200 without one).
func formStatus(fe *formError) (int, string) {
	if fe == nil {
		return http.StatusOK, ""
	}
	return fe.Status, fe.Key
}
