package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// preparePasskeys returns a passkey for every user of the --users file
// (enrolling through F1 those the --keys file has none for at this issuer),
// or, without --users, every passkey of the file for this issuer.
func preparePasskeys(ctx context.Context, t *target, o *flowOptions, users []benchUser, stderr io.Writer) ([]*benchCredential, error) {
	file, err := loadPasskeys(o.keysFile)
	if err != nil {
		return nil, err
	}
	have := file.forIssuer(t.issuer)
	var missing []benchUser
	for _, u := range users {
		if have[u.LoginID] == nil {
			missing = append(missing, u)
		}
	}
	if len(missing) > 0 {
		mb, closeMailbox, err := o.mailbox(t)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "enrolling %d passkeys through F1 (password + OTP from %s)…\n", len(missing), mb)
		enrolled, enrolErr := enrolAll(ctx, t, mb, missing)
		closeMailbox()
		for _, c := range enrolled {
			file.Creds = append(file.Creds, c)
			have[c.LoginID] = c
		}
		if len(enrolled) > 0 {
			if err := file.save(); err != nil {
				return nil, err
			}
			fmt.Fprintf(stderr, "enrolled %d passkeys, kept in %s\n", len(enrolled), o.keysFile)
		}
		if enrolErr != nil {
			return nil, enrolErr
		}
	}
	var creds []*benchCredential
	if users != nil {
		for _, u := range users {
			creds = append(creds, have[u.LoginID])
		}
	} else {
		for _, c := range file.Creds {
			if c.Issuer == t.issuer {
				creds = append(creds, c)
			}
		}
	}
	if len(creds) == 0 {
		return nil, fmt.Errorf("bench passkey: %s holds no passkey for %s: give --users to enrol some", o.keysFile, t.issuer)
	}
	return creds, nil
}

// enrolAll runs F1 for users, a few at a time (each costs the server a
// password hash and a mail).
func enrolAll(ctx context.Context, t *target, mb mailbox, users []benchUser) ([]*benchCredential, error) {
	var mu sync.Mutex
	var out []*benchCredential
	var errs []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, u := range users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := enrol(ctx, t.newBrowser(i), mb, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("enrol %s: %w", u.LoginID, err))
				return
			}
			out = append(out, c)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// enrol is F1: S1 → S2 (login ID, 「パスキー初回登録」) → S3 password → S4 OTP
// from the mail → S5 create passkey → token.
func enrol(ctx context.Context, b *browser, mb mailbox, u benchUser) (*benchCredential, error) {
	az, err := b.authorize(ctx)
	if err != nil {
		return nil, err
	}
	if err := atPage(az.at, "GET /authorize", "/login"); err != nil {
		return nil, err
	}
	post := func(path string, form url.Values, want string) error {
		l, err := b.navigate(ctx, http.MethodPost, b.t.origin+path, "application/x-www-form-urlencoded", []byte(form.Encode()), az.state)
		if err != nil {
			return err
		}
		if l.code != "" || l.path != want {
			return &flowError{step: "POST " + path, kind: "protocol", detail: "ended at " + l.path + ", want " + want + ": " + snippet(l.body)}
		}
		return nil
	}
	if err := post("/login/passkey", url.Values{"loginID": {u.LoginID}}, "/login/password"); err != nil {
		return nil, err
	}
	seen, err := mb.count(ctx, u.Email)
	if err != nil {
		return nil, err
	}
	if err := post("/login/password", url.Values{"username": {u.LoginID}, "password": {u.Password}}, "/login/otp"); err != nil {
		return nil, err
	}
	code, err := mb.wait(ctx, u.Email, seen)
	if err != nil {
		return nil, err
	}
	if err := post("/login/otp", url.Values{"code": {code}}, "/login/passkey/create"); err != nil {
		return nil, err
	}
	opts, err := b.ceremony(ctx, "/login/passkey/register/options", []byte(`{}`))
	if err != nil {
		return nil, err
	}
	cred, body, err := create(opts.PublicKey, b.t.issuer, b.t.origin, u.LoginID)
	if err != nil {
		return nil, &flowError{step: "POST /login/passkey/register/options", kind: "protocol", detail: err.Error()}
	}
	done, err := b.ceremony(ctx, "/login/passkey/register/finish", body)
	if err != nil {
		return nil, err
	}
	l, err := b.followCeremony(ctx, "/login/passkey/register/finish", done, az.state)
	if err != nil {
		return nil, err
	}
	if l.code == "" {
		return nil, &flowError{step: "POST /login/passkey/register/finish", kind: "protocol", detail: "not signed in: ended at " + l.path}
	}
	if _, err := b.t.exchange(ctx, 0, l.code, az.verifier); err != nil {
		return nil, err
	}
	return cred, nil
}

// mailbox is where the bench reads the one-time passwords of enrolment.
type mailbox interface {
	// count is how many mails to addr arrived so far.
	count(ctx context.Context, addr string) (int, error)
	// wait returns the code of the first mail to addr beyond seen.
	wait(ctx context.Context, addr string, seen int) (string, error)
	String() string
}

func (o *flowOptions) mailbox(t *target) (mailbox, func(), error) {
	if o.smtpListen != "" {
		s, err := listenSMTP(o.smtpListen)
		if err != nil {
			return nil, nil, err
		}
		return s, s.close, nil
	}
	u := o.mailURL
	if u == "" {
		u = t.issuer + "/dev/mail"
	}
	return &devMailbox{url: u, c: &http.Client{Transport: t.transport, Timeout: t.timeout}}, func() {}, nil
}

var otpPattern = regexp.MustCompile(`\b(\d{6})\b`)

const mailWait = 30 * time.Second

// devMailbox reads the dev stack's mailbox page (ISSUER/dev/mail, newest
// first), the same page a developer reads the code from.
type devMailbox struct {
	url string
	c   *http.Client
}

func (m *devMailbox) String() string { return m.url }

var articlePattern = regexp.MustCompile(`(?s)<article[^>]*>.*?<b>To:</b>(.*?)<br>.*?<pre[^>]*>(.*?)</pre>\s*</article>`)

// mails returns the bodies of the mails to addr, oldest first.
func (m *devMailbox) mails(ctx context.Context, addr string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	res, err := m.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mailbox %s: %w", m.url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("mailbox %s: status %d, %v (is the target a dev stack? else use --smtp-listen)", m.url, res.StatusCode, err)
	}
	var bodies []string
	for _, a := range articlePattern.FindAllSubmatch(raw, -1) {
		for _, to := range strings.Fields(html.UnescapeString(string(a[1]))) {
			if strings.EqualFold(to, addr) {
				bodies = append([]string{html.UnescapeString(string(a[2]))}, bodies...)
				break
			}
		}
	}
	return bodies, nil
}

func (m *devMailbox) count(ctx context.Context, addr string) (int, error) {
	b, err := m.mails(ctx, addr)
	return len(b), err
}

func (m *devMailbox) wait(ctx context.Context, addr string, seen int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, mailWait)
	defer cancel()
	for {
		bodies, err := m.mails(ctx, addr)
		if err != nil {
			return "", err
		}
		if len(bodies) > seen {
			return otpIn(bodies[seen])
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no OTP mail to %s at %s: %w", addr, m.url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func otpIn(body string) (string, error) {
	m := otpPattern.FindStringSubmatch(body)
	if m == nil {
		return "", fmt.Errorf("no 6-digit code in the mail %q", snippet([]byte(body)))
	}
	return m[1], nil
}

// smtpMailbox is an SMTP server of the bench's own, for targets without a
// dev mailbox: point the IdP's smtp at it (host 127.0.0.1, tls: none).
type smtpMailbox struct {
	addr   string
	server *smtp.Server

	mu      sync.Mutex
	bodies  map[string][]string // by lower-case recipient, oldest first
	arrived chan struct{}       // closed and replaced on each mail
}

func listenSMTP(addr string) (*smtpMailbox, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: SMTP sink: %w", err)
	}
	m := &smtpMailbox{addr: ln.Addr().String(), bodies: map[string][]string{}, arrived: make(chan struct{})}
	m.server = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &smtpSession{m: m}, nil }))
	m.server.Domain = "localhost"
	m.server.ReadTimeout, m.server.WriteTimeout = 30*time.Second, 30*time.Second
	m.server.MaxMessageBytes = 1 << 20
	go func() {
		if err := m.server.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			slog.Error("bench SMTP sink stopped", "err", err)
		}
	}()
	return m, nil
}

func (m *smtpMailbox) String() string { return "smtp://" + m.addr }

func (m *smtpMailbox) close() { m.server.Close() }

func (m *smtpMailbox) count(_ context.Context, addr string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.bodies[strings.ToLower(addr)]), nil
}

func (m *smtpMailbox) wait(ctx context.Context, addr string, seen int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, mailWait)
	defer cancel()
	for {
		m.mu.Lock()
		bodies, arrived := m.bodies[strings.ToLower(addr)], m.arrived
		m.mu.Unlock()
		if len(bodies) > seen {
			return otpIn(bodies[seen])
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return "", fmt.Errorf("no OTP mail to %s at %s: %w", addr, m, ctx.Err())
		}
	}
}

type smtpSession struct {
	m  *smtpMailbox
	to []string
}

func (s *smtpSession) Reset()                               { s.to = nil }
func (s *smtpSession) Logout() error                        { return nil }
func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(io.LimitReader(r, 1<<20))
	if err != nil {
		return fmt.Errorf("bench SMTP sink: %w", err)
	}
	var body io.Reader = msg.Body
	switch strings.ToLower(msg.Header.Get("Content-Transfer-Encoding")) {
	case "base64":
		raw, err := io.ReadAll(msg.Body)
		if err != nil {
			return err
		}
		body = base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.Join(bytes.Fields(raw), nil)))
	case "quoted-printable":
		body = quotedprintable.NewReader(msg.Body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("bench SMTP sink: decoding: %w", err)
	}
	s.m.mu.Lock()
	for _, to := range s.to {
		k := strings.ToLower(to)
		s.m.bodies[k] = append(s.m.bodies[k], string(text))
	}
	close(s.m.arrived)
	s.m.arrived = make(chan struct{})
	s.m.mu.Unlock()
	return nil
}
