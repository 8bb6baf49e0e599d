package login

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// Paths of S8 (パスキー設定状況確認) and the logged-out page.
const (
	pathAccount           = "/account/passkeys"
	pathAccountSignIn     = "/account/passkeys/signin"
	pathAccountRename     = "/account/passkeys/rename"
	pathAccountDelete     = "/account/passkeys/delete"
	pathAccountStepUpOpt  = "/account/passkeys/reauth/options"
	pathAccountStepUpFin  = "/account/passkeys/reauth/finish"
	pathAccountRegOpt     = "/account/passkeys/register/options"
	pathAccountRegFin     = "/account/passkeys/register/finish"
	pathLoggedOut         = "/logged-out"
	maxPasskeyNameRunes   = 50
	maxReturnURLBytes     = 2048
	maxCredentialIDBase64 = 1400 // a 1023-byte credential ID, the WebAuthn maximum
)

// japan is JST as a fixed zone: no tzdata needed and Japan has no DST.
var japan = time.FixedZone("JST", 9*60*60)

// registerAccount mounts S8 and /logged-out; page is Register's helper.
func (h *Handler) registerAccount(page func(path string, get, post http.HandlerFunc)) {
	page(pathAccount, h.getAccount, nil)
	page(pathAccountSignIn, h.getAccountSignIn, nil)
	page(pathAccountRename, nil, h.postAccountRename)
	page(pathAccountDelete, h.getAccountDelete, h.postAccountDelete)
	page(pathAccountStepUpOpt, nil, h.accountStepUpOptions)
	page(pathAccountStepUpFin, nil, h.accountStepUpFinish)
	page(pathAccountRegOpt, nil, h.accountRegisterOptions)
	page(pathAccountRegFin, nil, h.accountRegisterFinish)
	page(pathLoggedOut, h.getLoggedOut, nil)
}

// accountURL is S8, keeping a (vetted) return_to and extra query pairs.
func accountURL(returnTo string, kv ...string) string {
	q := url.Values{}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	if len(q) == 0 {
		return pathAccount
	}
	return pathAccount + "?" + q.Encode()
}

// deleteURL is the confirmation page of one passkey.
func deleteURL(credID, returnTo string) string {
	q := url.Values{"id": {credID}}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	return pathAccountDelete + "?" + q.Encode()
}

// returnTo vets a return_to parameter: only an absolute http(s) URL whose
// origin the OP knows as a client's. Anything else is dropped (logged), so
// S8 can never be used as an open redirect.
func (h *Handler) returnTo(r *http.Request, raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err == nil && len(raw) <= maxReturnURLBytes && (u.Scheme == "https" || u.Scheme == "http") &&
		u.Host != "" && u.User == nil && h.op.AllowedReturnURL(raw) {
		return raw
	}
	h.log.InfoContext(r.Context(), "return_to ignored", "return_to", truncate(raw, 200))
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// sessionOrAnswer is loadSession for pages: nil means the error page
// (with a way to sign in) was written.
func (h *Handler) sessionOrAnswer(w http.ResponseWriter, r *http.Request, returnTo string) (*storage.Session, *storage.User) {
	s, user, err := h.loadSession(r)
	if errors.Is(err, errNoSession) {
		h.log.InfoContext(r.Context(), "S8 action without a session", "path", r.URL.Path)
		h.renderError(w, r, http.StatusUnauthorized, "err.session_required", signInURL(returnTo))
		return nil, nil
	}
	if err != nil {
		h.internalError(w, r, "loading S8 session", err)
		return nil, nil
	}
	return s, user
}

func signInURL(returnTo string) string {
	if returnTo == "" {
		return pathAccountSignIn
	}
	return pathAccountSignIn + "?" + url.Values{"return_to": {returnTo}}.Encode()
}

// sessionRights is what a session may do on S8 right now.
type sessionRights struct {
	recent  bool // authenticated within RecentAuth
	passkey bool // the session came from a passkey
	pwdOTP  bool // from password + OTP
}

func (h *Handler) rights(s *storage.Session) sessionRights {
	return sessionRights{
		recent:  h.now().Sub(s.AuthTime) <= h.cfg.RecentAuth,
		passkey: isPasskeyAMR(s.AMR),
		pwdOTP:  slices.Contains(s.AMR, "otp"),
	}
}

// mayDelete: a recent passkey or password + OTP authentication (a password
// alone never manages passkeys).
func (sr sessionRights) mayDelete() bool { return sr.recent && (sr.passkey || sr.pwdOTP) }

// addBlocked says why the session may not create a passkey now ("" when
// it may). Rule 4 wants a recent passkey or password + OTP login; rule 1
// wants password + OTP to create only the first passkey.
func (sr sessionRights) addBlocked(user *storage.User, count int) string {
	switch {
	case !sr.passkey && !sr.pwdOTP:
		return "s8.add_pwd_only"
	case !sr.passkey && user.PasswordTemporary:
		return "err.temporary_password"
	case !sr.passkey && count > 0:
		return "s8.add_needs_passkey"
	case !sr.recent:
		return "s8.add_stale"
	}
	return ""
}

// getAccount is S8. Without a session it starts a sign-in whose end comes
// back here.
func (h *Handler) getAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	s, user, err := h.loadSession(r)
	if errors.Is(err, errNoSession) {
		h.startAccountSignIn(w, r, rt, pathLogin)
		return
	}
	if err != nil {
		h.internalError(w, r, "loading S8 session", err)
		return
	}
	if err := h.store.TouchSession(ctx, s.ID, h.now()); err != nil {
		h.log.WarnContext(ctx, "touching session", "err", err)
	}
	q := r.URL.Query()
	notice := ""
	switch {
	case q.Get("deleted") == "1":
		notice = "s8.deleted"
	case q.Get("renamed") == "1":
		notice = "s8.renamed"
	case q.Get("added") == "1":
		notice = "s8.added"
	}
	h.renderAccount(w, r, http.StatusOK, s, user, rt, notice, "", q.Get("deleted") == "1")
}

// getAccountSignIn starts a fresh sign-in for S8 (also with a session: it
// is how a stale or password-only session gets a stronger one).
func (h *Handler) getAccountSignIn(w http.ResponseWriter, r *http.Request) {
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	h.startAccountSignIn(w, r, rt, pathPasskey)
}

func (h *Handler) startAccountSignIn(w http.ResponseWriter, r *http.Request, returnTo, first string) {
	if _, err := h.startFlowWith(w, r, "", "", flowData{ReturnTo: returnTo}); err != nil {
		h.internalError(w, r, "starting S8 sign-in", err)
		return
	}
	h.log.InfoContext(r.Context(), "S8 sign-in started", "first", first)
	http.Redirect(w, r, first, http.StatusSeeOther)
}

// accountPage builds S8's view of the user's passkeys.
func (h *Handler) accountPage(r *http.Request, s *storage.Session, user *storage.User, returnTo string) (*templates.Account, []storage.Credential, error) {
	creds, err := h.store.CredentialsByUser(r.Context(), user.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("listing passkeys: %w", err)
	}
	lang := languageFrom(r.Context())
	sr := h.rights(s)
	a := &templates.Account{
		LoginID: user.LoginID, ReturnURL: returnTo, SignInURL: signInURL(returnTo),
	}
	a.AccountURL = accountURL(returnTo)
	a.RegisterFinishURL = pathAccountRegFin
	if returnTo != "" {
		a.RegisterFinishURL += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	for i := range creds {
		row := passkeyRow(&creds[i], lang)
		row.DeleteURL = deleteURL(row.ID, returnTo)
		a.Passkeys = append(a.Passkeys, row)
	}
	a.AddBlocked = sr.addBlocked(user, len(creds))
	if a.AddBlocked == "" && h.passkeys == nil {
		a.AddBlocked = "passkey.unavailable"
	}
	a.CanAdd = a.AddBlocked == ""
	// A passkey assertion refreshes the session for deleting and adding.
	a.NeedStepUp = len(creds) > 0 && h.passkeys != nil && !(sr.recent && sr.passkey)
	a.StepUpOptionsURL = pathAccountStepUpOpt
	a.StepUpFinishURL = pathAccountStepUpFin
	if returnTo != "" {
		a.StepUpFinishURL += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	return a, creds, nil
}

func passkeyRow(c *storage.Credential, lang string) templates.Passkey {
	p := templates.Passkey{
		ID: base64.RawURLEncoding.EncodeToString(c.ID), Name: c.Name,
		Created: formatTime(c.CreatedAt, lang), Synced: c.BackupEligible, CloneWarning: c.CloneWarning,
	}
	if c.LastUsedAt != nil {
		p.LastUsed = formatTime(*c.LastUsedAt, lang)
	}
	return p
}

// formatTime shows t in Japan time, which is the loan centre's time for
// both languages.
func formatTime(t time.Time, lang string) string {
	if lang == "en" {
		return t.In(japan).Format("2 Jan 2006 15:04 JST")
	}
	return t.In(japan).Format("2006年1月2日 15:04")
}

func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, status int, s *storage.Session, user *storage.User, returnTo, notice, errKey string, deleted bool) {
	a, creds, err := h.accountPage(r, s, user, returnTo)
	if err != nil {
		h.internalError(w, r, "S8", err)
		return
	}
	if deleted && h.passkeys != nil {
		// What the device should still offer: signalAllAcceptedCredentials.
		a.Deleted = true
		a.BackToPassword = len(creds) == 0
		a.RPID = h.passkeys.RPID()
		a.UserHandle = base64.RawURLEncoding.EncodeToString([]byte(user.ID))
		ids := make([]string, 0, len(creds))
		for _, p := range a.Passkeys {
			ids = append(ids, p.ID)
		}
		a.AcceptedIDs = strings.Join(ids, ",")
	} else if deleted {
		a.Deleted, a.BackToPassword = true, len(creds) == 0
	}
	h.render(w, r, status, "account", &templates.Page{
		Title: "s8.title", Notice: notice, Error: errKey, Account: a,
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
	})
}

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
	ended, err := h.endUserAccess(r, user.ID, s.ID)
	if err != nil {
		detail[audit.KeyAccessEnded] = "failed"
		h.audit(r, audit.PasskeyDeleted, user.ID, detail)
		h.internalError(w, r, "S8 delete", err)
		return
	}
	h.audit(r, audit.PasskeyDeleted, user.ID, detail.WithAccessEnded(ended))
	http.Redirect(w, r, accountURL(rt, "deleted", "1"), http.StatusSeeOther)
}

// accountCeremony is the session for S8's JSON endpoints; nil means
// answered.
func (h *Handler) accountCeremony(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User) {
	if h.passkeys == nil {
		h.jsonFail(w, r, http.StatusServiceUnavailable, "unavailable", "err.passkey_unavailable")
		return nil, nil
	}
	s, user, err := h.loadSession(r)
	if errors.Is(err, errNoSession) {
		h.jsonFail(w, r, http.StatusUnauthorized, "session_required", "err.session_required")
		return nil, nil
	}
	if err != nil {
		h.log.ErrorContext(r.Context(), "loading session for S8 ceremony", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil, nil
	}
	return s, user
}

// accountStepUpOptions begins the passkey assertion that refreshes a
// session; the ceremony is bound to the session (WebAuthnSession.FlowID).
func (h *Handler) accountStepUpOptions(w http.ResponseWriter, r *http.Request) {
	s, _ := h.accountCeremony(w, r)
	if s == nil {
		return
	}
	opts, err := h.passkeys.BeginLogin(r.Context(), s.ID, false)
	h.writeOptions(w, r, "begin step-up", opts, err)
}

// accountStepUpFinish checks the assertion is the session user's own and
// replaces the session by a fresh one with a new auth time.
func (h *Handler) accountStepUpFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s, user := h.accountCeremony(w, r)
	if s == nil {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	res, err := h.passkeys.FinishStepUp(ctx, s.ID, user.ID, body)
	var wrong *passkey.WrongUserError
	if errors.As(err, &wrong) {
		// Someone else's passkey on this browser proves nothing about
		// the session's owner.
		h.log.WarnContext(ctx, "S8 step-up with another user's passkey", "user", user.ID, "asserted_user", wrong.AssertedUserID)
		h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyReason: "step_up_other_user", audit.KeyAssertedUser: wrong.AssertedUserID})
		h.jsonFail(w, r, http.StatusForbidden, "wrong_user", "err.step_up_wrong_user")
		return
	}
	if err != nil {
		h.auditPasskeyFailure(r, err)
		h.passkeyError(w, r, "finish step-up", err)
		return
	}
	if _, err := h.renewSession(w, r, s, proof{amr: res.AMR, acr: h.cfg.ACR.Passkey, at: h.now()}); err != nil {
		h.log.ErrorContext(ctx, "renewing session after step-up", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return
	}
	h.audit(r, audit.LoginSuccess, user.ID, audit.Detail{audit.KeyMethod: methodPasskey, audit.KeyStepUp: "true", audit.KeyAMR: fmt.Sprint(res.AMR)})
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	next := accountURL(rt)
	if id := r.URL.Query().Get("id"); id != "" {
		if _, ok := credentialID(id); ok {
			next = deleteURL(id, rt)
		}
	}
	h.writeJSON(w, http.StatusOK, map[string]string{"redirect": next})
}

// accountRegistration checks rules 1, 2 and 4 for 「このデバイスでパスキーを
// 追加」 and says whether the new passkey must be the first.
func (h *Handler) accountRegistration(w http.ResponseWriter, r *http.Request) (*storage.Session, *storage.User, bool) {
	s, user := h.accountCeremony(w, r)
	if s == nil {
		return nil, nil, false
	}
	n, err := h.store.CountCredentials(r.Context(), user.ID)
	if err != nil {
		h.log.ErrorContext(r.Context(), "counting passkeys", "err", err)
		h.jsonFail(w, r, failureStatus(w, err), "internal", "err.internal")
		return nil, nil, false
	}
	sr := h.rights(s)
	if key := sr.addBlocked(user, n); key != "" {
		code := "reauthenticate"
		if key == "s8.add_pwd_only" || key == "err.temporary_password" {
			code = "insufficient_auth"
		}
		h.log.InfoContext(r.Context(), "S8: passkey creation refused", "user", user.ID, "reason", key, "amr", s.AMR)
		h.jsonFail(w, r, http.StatusForbidden, code, key)
		return nil, nil, false
	}
	return s, user, true
}

func (h *Handler) accountRegisterOptions(w http.ResponseWriter, r *http.Request) {
	s, user, ok := h.accountRegistration(w, r)
	if !ok {
		return
	}
	opts, err := h.passkeys.BeginRegistration(r.Context(), user, s.ID)
	h.writeOptions(w, r, "begin S8 registration", opts, err)
}

func (h *Handler) accountRegisterFinish(w http.ResponseWriter, r *http.Request) {
	s, user, ok := h.accountRegistration(w, r)
	if !ok {
		return
	}
	body := h.ceremonyBody(w, r)
	if body == nil {
		return
	}
	// Password + OTP may only create the first passkey (rule 1), even here;
	// addBlocked already refused it otherwise, this makes it race-free.
	onlyIfFirst := !h.rights(s).passkey
	cred, err := h.passkeys.FinishRegistration(r.Context(), user, s.ID, body, onlyIfFirst)
	if err != nil {
		h.passkeyError(w, r, "finish S8 registration", err)
		return
	}
	h.passkeyAdded(r, user, cred)
	rt := h.returnTo(r, r.URL.Query().Get("return_to"))
	h.writeJSON(w, http.StatusOK, map[string]string{"redirect": accountURL(rt, "added", "1")})
}

// passkeyAdded records a new passkey and tells the customer by mail. The
// mail is a warning for the case it was not them; a failed mail must not
// undo the registration, so it is only logged.
func (h *Handler) passkeyAdded(r *http.Request, user *storage.User, cred *storage.Credential) {
	ctx := r.Context()
	h.audit(r, audit.PasskeyRegistered, user.ID, audit.Detail{
		audit.KeyCredential: audit.Credential(cred.ID), audit.KeyName: cred.Name,
		audit.KeyAttachment: cred.Attachment, audit.KeySynced: fmt.Sprint(cred.BackupEligible),
	})
	lang := languageFrom(ctx) // the mail follows the page the passkey was added on
	msg := mail.Message{
		To:      user.Email,
		Subject: h.cfg.PasskeyMailSubject,
		Body: fmt.Sprintf(templates.Text(lang, "mail.passkey_added_body"), cred.Name, formatTime(cred.CreatedAt, lang),
			h.cfg.Support.Name, h.cfg.Support.Phone, h.cfg.Support.Email, templates.Hours(lang, h.cfg.Support.Hours)),
	}
	if err := h.mailer.Send(ctx, msg); err != nil {
		h.log.ErrorContext(ctx, "sending new-passkey notification failed", "user", user.ID, "err", err)
		h.audit(r, audit.PasskeyNotificationFailed, user.ID, nil)
		return
	}
	h.log.InfoContext(ctx, "new-passkey notification sent", "user", user.ID, "to", maskEmail(user.Email))
}

// getLoggedOut is where end_session lands without a post-logout URI.
func (h *Handler) getLoggedOut(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "logged_out", &templates.Page{Title: "logout.title", HomeURL: h.cfg.HomeURL})
}
