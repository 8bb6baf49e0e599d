package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/storagetest"
)

var enrolLinkRE = regexp.MustCompile(`https://id\.example\.com/enrol\?t=[A-Za-z0-9_-]+`)

func linkFrom(t *testing.T, text string) (link, secret string) {
	t.Helper()
	link = enrolLinkRE.FindString(text)
	if link == "" {
		t.Fatalf("no enrolment link in:\n%s", text)
	}
	u, _ := url.Parse(link)
	return link, u.Query().Get("t")
}

// TestUsersEnrolmentLink: --print prints a link valid for the default
// 24 hours, a second one supersedes it, a locked or unknown customer gets
// none, and each issue is audited as the operator.
func TestUsersEnrolmentLink(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		c := newCLI(t, flavor)
		c.ok("users", "create", "rin", "--email", "rin@example.com")
		ctx := context.Background()

		_, first := linkFrom(t, c.ok("users", "enrolment-link", "rin", "--print"))
		l, err := c.store.EnrolmentLinkByID(ctx, storage.HashSecret(first))
		if err != nil {
			t.Fatal(err)
		}
		if l.UserID != c.user("rin").ID || l.ExpiresAt.Sub(l.CreatedAt) != 24*time.Hour || l.IssuedBy != "staff:tester" {
			t.Fatalf("stored link = %+v", l)
		}
		_, second := linkFrom(t, c.ok("users", "enrolment-link", "rin", "--print"))
		if l, err := c.store.EnrolmentLinkByID(ctx, storage.HashSecret(first)); err != nil || l.SupersededAt == nil {
			t.Fatalf("first link after a second one = %+v, %v", l, err)
		}
		if second == first {
			t.Fatal("two links share a secret")
		}
		var issued int
		for _, e := range c.auditEvents() {
			if e.Type == "enrolment.link_issued" && e.Actor == "staff:tester" && e.Detail["delivery"] == "print" && e.Detail["expires"] != "" {
				issued++
			}
		}
		if issued != 2 {
			t.Fatalf("%d enrolment.link_issued events, want 2", issued)
		}

		c.ok("users", "lock", "rin")
		r := c.run("users", "enrolment-link", "rin", "--print")
		if r.err == nil || !strings.Contains(r.err.Error(), "locked") || enrolLinkRE.MatchString(r.stdout) {
			t.Fatalf("link for a locked user: %v\n%s", r.err, r.stdout)
		}
		if r := c.run("users", "enrolment-link", "nobody"); r.err == nil || !strings.Contains(r.err.Error(), "no user") {
			t.Fatalf("link for an unknown user: %v", r.err)
		}
		if r := c.run("users", "enrolment-link", "rin", "--yes"); r.status() != 2 {
			t.Fatalf("a flag of another command: status %d, %v", r.status(), r.err)
		}
	})
}

// TestUsersEnrolmentLinkIsMailedToAddressOne: without --print the link
// goes by a real SMTP exchange to address 1, with the configured subject
// and lifetime, and is not printed.
func TestUsersEnrolmentLinkIsMailedToAddressOne(t *testing.T) {
	sink, err := mailsink.Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	host, port, _ := net.SplitHostPort(sink.Addr())
	c := newCLI(t, storagetest.Flavors()[0])
	body, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(body), "smtp: {host: smtp.example.com, username: u, password: p}",
		"smtp: {host: "+host+", port: "+port+", tls: none, enrolment_subject: 登録リンク}\nlifetimes: {enrolment_link: 2h}", 1)
	if err := os.WriteFile(c.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("users", "create", "mei", "--email", "mei@example.com")
	out := c.ok("users", "enrolment-link", "mei")
	if enrolLinkRE.MatchString(out) || !strings.Contains(out, "mei@example.com") {
		t.Fatalf("output of a mailed link:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := sink.WaitForNew(ctx, "mei@example.com", 0)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "登録リンク" || !strings.Contains(m.Body, "日証金コムストックローンセンター") {
		t.Fatalf("mail: subject %q body:\n%s", m.Subject, m.Body)
	}
	_, secret := linkFrom(t, m.Body)
	l, err := c.store.EnrolmentLinkByID(context.Background(), storage.HashSecret(secret))
	if err != nil || l.ExpiresAt.Sub(l.CreatedAt) != 2*time.Hour {
		t.Fatalf("mailed link = %+v, %v", l, err)
	}
}
