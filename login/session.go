package login

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
)

// The SSO session's life cycle, in one place: a session is created when a
// login completes (completeLogin), loaded from its cookie by SSO, S8 and
// logout, renewed by S8's step-up, and ended by logout or, for all of a
// user's sessions at once, by a change that must sign every other device
// out. The cookie holds a random handle; the row's ID is its HashSecret.
// Whichever way a session ends, the store enqueues the back-channel
// logouts of the relying parties it signed in to; nothing here sends them.

var errNoSession = errors.New("login: no usable session")

// cookieSession is the unexpired session named by the request's cookie,
// whatever its user's state; errNoSession when there is none.
func (h *Handler) cookieSession(r *http.Request) (*storage.Session, error) {
	handle := h.cookie(r, sessionCookie)
	if handle == "" {
		return nil, errNoSession
	}
	s, err := h.store.SessionByID(r.Context(), storage.HashSecret(handle))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	if !h.now().Before(s.ExpiresAt) {
		return nil, errNoSession
	}
	return s, nil
}

// loadSession is cookieSession with its user: errNoSession also when the
// user is gone or locked, since such a session signs no one in.
func (h *Handler) loadSession(r *http.Request) (*storage.Session, *storage.User, error) {
	su, err := h.sessionWithUser(r)
	if err != nil {
		return nil, nil, err
	}
	return &su.Session, &su.User, nil
}

// sessionWithUser is loadSession in one store read, which also tells
// whether the user has a passkey (what trySSO needs besides).
func (h *Handler) sessionWithUser(r *http.Request) (*storage.SessionUser, error) {
	handle := h.cookie(r, sessionCookie)
	if handle == "" {
		return nil, errNoSession
	}
	su, err := h.store.SessionWithUser(r.Context(), storage.HashSecret(handle))
	if errors.Is(err, storage.ErrNotFound) {
		// Gone, expired, or its user deleted (which deletes the session).
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	if !h.now().Before(su.Session.ExpiresAt) {
		return nil, errNoSession
	}
	if su.User.Locked {
		h.log.InfoContext(r.Context(), "session of a locked user ignored", "user", su.User.ID, "path", r.URL.Path)
		return nil, errNoSession
	}
	return su, nil
}

// createSession stores a session for userID proven by p and returns the
// handle for the cookie; setting the cookie is the caller's last step,
// once everything else succeeded.
func (h *Handler) createSession(r *http.Request, userID string, p proof) (string, *storage.Session, error) {
	handle, err := randomSecret()
	if err != nil {
		return "", nil, err
	}
	now := h.now()
	s := &storage.Session{
		ID: storage.HashSecret(handle), UserID: userID, AuthTime: p.at, AMR: p.amr, ACR: p.acr,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(h.cfg.SessionLifetime), UserAgent: sessionUserAgent(r),
	}
	if err := h.store.CreateSession(r.Context(), s); err != nil {
		return "", nil, fmt.Errorf("creating session: %w", err)
	}
	return handle, s, nil
}

func (h *Handler) setSessionCookie(w http.ResponseWriter, handle string) {
	h.setCookie(w, sessionCookie, handle, h.cfg.SessionLifetime)
}

// dropCookieSession deletes the session the request's cookie names, if
// any, and leaves the cookie to the caller: a fresh session per
// authentication means the previous one (perhaps of another user on a
// shared PC) must not linger.
func (h *Handler) dropCookieSession(r *http.Request) {
	handle := h.cookie(r, sessionCookie)
	if handle == "" {
		return
	}
	if err := h.store.DeleteSession(r.Context(), storage.HashSecret(handle)); err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.ErrorContext(r.Context(), "deleting previous session", "err", err)
	}
}

// renewSession replaces s by a session authenticated now: a new cookie
// value after a new proof (no fixation of the old value), but the same
// session to the relying parties (its SID and clients stay, none is told
// of a logout). A session ended meanwhile (staff, another tab) stays
// ended: the store refuses to renew it.
func (h *Handler) renewSession(w http.ResponseWriter, r *http.Request, s *storage.Session, p proof) (*storage.Session, error) {
	handle, err := randomSecret()
	if err != nil {
		return nil, err
	}
	now := h.now()
	next := &storage.Session{
		ID: storage.HashSecret(handle), UserID: s.UserID, AuthTime: p.at, AMR: p.amr, ACR: p.acr,
		LastSeenAt: now, ExpiresAt: now.Add(h.cfg.SessionLifetime),
	}
	if err := h.store.RenewSession(r.Context(), s.ID, next); err != nil {
		return nil, fmt.Errorf("renewing session: %w", err)
	}
	h.setSessionCookie(w, handle)
	return next, nil
}

// endSession deletes the SSO session of the request and the login cookies.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) {
	s, err := h.cookieSession(r)
	if err != nil && !errors.Is(err, errNoSession) {
		h.log.ErrorContext(r.Context(), "loading session at logout", "err", err)
	}
	if s != nil {
		if err := h.store.DeleteSession(r.Context(), s.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.log.ErrorContext(r.Context(), "deleting session at logout", "err", err)
		} else {
			h.audit(r, audit.SessionEnded, s.UserID, nil)
		}
	}
	h.clearCookie(w, sessionCookie)
	h.clearCookie(w, flowCookie)
}

// endUserAccess signs userID out of every other browser and every relying
// party: their sessions but keepSessionID are deleted and all their tokens
// revoked. A change that means a device may be in the wrong hands (a
// passkey deleted) calls it; the browser that made the change stays signed
// in.
func (h *Handler) endUserAccess(r *http.Request, userID, keepSessionID string, at time.Time) (storage.AccessEnded, error) {
	ended, err := h.store.EndUserAccess(r.Context(), userID, keepSessionID, at)
	if err != nil {
		return storage.AccessEnded{}, fmt.Errorf("ending the user's other sessions and tokens: %w", err)
	}
	h.log.InfoContext(r.Context(), "user's other sessions and tokens ended", "user", userID,
		"sessions", ended.Sessions, "refresh_tokens", ended.RefreshTokens, "access_tokens", ended.AccessTokens)
	return ended, nil
}
