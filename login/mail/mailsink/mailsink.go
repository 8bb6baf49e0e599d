// Package mailsink is an in-process SMTP server that keeps what it receives,
// for the development mode (read the OTP in a browser) and for tests.
package mailsink

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one received mail, decoded.
type Message struct {
	From     string // envelope sender
	To       []string
	Header   mail.Header
	Subject  string // RFC 2047 decoded
	Body     string // transfer-decoded, CRLF normalised to LF
	Raw      []byte
	Received time.Time
}

// Sink is a running SMTP server on a loopback port.
type Sink struct {
	log    *slog.Logger
	server *smtp.Server
	ln     net.Listener

	mu       sync.Mutex
	messages []Message
	arrived  chan struct{} // closed and replaced on every new message
}

// Start listens on 127.0.0.1:0 and serves SMTP until Close.
func Start(logger *slog.Logger) (*Sink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mailsink: listen: %w", err)
	}
	s := &Sink{log: logger, ln: ln, arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{sink: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 10
	s.server = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			logger.Error("mailsink stopped", "err", err)
		}
	}()
	logger.Info("mail sink listening", "addr", ln.Addr().String())
	return s, nil
}

// Addr is the host:port the sink listens on.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Sink) Close() error { return s.server.Close() }

// Messages returns a copy of everything received so far, oldest first.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// WaitFor returns the newest message addressed to `to`, waiting until there
// is one or ctx ends. Callers that expect a second mail compare with what
// they saw before (see WaitForNew).
func (s *Sink) WaitFor(ctx context.Context, to string) (Message, error) {
	return s.WaitForNew(ctx, to, 0)
}

// WaitForNew is WaitFor for a message to `to` beyond the first `seen`
// messages of the sink (seen = len(Messages()) taken before the action).
func (s *Sink) WaitForNew(ctx context.Context, to string, seen int) (Message, error) {
	for {
		m, ok, arrived := s.newestTo(to, seen)
		if ok {
			return m, nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("mailsink: waiting for mail to %s after %d messages: %w", to, seen, ctx.Err())
		}
	}
}

// newestTo finds the newest message to `to` after the first `seen`; when
// there is none, arrived is closed by the next message.
func (s *Sink) newestTo(to string, seen int) (m Message, ok bool, arrived <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.messages) - 1; i >= seen; i-- {
		for _, rcpt := range s.messages[i].To {
			if strings.EqualFold(rcpt, to) {
				return s.messages[i], true, nil
			}
		}
	}
	return Message{}, false, s.arrived
}

func (s *Sink) add(m Message) {
	s.mu.Lock()
	s.messages = append(s.messages, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
	s.log.Info("mail received", "from", m.From, "to", strings.Join(m.To, ","), "subject", m.Subject)
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }
func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("mailsink: reading data: %w", err)
	}
	m, err := parse(raw)
	if err != nil {
		ss.sink.log.Warn("mailsink: unparseable message kept raw", "err", err)
	}
	m.From, m.To, m.Raw, m.Received = ss.from, append([]string(nil), ss.to...), raw, time.Now()
	ss.sink.add(m)
	return nil
}

func parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{Body: string(raw)}, fmt.Errorf("parsing message: %w", err)
	}
	var m Message
	m.Header = msg.Header
	dec := new(mime.WordDecoder)
	m.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		m.Subject = msg.Header.Get("Subject")
	}
	var body io.Reader = msg.Body
	switch strings.ToLower(msg.Header.Get("Content-Transfer-Encoding")) {
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, stripCRLF{msg.Body})
	case "quoted-printable":
		body = quotedprintable.NewReader(msg.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return m, fmt.Errorf("decoding body: %w", err)
	}
	m.Body = strings.ReplaceAll(string(b), "\r\n", "\n")
	return m, nil
}

// stripCRLF drops line breaks so base64 decoding sees one stream.
type stripCRLF struct{ r io.Reader }

func (s stripCRLF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

var pageTmpl = template.Must(template.New("mailbox").Parse(`<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Dev mailbox</title></head><body style="font-family:sans-serif;max-width:48rem;margin:auto;padding:1rem">
<h1>開発用メールボックス / Dev mailbox</h1>
<p>{{len .}} 通 (newest first)</p>
{{range .}}<article style="border:1px solid #ccc;padding:.5rem 1rem;margin:1rem 0">
<p><b>To:</b> {{range .To}}{{.}} {{end}}<br><b>From:</b> {{.From}}<br><b>Subject:</b> {{.Subject}}<br><small>{{.Received.Format "2006-01-02 15:04:05"}}</small></p>
<pre style="white-space:pre-wrap">{{.Body}}</pre></article>{{end}}
</body></html>`))

// ServeHTTP lists the received mail, newest first (development mode only).
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	msgs := s.Messages()
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTmpl.Execute(w, msgs); err != nil {
		s.log.Error("mailsink: rendering mailbox", "err", err)
	}
}
