package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/login"
	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/templates"
)

// enrolmentLink is `idp users enrolment-link LOGIN_ID [--print]`: a
// single-use link to S4 and S5, mailed to address 1 (or printed for staff
// to pass on by another channel), instead of a temporary password read
// over the phone. A new link supersedes the customer's previous one.
func (u *usersCmd) enrolmentLink(ctx context.Context, cfg *config.Config, loginID string, printLink bool) error {
	usr, err := u.user(ctx, loginID)
	if err != nil {
		return err
	}
	if usr.Locked {
		return fmt.Errorf("%s is locked: a link would not work; `idp users unlock %s` first", loginID, loginID)
	}
	secret := make([]byte, 32)
	rand.Read(secret) // crypto/rand.Read never fails
	token := base64.RawURLEncoding.EncodeToString(secret)
	now := time.Now().UTC()
	l := &storage.EnrolmentLink{
		ID: storage.HashSecret(token), UserID: usr.ID, IssuedBy: string(u.actor),
		CreatedAt: now, ExpiresAt: now.Add(cfg.Lifetimes.EnrolmentLink),
	}
	if err := u.store.CreateEnrolmentLink(ctx, l); errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("another enrolment link for %s was issued at the same moment: run the command again", loginID)
	} else if err != nil {
		return fmt.Errorf("store enrolment link: %w", err)
	}
	link := login.EnrolLinkURL(strings.TrimRight(cfg.Issuer, "/"), token)
	expires := l.ExpiresAt.In(jst).Format(time.DateTime + " MST")
	delivery := "mail"
	if printLink {
		delivery = "print"
	}
	if !printLink {
		if err := u.mailEnrolmentLink(ctx, cfg, usr, link, l.ExpiresAt); err != nil {
			return fmt.Errorf("the link for %s was stored but not mailed (run the command again, or use --print): %w", loginID, err)
		}
	}
	if err := u.audit(ctx, audit.EnrolmentLinkIssued, usr, audit.Detail{
		audit.KeyExpires: l.ExpiresAt.Format(time.RFC3339), audit.KeyDelivery: delivery,
	}); err != nil {
		return err
	}
	if printLink {
		fmt.Fprintf(u.out, "enrolment link for %s (single use, valid until %s; any earlier link no longer works):\n%s\n", loginID, expires, link)
		return nil
	}
	fmt.Fprintf(u.out, "mailed an enrolment link to %s (address 1 of %s), single use, valid until %s; any earlier link no longer works\n",
		usr.Email, loginID, expires)
	return nil
}

// mailEnrolmentLink sends the link in Japanese, the customers' default
// language (the CLI has no page language to follow).
func (u *usersCmd) mailEnrolmentLink(ctx context.Context, cfg *config.Config, usr *storage.User, link string, expires time.Time) error {
	sender := &mail.SMTPSender{
		Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, TLS: cfg.SMTP.TLS,
		Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, From: cfg.SMTP.From,
	}
	const lang = "ja"
	return sender.Send(ctx, mail.Message{
		To:      usr.Email,
		Subject: cfg.SMTP.EnrolmentSubject,
		Body: fmt.Sprintf(templates.Text(lang, "mail.enrolment_link_body"), link, expires.In(jst).Format("2006年1月2日 15:04"),
			cfg.Support.Name, cfg.Support.Phone, cfg.Support.Email, templates.Hours(lang, cfg.Support.Hours)),
	})
}
