package login

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

const (
	flowCookie    = "idp_flow"
	sessionCookie = "idp_session"
)

// Steps of the login state machine (LoginFlow.Step).
const (
	stepStart          = "start"           // S1 / S2
	stepPassword       = "password"        // S3 (F1)
	stepOTP            = "otp"             // S4 (F1)
	stepCreate         = "create"          // S5
	stepChangePassword = "change_password" // S7
	stepOffer          = "offer"           // the passkey offer after F4
)

// Purposes of a flow (LoginFlow.Purpose).
const (
	purposeLogin = "login" // F2/F3/F4
	purposeEnrol = "enrol" // F1: password + OTP to create the first passkey
)

var stepPaths = map[string]string{
	stepStart:          pathLogin,
	stepPassword:       pathPassword,
	stepOTP:            pathOTP,
	stepCreate:         pathCreate,
	stepChangePassword: pathChangePassword,
	stepOffer:          pathOffer,
}

// flowData is the step-specific part of a flow, kept as JSON in LoginFlow.Data.
type flowData struct {
	// CrossDevice: the passkey login came from another device (F3), so S5
	// shows its 「このデバイスでクイックにサインイン」 variant.
	CrossDevice bool `json:"cross_device,omitempty"`
	// PasskeyAMR are the methods of the passkey login, kept until the flow
	// completes from S5.
	PasskeyAMR []string `json:"passkey_amr,omitempty"`
	// ReturnTo is S8's return_to for a flow started by S8 (no auth
	// request); it is checked again when S8 shows it.
	ReturnTo string `json:"return_to,omitempty"`
	// FormError is the refusal of the last form post, shown once by the
	// GET of its page (formerror.go).
	FormError *formError `json:"form_error,omitempty"`
	// Offer: the flow is the passkey offer after a password login; it may
	// end without a passkey (「今はしない」 at the offer or at S4 unless the
	// code is required, S5's skip), and declining is remembered for the
	// user.
	Offer bool `json:"offer,omitempty"`
	// CodeRequired: the client's acr_values demand password + code, so the
	// code is not optional; without Offer a right code completes the login
	// at once instead of leading to S5.
	CodeRequired bool `json:"code_required,omitempty"`
}

func decodeFlowData(f *storage.LoginFlow) flowData {
	var d flowData
	if len(f.Data) > 0 {
		_ = json.Unmarshal(f.Data, &d) // written only by encode below
	}
	return d
}

func encodeFlowData(f *storage.LoginFlow, d flowData) {
	b, _ := json.Marshal(d) // plain struct: cannot fail
	f.Data = b
}

var errNoFlow = errors.New("login: no current flow")

// randomSecret returns 32 random bytes, base64url: a cookie value whose
// HashSecret is the row ID.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// cookieName is name with the __Host- prefix when cookies are Secure: the
// browser then refuses the cookie unless it was set by this host over https
// for the whole site, so a sibling subdomain or a plain-http answer cannot
// plant a flow or session handle.
func (h *Handler) cookieName(name string) string {
	if h.cfg.SecureCookies {
		return "__Host-" + name
	}
	return name
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(name), Value: value, Path: "/", MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(name), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: h.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// cookie is the value of our cookie name ("" when absent).
func (h *Handler) cookie(r *http.Request, name string) string {
	c, err := r.Cookie(h.cookieName(name))
	if err != nil {
		return ""
	}
	return c.Value
}

// startFlow creates a fresh flow for an auth request and hands its handle
// to the browser.
func (h *Handler) startFlow(w http.ResponseWriter, r *http.Request, authRequestID, loginHint string) (*storage.LoginFlow, error) {
	return h.startFlowWith(w, r, authRequestID, loginHint, flowData{})
}

// startFlowWith is startFlow with initial step data (S8 keeps its
// return_to there).
func (h *Handler) startFlowWith(w http.ResponseWriter, r *http.Request, authRequestID, loginHint string, d flowData) (*storage.LoginFlow, error) {
	handle, err := randomSecret()
	if err != nil {
		return nil, err
	}
	now := h.now()
	f := &storage.LoginFlow{
		ID: storage.HashSecret(handle), AuthRequestID: authRequestID, LoginID: loginHint,
		Purpose: purposeLogin, Step: stepStart, CreatedAt: now, ExpiresAt: now.Add(h.cfg.FlowLifetime),
	}
	if d.ReturnTo != "" || d.CrossDevice || d.PasskeyAMR != nil {
		encodeFlowData(f, d)
	}
	if err := h.store.CreateLoginFlow(r.Context(), f); err != nil {
		return nil, fmt.Errorf("creating login flow: %w", err)
	}
	h.setCookie(w, flowCookie, handle, h.cfg.FlowLifetime)
	return f, nil
}

// currentFlow loads the flow named by the cookie; errNoFlow when there is
// none or it expired.
func (h *Handler) currentFlow(r *http.Request) (*storage.LoginFlow, error) {
	handle := h.cookie(r, flowCookie)
	if handle == "" {
		return nil, errNoFlow
	}
	f, err := h.store.LoginFlowByID(r.Context(), storage.HashSecret(handle))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoFlow
	}
	if err != nil {
		return nil, fmt.Errorf("loading login flow: %w", err)
	}
	if !h.now().Before(f.ExpiresAt) {
		return nil, errNoFlow
	}
	return f, nil
}

// liveFlow loads the current flow at whatever step. Without one the
// customer gets the page of expiredKey; a store failure is ours (503 while
// the database cannot serve), never "your session expired". nil means
// answered.
func (h *Handler) liveFlow(w http.ResponseWriter, r *http.Request, expiredKey string) *storage.LoginFlow {
	f, err := h.currentFlow(r)
	if errors.Is(err, errNoFlow) {
		h.log.InfoContext(r.Context(), "login page without a live flow", "path", r.URL.Path)
		h.staleLogin(w, r, http.StatusBadRequest, expiredKey)
		return nil
	}
	if err != nil {
		h.internalError(w, r, "loading flow", err)
		return nil
	}
	return f
}

// staleLogin answers a page of a login that is over: no flow, or an auth
// request already completed. A customer with a live session (Back after
// the sign-in went through) is told they are signed in, with the way to
// the website, instead of "expired"; anyone else gets the page of key.
// Only a GET is answered so: a POST of a finished step did not happen.
func (h *Handler) staleLogin(w http.ResponseWriter, r *http.Request, status int, key string) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		_, user, err := h.loadSession(r)
		if err == nil {
			h.log.InfoContext(r.Context(), "finished login page shown to a signed-in customer", "user", user.ID, "path", r.URL.Path)
			h.render(w, r, http.StatusOK, "signed_in", &templates.Page{Title: "signed_in.title", HomeURL: h.cfg.HomeURL})
			return
		}
		if !errors.Is(err, errNoSession) {
			h.log.ErrorContext(r.Context(), "loading session for a finished login page", "err", err)
		}
	}
	h.renderError(w, r, status, key, "")
}

// flowAt loads the current flow and checks it is at one of steps. It
// answers the request itself (error page or redirect to the flow's real
// step) and returns nil when the caller must stop.
func (h *Handler) flowAt(w http.ResponseWriter, r *http.Request, steps ...string) *storage.LoginFlow {
	f, err := h.currentFlow(r)
	if errors.Is(err, errNoFlow) {
		h.log.InfoContext(r.Context(), "login step without a live flow", "path", r.URL.Path)
		h.staleLogin(w, r, http.StatusBadRequest, "err.flow_expired")
		return nil
	}
	if err != nil {
		h.internalError(w, r, "loading flow", err)
		return nil
	}
	if slices.Contains(steps, f.Step) {
		return f
	}
	h.log.InfoContext(r.Context(), "login step out of order", "path", r.URL.Path, "step", f.Step)
	if p, ok := stepPaths[f.Step]; ok && r.Method == http.MethodGet {
		http.Redirect(w, r, p, http.StatusSeeOther)
		return nil
	}
	h.renderError(w, r, http.StatusConflict, "err.flow_expired", loginURL(f.AuthRequestID))
	return nil
}

// completeLogin finishes a flow: a new SSO session, the auth request marked
// done at the OP, the flow deleted. It returns where to send the browser.
// The session cookie is set only when everything else succeeded.
// proof is how and when the flow's user authenticated: auth_time in the ID
// token and the session's age (rule 4, S8) are this time, not the time a
// later page (S5, say) completed the login.
type proof struct {
	amr []string
	acr string
	at  time.Time
}

func (h *Handler) completeLogin(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User, p proof) (string, error) {
	ctx := r.Context()
	amr, acr := p.amr, p.acr
	// Every way of finishing a login passes here, so this is where a locked
	// account is stopped whatever step it was locked during, and where a client
	// that demands a level of assurance (acr_values) is protected from
	// receiving a weaker login (e.g. a password + OTP enrolment that just
	// created a passkey but did not sign in with it).
	if user.Locked {
		h.log.InfoContext(ctx, "login refused: account locked", "user", user.ID, "auth_request", f.AuthRequestID)
		return "", errLocked
	}
	// A passkey login is the highest level: it satisfies any acr_values
	// and needs no read of the request to say so.
	if f.AuthRequestID != "" && h.cfg.ACR.level(acr) < levelPasskey {
		ar, err := h.store.AuthRequestByID(ctx, f.AuthRequestID)
		if err != nil {
			return "", fmt.Errorf("loading auth request: %w", err)
		}
		if !h.cfg.ACR.satisfies(acr, ar.ACRValues) {
			h.log.InfoContext(ctx, "login refused: weaker than the client's acr_values", "user", user.ID, "client", ar.ClientID, "acr", acr, "acr_values", ar.ACRValues)
			h.audit(r, audit.LoginFailure, user.ID, audit.Detail{audit.KeyMethod: loginMethod(amr), audit.KeyReason: "acr_not_met", audit.KeyAuthRequest: ar.ID})
			notice := noticeCodeRequired
			if h.passkeyOnly(ar) {
				notice = noticePasskeyRequired
			}
			return loginURL(ar.ID) + "&" + noticeParam + "=" + notice, errACRNotMet
		}
	}
	handle, s, err := h.createSession(r, user.ID, p)
	if err != nil {
		return "", err
	}
	// A flow without an auth request was started by S8 for the IdP's own
	// account pages: it ends there, not at the OP.
	redirect := accountURL(decodeFlowData(f).ReturnTo)
	if f.AuthRequestID != "" {
		redirect, err = h.op.Complete(w, r, f.AuthRequestID, s)
	}
	if err != nil {
		if derr := h.store.DeleteSession(ctx, s.ID); derr != nil {
			h.log.ErrorContext(ctx, "deleting session of a failed completion", "err", derr)
		}
		return "", fmt.Errorf("completing auth request: %w", err)
	}
	h.dropCookieSession(r)
	if err := h.store.DeleteLoginFlow(ctx, f.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.ErrorContext(ctx, "deleting finished flow", "err", err)
	}
	h.setSessionCookie(w, handle)
	h.clearCookie(w, flowCookie)
	h.audit(r, audit.LoginSuccess, user.ID, audit.Detail{audit.KeyMethod: loginMethod(amr), audit.KeyAMR: fmt.Sprint(amr), audit.KeyACR: acr, audit.KeyAuthRequest: f.AuthRequestID})
	h.log.InfoContext(ctx, "login completed", "user", user.ID, "amr", amr, "acr", acr, "auth_request", f.AuthRequestID)
	h.noteDevice(w, r, user, s, f.AuthRequestID)
	return redirect, nil
}

// errACRNotMet: the login succeeded but is weaker than the client's
// acr_values demand; completeLogin's URL leads back to S1 with a notice
// saying what is needed.
var errACRNotMet = errors.New("login weaker than the client's acr_values")

// errLocked: the support centre locked the account while the login was on
// its way; finish and jsonComplete answer it as a locked account.
var errLocked = errors.New("account locked")

// The notices S1 shows when errACRNotMet sent the browser back.
const (
	noticeParam           = "notice"
	noticePasskeyRequired = "passkey_required"
	noticeCodeRequired    = "code_required"
)

// finish is completeLogin for form posts: a 303 to the OP, or an error page.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow, user *storage.User, p proof) {
	redirect, err := h.completeLogin(w, r, f, user, p)
	if errors.Is(err, errACRNotMet) {
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	if errors.Is(err, errLocked) {
		h.renderError(w, r, http.StatusForbidden, "err.locked", "")
		return
	}
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
		h.log.InfoContext(r.Context(), "auth request gone or already completed", "err", err)
		h.renderError(w, r, http.StatusBadRequest, "err.auth_request", "")
		return
	}
	if err != nil {
		h.internalError(w, r, "completing login", err)
		return
	}
	http.Redirect(w, r, redirect, http.StatusSeeOther)
}

// updateFlow writes f; a lost race (ErrConflict) is reported as such so the
// caller can treat it as a failed attempt.
func (h *Handler) updateFlow(r *http.Request, f *storage.LoginFlow) error {
	if err := h.store.UpdateLoginFlow(r.Context(), f); err != nil {
		return fmt.Errorf("updating login flow: %w", err)
	}
	return nil
}

// advanceFlow is updateFlow for a step that proved a factor (password,
// code, passkey): the flow moves to a new handle and the browser gets it,
// so a handle planted in the victim's browser before the factor, or copied
// from it, is dead after it (session fixation).
func (h *Handler) advanceFlow(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow) error {
	handle, err := randomSecret()
	if err != nil {
		return err
	}
	if err := h.store.RekeyLoginFlow(r.Context(), f, storage.HashSecret(handle)); err != nil {
		return fmt.Errorf("rekeying login flow: %w", err)
	}
	h.setCookie(w, flowCookie, handle, f.ExpiresAt.Sub(h.now()))
	return nil
}

// within reports whether t is set and no older than d.
func within(t *time.Time, now time.Time, d time.Duration) bool {
	return t != nil && now.Sub(*t) <= d
}

func timePtr(t time.Time) *time.Time { return &t }

// Login methods as the audit trail names them.
const (
	methodPasskey     = "passkey"
	methodPassword    = "password"
	methodPasswordOTP = "password+otp"
)

// loginMethod names the audit method of a session's RFC 8176 methods.
func loginMethod(amr []string) string {
	switch {
	case isPasskeyAMR(amr):
		return methodPasskey
	case slices.Contains(amr, "otp"):
		return methodPasswordOTP
	}
	return methodPassword
}

// isPasskeyAMR: the methods of a passkey login ("hwk" device-bound, "swk"
// synced).
func isPasskeyAMR(amr []string) bool {
	return slices.Contains(amr, "hwk") || slices.Contains(amr, "swk")
}

// flowUser loads the user a flow has identified. A user deleted (or never
// identified) since the flow began is the customer's stale flow, not our
// failure: it gets the expired-flow page. nil means answered.
func (h *Handler) flowUser(w http.ResponseWriter, r *http.Request, f *storage.LoginFlow) *storage.User {
	if f.UserID == "" {
		h.log.WarnContext(r.Context(), "flow step without an identified user", "path", r.URL.Path, "step", f.Step)
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return nil
	}
	user, err := h.store.UserByID(r.Context(), f.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		h.log.InfoContext(r.Context(), "flow of a deleted user", "path", r.URL.Path, "user", f.UserID)
		h.renderError(w, r, http.StatusBadRequest, "err.flow_expired", loginURL(f.AuthRequestID))
		return nil
	}
	if err != nil {
		h.internalError(w, r, "loading the flow's user", err)
		return nil
	}
	return user
}
