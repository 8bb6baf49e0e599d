package login

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// credentialID decodes a form's passkey ID; false for anything that cannot
// be one (answered like an unknown ID).
func credentialID(s string) ([]byte, bool) {
	if s == "" || len(s) > maxCredentialIDBase64 {
		return nil, false
	}
	id, err := base64.RawURLEncoding.DecodeString(s)
	return id, err == nil && len(id) > 0
}

// ownCredential loads the session user's passkey named by the base64url
// ID; nil (and a 404 written) when it is not theirs.
func (h *Handler) ownCredential(w http.ResponseWriter, r *http.Request, user *storage.User, raw string) *storage.Credential {
	id, ok := credentialID(raw)
	if ok {
		c, err := h.store.CredentialByID(r.Context(), id)
		switch {
		case err == nil && c.UserID == user.ID:
			return c
		case err != nil && !errors.Is(err, storage.ErrNotFound):
			h.internalError(w, r, "loading passkey", err)
			return nil
		}
	}
	h.log.WarnContext(r.Context(), "S8: passkey not owned by the session user", "user", user.ID, "credential", truncate(raw, 100))
	h.renderError(w, r, http.StatusNotFound, "err.passkey_not_found", accountURL(""))
	return nil
}

// passkeyTarget is what an S8 action on one passkey works on.
type passkeyTarget struct {
	returnTo string
	session  *storage.Session
	user     *storage.User
	cred     *storage.Credential
}

// targetPasskey resolves the return_to and id parameters of params against
// the session: the passkey must be the session user's. nil means answered.
func (h *Handler) targetPasskey(w http.ResponseWriter, r *http.Request, params url.Values) *passkeyTarget {
	rt := h.returnTo(r, params.Get("return_to"))
	s, user := h.sessionOrAnswer(w, r, rt)
	if s == nil {
		return nil
	}
	cred := h.ownCredential(w, r, user, params.Get("id"))
	if cred == nil {
		return nil
	}
	return &passkeyTarget{returnTo: rt, session: s, user: user, cred: cred}
}

// postAccountRename renames one of the user's passkeys.
func (h *Handler) postAccountRename(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	tg := h.targetPasskey(w, r, r.PostForm)
	if tg == nil {
		return
	}
	rt, s, user, cred := tg.returnTo, tg.session, tg.user, tg.cred
	name := strings.TrimSpace(r.PostFormValue("name"))
	if n := utf8.RuneCountInString(name); n < 1 || n > maxPasskeyNameRunes || strings.ContainsFunc(name, unicode.IsControl) || !utf8.ValidString(name) {
		h.log.InfoContext(ctx, "S8: passkey name refused", "user", user.ID, "runes", utf8.RuneCountInString(name))
		h.renderAccount(w, r, http.StatusBadRequest, s, user, rt, "", "err.passkey_name", false)
		return
	}
	err := h.store.RenameCredential(ctx, user.ID, cred.ID, name)
	if errors.Is(err, storage.ErrNotFound) { // deleted meanwhile
		h.renderError(w, r, http.StatusNotFound, "err.passkey_not_found", accountURL(rt))
		return
	}
	if err != nil {
		h.internalError(w, r, "renaming passkey", err)
		return
	}
	h.audit(r, audit.PasskeyRenamed, user.ID, audit.Detail{audit.KeyCredential: audit.Credential(cred.ID), audit.KeyFrom: cred.Name, audit.KeyTo: name})
	http.Redirect(w, r, accountURL(rt, "renamed", "1"), http.StatusSeeOther)
}

// getAccountDelete is the confirmation page of a delete.
func (h *Handler) getAccountDelete(w http.ResponseWriter, r *http.Request) {
	if tg := h.targetPasskey(w, r, r.URL.Query()); tg != nil {
		h.renderDelete(w, r, http.StatusOK, tg.session, tg.user, tg.cred, tg.returnTo, "")
	}
}

func (h *Handler) renderDelete(w http.ResponseWriter, r *http.Request, status int, s *storage.Session, user *storage.User, cred *storage.Credential, returnTo, errKey string) {
	a, creds, err := h.accountPage(r, s, user, returnTo)
	if err != nil {
		h.internalError(w, r, "S8 delete confirmation", err)
		return
	}
	row := passkeyRow(cred, languageFrom(r.Context()))
	a.Target = &row
	a.NeedStepUp = !h.rights(s).mayDelete()
	a.BackToPassword = len(creds) == 1 // this one is the last
	q := url.Values{"id": {row.ID}}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	a.StepUpFinishURL = pathAccountStepUpFin + "?" + q.Encode()
	h.render(w, r, status, "account_delete", &templates.Page{
		Title: "s8.delete_title", Error: errKey, Account: a,
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
	})
}

// postAccountDelete removes one passkey on the server (rule 6).
func (h *Handler) postAccountDelete(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !h.parseForm(w, r) {
		return
	}
	tg := h.targetPasskey(w, r, r.PostForm)
	if tg == nil {
		return
	}
	rt, s, user, cred := tg.returnTo, tg.session, tg.user, tg.cred
	if !h.rights(s).mayDelete() {
		h.log.InfoContext(ctx, "S8: delete needs a fresh authentication", "user", user.ID, "auth_time", s.AuthTime, "amr", s.AMR)
		h.renderDelete(w, r, http.StatusForbidden, s, user, cred, rt, "err.step_up_required")
		return
	}
	err := h.store.DeleteCredential(ctx, user.ID, cred.ID)
	if errors.Is(err, storage.ErrNotFound) {
		h.renderError(w, r, http.StatusNotFound, "err.passkey_not_found", accountURL(rt))
		return
	}
	if err != nil {
		h.internalError(w, r, "deleting passkey", err)
		return
	}
	left, err := h.store.CountCredentials(ctx, user.ID)
	if err != nil {
		h.log.ErrorContext(ctx, "counting passkeys after delete", "err", err)
	}
	detail := audit.Detail{
		audit.KeyCredential: audit.Credential(cred.ID), audit.KeyName: cred.Name, audit.KeyRemaining: fmt.Sprint(left),
	}
	// A passkey is deleted because a device is lost or not trusted: what
	// it signed in elsewhere must end with it. This browser just proved
	// who it is, so it stays signed in.
	ended, err := h.endUserAccess(r, user.ID, s.ID, h.now())
	if err != nil {
		detail[audit.KeyAccessEnded] = "failed"
		h.audit(r, audit.PasskeyDeleted, user.ID, detail)
		h.internalError(w, r, "S8 delete", err)
		return
	}
	h.audit(r, audit.PasskeyDeleted, user.ID, detail.WithAccessEnded(ended))
	http.Redirect(w, r, accountURL(rt, "deleted", "1"), http.StatusSeeOther)
}
