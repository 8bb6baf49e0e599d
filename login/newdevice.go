package login

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/useragent"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// The device cookie and the new sign-in mail. Every login that opens a
// session (completeLogin; SSO answers open none) remembers the browser for
// the customer by a long-lived random cookie; a browser new to a customer
// who has signed in on another one before gets them a mail, if
// NewDeviceMail is on. A first sign-in, or the first since browsers are
// remembered, mails nobody: there is no "before" to compare with.

const (
	deviceCookie = "idp_device"
	// deviceCookieLifetime is the longest a browser keeps a cookie (the
	// 400 days Chrome caps Max-Age at); each sign-in sets it again.
	deviceCookieLifetime = 400 * 24 * time.Hour
	// newDeviceMailTimeout bounds the mail, which is sent after the
	// response: the customer is not waiting for it, so a slow relay must
	// not hold up their sign-in.
	newDeviceMailTimeout = time.Minute
	// auditAfterTimeout bounds recording its outcome.
	auditAfterTimeout = 10 * time.Second
)

// isDeviceSecret reports whether v is what randomSecret makes; anything
// else in the cookie (planted, truncated) is replaced by a fresh one.
func isDeviceSecret(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

// deviceHash is what the store keeps of a device cookie. It is bound to
// the user, so one browser shared by two customers is two unrelated rows
// and the table never says that two customers share a device.
func deviceHash(userID, secret string) string {
	return storage.HashSecret(secret + ":" + userID)
}

// noteDevice runs once a login has opened session s for user, completing
// authRequestID ("" for S8's own sign-in): it makes sure the browser
// carries a device cookie, remembers the browser and, when it is new to
// a customer who signed in elsewhere before, mails address 1. It only
// informs: whatever fails here is logged and the sign-in goes on.
func (h *Handler) noteDevice(w http.ResponseWriter, r *http.Request, user *storage.User, s *storage.Session, authRequestID string) {
	ctx := r.Context()
	secret := h.cookie(r, deviceCookie)
	if !isDeviceSecret(secret) {
		var err error
		if secret, err = randomSecret(); err != nil {
			h.log.ErrorContext(ctx, "making a device cookie", "user", user.ID, "err", err)
			return
		}
	}
	h.setCookie(w, deviceCookie, secret, deviceCookieLifetime)
	seen, err := h.store.RememberDevice(ctx, user.ID, deviceHash(user.ID, secret), s.CreatedAt, h.cfg.KnownDevices)
	if err != nil {
		h.log.WarnContext(ctx, "remembering the browser failed; no new sign-in mail", "user", user.ID, "err", err)
		return
	}
	if seen != storage.DeviceNew {
		h.log.DebugContext(ctx, "browser remembered", "user", user.ID, "device", seen)
		return
	}
	if !h.cfg.NewDeviceMail {
		h.audit(r, audit.SessionNewDevice, user.ID, audit.Detail{audit.KeyNotified: "false"})
		return
	}
	msg := h.newDeviceMail(ctx, user, s, h.clientOf(ctx, authRequestID))
	entry := h.auditEntry(r, user.ID, nil)
	detached := context.WithoutCancel(ctx) // keeps the request ID for the log lines
	h.after.Go(func() {
		entry.Detail = audit.Detail{audit.KeyNotified: h.sendAfter(detached, user, msg)}
		entry.Time = h.now()
		ctx, cancel := context.WithTimeout(detached, auditAfterTimeout)
		defer cancel()
		h.record(ctx, audit.SessionNewDevice, entry)
	})
}

// sendAfter sends the new sign-in mail and says how it went, in the audit
// trail's words.
func (h *Handler) sendAfter(ctx context.Context, user *storage.User, msg mail.Message) string {
	ctx, cancel := context.WithTimeout(ctx, newDeviceMailTimeout)
	defer cancel()
	if err := h.mailer.Send(ctx, msg); err != nil {
		h.log.ErrorContext(ctx, "sending the new sign-in mail failed", "user", user.ID, "err", err)
		return "failed"
	}
	h.log.InfoContext(ctx, "new sign-in mail sent", "user", user.ID, "to", maskEmail(user.Email))
	return "true"
}

// clientOf names the website of the auth request for the new sign-in mail,
// read only when a mail goes out ("" when unknown: the mail names S8).
func (h *Handler) clientOf(ctx context.Context, authRequestID string) string {
	if authRequestID == "" {
		return ""
	}
	ar, err := h.store.AuthRequestByID(ctx, authRequestID)
	if err != nil {
		h.log.WarnContext(ctx, "new sign-in mail without the website", "auth_request", authRequestID, "err", err)
		return ""
	}
	return ar.ClientID
}

// newDeviceMail is the notice in the page language: when, which browser
// (only the names useragent knows, never the client's own text), which
// website, and the way to S8 and the centre.
func (h *Handler) newDeviceMail(ctx context.Context, user *storage.User, s *storage.Session, clientID string) mail.Message {
	lang := languageFrom(ctx)
	d := useragent.Parse(s.UserAgent)
	device := d.Browser
	if device == "" {
		device = templates.Text(lang, "s8.session_unknown_browser")
	}
	if d.OS != "" {
		device += " (" + d.OS + ")"
	}
	website := templates.Text(lang, "s8.title")
	if clientID != "" {
		website = clientID
		if name, err := h.op.ClientName(clientID); err == nil {
			website = name
		}
	}
	return mail.Message{
		To:      user.Email,
		Subject: h.cfg.NewDeviceMailSubject,
		Body: fmt.Sprintf(templates.Text(lang, "mail.new_device_body"), formatTime(s.CreatedAt, lang), device, website,
			h.cfg.Issuer+pathAccount, h.cfg.Support.Name, h.cfg.Support.Phone, h.cfg.Support.Email,
			templates.Hours(lang, h.cfg.Support.Hours)),
	}
}

// Drain waits until the work that answered requests left running (the new
// sign-in mails) is done, or ctx ends. The server calls it once it stopped
// taking requests, before the store closes.
func (h *Handler) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		h.after.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("login: new sign-in mails still being sent: %w", context.Cause(ctx))
	}
}

var errNoIssuer = errors.New("login: NewDeviceMail needs the Issuer for the link to S8")
