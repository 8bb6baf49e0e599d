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

	"github.com/comstockloan/idp/login/passkey"
	"github.com/comstockloan/idp/storage"
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
	page(pathAccountEndOthers, nil, h.postAccountEndOthers)
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
	case q.Get("signed_out") == "1":
		notice = "s8.ended_others"
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

// accountPage builds S8's view of the user's passkeys and sessions.
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
	if a.Sessions, err = h.sessionRows(r, s, lang); err != nil {
		return nil, nil, fmt.Errorf("listing sessions: %w", err)
	}
	a.OtherSessions = len(a.Sessions) - 1
	a.EndOthersURL = pathAccountEndOthers
	a.EndOthersAllowed = sr.mayDelete()
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
		Provider: providerText(passkey.ProviderOf(c.AAGUID, c.Transports), lang),
	}
	if c.LastUsedAt != nil {
		p.LastUsed = formatTime(*c.LastUsedAt, lang)
	}
	return p
}

// providerText is S8's words for who keeps a passkey: 「iCloud キーチェーン」,
// 「セキュリティキー（YubiKey 5 Series）」, a product name, or "" when unknown.
func providerText(p passkey.Provider, lang string) string {
	switch {
	case p.Key != "" && p.Product != "":
		return fmt.Sprintf(templates.Text(lang, "s8.provider_product"), templates.Text(lang, p.Key), p.Product)
	case p.Key != "":
		return templates.Text(lang, p.Key)
	}
	return p.Product
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
	a.Deleted, a.BackToPassword = deleted, deleted && len(creds) == 0
	if h.passkeys != nil {
		// Every load, not only after a delete here: the support centre may
		// have deleted one, and the device should not keep offering it.
		sig := h.passkeys.Signal(user, creds)
		a.Signal = &templates.PasskeySignal{
			RPID: sig.RPID, UserID: sig.UserID, Name: sig.Name, DisplayName: sig.DisplayName,
			CredentialIDs: strings.Join(sig.AcceptedCredentialIDs, ","),
		}
	}
	h.render(w, r, status, "account", &templates.Page{
		Title: "s8.title", Notice: notice, Error: errKey, Account: a,
		PasskeysAvailable: h.passkeys != nil, PasskeyScript: h.passkeys != nil,
	})
}
