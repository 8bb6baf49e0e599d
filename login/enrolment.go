package login

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// The staff enrolment link (`idp users enrolment-link`): the support
// centre's replacement for a temporary password read over the phone.
// Opening the link shows a page whose button spends it (a GET must not:
// mail scanners open links); the flow that starts goes to S4 for the
// mailed code and then to S5, and ends on S8. The link's secret is the
// proof staff vouched for; the code proves the mailbox of address 1.

const (
	pathEnrolLink = "/enrol"
	// EnrolLinkParam is the query parameter of the link's secret.
	EnrolLinkParam = "t"
	// maxEnrolLinkSecret bounds what is looked up: the CLI's secrets are
	// 43 characters.
	maxEnrolLinkSecret = 128
)

// purposeEnrolLink is a flow started by an enrolment link.
const purposeEnrolLink = "enrol_link"

// EnrolLinkURL is the link the CLI hands out for secret.
func EnrolLinkURL(issuer, secret string) string {
	return issuer + pathEnrolLink + "?" + url.Values{EnrolLinkParam: {secret}}.Encode()
}

func (h *Handler) registerEnrolLink(page func(path string, get, post http.HandlerFunc)) {
	page(pathEnrolLink, h.getEnrolLink, h.postEnrolLink)
}

// enrolLinkRefusal is the catalogue key and audit reason for a link that
// is not live at now; "" when it is.
func (h *Handler) enrolLinkRefusal(l *storage.EnrolmentLink) (key, reason string) {
	switch {
	case l.UsedAt != nil:
		return "err.enrol_link_used", "used"
	case l.SupersededAt != nil:
		return "err.enrol_link_superseded", "superseded"
	case !h.now().Before(l.ExpiresAt):
		return "err.enrol_link_expired", "expired"
	}
	return "", ""
}

// enrolLink loads the link named by secret and its user, answering the
// request itself (nil) when the link cannot be used.
func (h *Handler) enrolLink(w http.ResponseWriter, r *http.Request, secret string) (*storage.EnrolmentLink, *storage.User) {
	ctx := r.Context()
	if secret == "" || !storableText(secret, maxEnrolLinkSecret) {
		h.log.InfoContext(ctx, "enrolment link without a usable secret")
		h.renderError(w, r, http.StatusNotFound, "err.enrol_link_invalid", "")
		return nil, nil
	}
	l, err := h.store.EnrolmentLinkByID(ctx, storage.HashSecret(secret))
	if errors.Is(err, storage.ErrNotFound) {
		h.log.InfoContext(ctx, "unknown enrolment link")
		h.renderError(w, r, http.StatusNotFound, "err.enrol_link_invalid", "")
		return nil, nil
	}
	if err != nil {
		h.internalError(w, r, "loading enrolment link", err)
		return nil, nil
	}
	if key, reason := h.enrolLinkRefusal(l); key != "" {
		h.refuseEnrolLink(w, r, l.UserID, key, reason)
		return nil, nil
	}
	user, err := h.store.UserByID(ctx, l.UserID)
	if err != nil {
		h.internalError(w, r, "loading enrolment link user", err)
		return nil, nil
	}
	if user.Locked {
		h.refuseEnrolLink(w, r, user.ID, "err.locked", "locked")
		return nil, nil
	}
	return l, user
}

func (h *Handler) refuseEnrolLink(w http.ResponseWriter, r *http.Request, userID, key, reason string) {
	h.log.InfoContext(r.Context(), "enrolment link refused", "user", userID, "reason", reason)
	h.audit(r, audit.EnrolmentLinkRefused, userID, audit.Detail{audit.KeyReason: reason})
	status := http.StatusGone
	if reason == "locked" {
		status = http.StatusForbidden
	}
	h.renderError(w, r, status, key, "")
}

// getEnrolLink shows what the link is for; it changes nothing.
func (h *Handler) getEnrolLink(w http.ResponseWriter, r *http.Request) {
	secret := r.URL.Query().Get(EnrolLinkParam)
	if l, _ := h.enrolLink(w, r, secret); l == nil {
		return
	}
	h.render(w, r, http.StatusOK, "enrol_link", &templates.Page{
		Title: "enrol.title", Fields: []templates.Field{{Name: EnrolLinkParam, Value: secret}},
	})
}

// postEnrolLink spends the link (one of any number of concurrent posts
// wins: UseEnrolmentLink) and starts its flow at S4.
func (h *Handler) postEnrolLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	l, user := h.enrolLink(w, r, r.PostFormValue(EnrolLinkParam))
	if l == nil {
		return
	}
	err := h.store.UseEnrolmentLink(ctx, l.ID, h.now())
	if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
		// Lost the race to another opening (or a newer link came).
		h.refuseEnrolLink(w, r, user.ID, "err.enrol_link_used", "used")
		return
	}
	if err != nil {
		h.internalError(w, r, "using enrolment link", err)
		return
	}
	h.audit(r, audit.EnrolmentLinkUsed, user.ID, nil)
	f, err := h.startFlowWith(w, r, "", "", flowData{})
	if err != nil {
		h.internalError(w, r, "starting enrolment link flow", err)
		return
	}
	f.UserID, f.LoginID, f.Purpose, f.Step = user.ID, user.LoginID, purposeEnrolLink, stepOTP
	h.sendCode(w, r, f, user)
}

// enrolLinkVerified runs when the code of a link's flow was right: the
// customer lost a device, so whatever it still holds ends now (every
// session and token; this browser has none of the user's yet). The sign-out
// is dated at the code's verification, not later: the login this flow
// completes carries that proof, and a later stamp would refuse its own
// session (proofStillValid).
func (h *Handler) enrolLinkVerified(r *http.Request, userID string, verifiedAt time.Time) error {
	ended, err := h.endUserAccess(r, userID, "", verifiedAt)
	if err != nil {
		h.audit(r, audit.SessionsEndedOthers, userID, audit.Detail{audit.KeyAccessEnded: "failed"})
		return fmt.Errorf("enrolment link: %w", err)
	}
	h.audit(r, audit.SessionsEndedOthers, userID, audit.Detail{}.WithAccessEnded(ended))
	return nil
}
