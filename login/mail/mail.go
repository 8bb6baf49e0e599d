// Package mail sends the login pages' e-mail (one-time passwords) over SMTP.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one plain-text mail to one recipient.
type Message struct {
	To      string
	Subject string
	Body    string
}

// TLS modes of SMTPSender.
const (
	TLSStartTLS = "starttls" // port 587: plaintext greeting, then STARTTLS (required)
	TLSImplicit = "implicit" // port 465: TLS from the first byte
	TLSNone     = "none"     // development sinks on loopback only
)

// SMTPSender delivers Messages through an SMTP relay.
type SMTPSender struct {
	Host     string
	Port     int
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	Username string // PLAIN auth when non-empty
	Password string
	From     string // envelope and header sender
	// Timeout bounds dialing and each SMTP command; default 30s.
	Timeout time.Duration
	// TLSConfig overrides the default (ServerName = Host), e.g. for tests.
	TLSConfig *tls.Config
}

// Send delivers m. The error never contains the body, which may hold a code.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	if _, err := mail.ParseAddress(m.To); err != nil {
		return fmt.Errorf("mail: bad recipient: %w", err)
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return fmt.Errorf("mail: bad sender: %w", err)
	}
	// The header keeps a display name (encoded when it is Japanese); the
	// envelope takes the bare address, or relays refuse MAIL FROM.
	header := from.Address
	if from.Name != "" {
		header = from.String()
	}
	raw, err := Compose(header, m, time.Now())
	if err != nil {
		return err
	}
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if s.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", s.Username, s.Password)); err != nil {
			return fmt.Errorf("mail: smtp auth: %w", err)
		}
	}
	if err := c.SendMail(from.Address, []string{m.To}, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("mail: smtp send to %s:%d: %w", s.Host, s.Port, err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("mail: smtp quit: %w", err)
	}
	return nil
}

func (s *SMTPSender) dial(ctx context.Context) (*smtp.Client, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	dialer := &net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mail: dial %s: %w", addr, err)
	}
	// The whole conversation must finish in bounded time even if the relay
	// stalls mid-command.
	deadline := time.Now().Add(3 * timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	tlsCfg := s.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}
	}
	var c *smtp.Client
	switch s.TLS {
	case TLSImplicit:
		c = smtp.NewClient(tls.Client(conn, tlsCfg))
	case TLSNone:
		c = smtp.NewClient(conn)
	case TLSStartTLS, "":
		c, err = smtp.NewClientStartTLS(conn, tlsCfg)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("mail: starttls with %s: %w", addr, err)
		}
	default:
		conn.Close()
		return nil, fmt.Errorf("mail: unknown TLS mode %q", s.TLS)
	}
	c.CommandTimeout = timeout
	c.SubmissionTimeout = timeout
	return c, nil
}

// Compose renders m as an RFC 5322 message with CRLF line endings, a UTF-8
// plain-text body (base64, so any line length and script are safe) and an
// RFC 2047 encoded subject.
func Compose(from string, m Message, now time.Time) ([]byte, error) {
	for _, v := range []string{from, m.To, m.Subject} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("mail: header value contains a line break")
		}
	}
	domain := "localhost"
	if at := strings.LastIndex(from, "@"); at >= 0 {
		domain = strings.Trim(from[at+1:], "> ")
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("mail: message id: %w", err)
	}
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from)
	header("To", m.To)
	header("Subject", mime.BEncoding.Encode("UTF-8", m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	header("Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(strings.ReplaceAll(m.Body, "\r\n", "\n"), "\n", "\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(body))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes(), nil
}
