package mail_test

import (
	"context"
	"io"
	"log/slog"
	"mime"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/mail/mailsink"
)

func TestSendThroughSinkDecodesJapanese(t *testing.T) {
	sink, err := mailsink.Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	s := &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: "info@jsfnet.com", Timeout: 5 * time.Second}
	subject := "【コムストックローン】ワンタイムパスワードのお知らせ"
	body := "ワンタイムパスワード: 123456\n有効期限は10分です。\n" + strings.Repeat("長い行", 60)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Send(ctx, mail.Message{To: "taro@example.com", Subject: subject, Body: body}); err != nil {
		t.Fatal(err)
	}
	m, err := sink.WaitFor(ctx, "taro@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != subject {
		t.Errorf("subject = %q", m.Subject)
	}
	if strings.TrimRight(m.Body, "\n") != body {
		t.Errorf("body = %q", m.Body)
	}
	if m.From != "info@jsfnet.com" || m.Header.Get("From") != "info@jsfnet.com" {
		t.Errorf("from = %q / %q", m.From, m.Header.Get("From"))
	}
	for _, h := range []string{"Date", "Message-ID"} {
		if m.Header.Get(h) == "" {
			t.Errorf("missing %s header", h)
		}
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("content-type = %q", ct)
	}
	raw := string(m.Raw)
	if strings.Contains(strings.ReplaceAll(raw, "\r\n", ""), "\n") {
		t.Error("raw message has bare LF")
	}
	for _, line := range strings.Split(raw, "\r\n") {
		if len(line) > 998 {
			t.Error("line longer than RFC 5322 allows")
		}
	}
}

// A configured sender with a display name: the relay sees the bare
// address as MAIL FROM, the customer sees the name.
func TestSendWithDisplayNameSender(t *testing.T) {
	sink, err := mailsink.Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	s := &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: "コムストックローン <info@jsfnet.com>", Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Send(ctx, mail.Message{To: "taro@example.com", Subject: "s", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	m, err := sink.WaitFor(ctx, "taro@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "info@jsfnet.com" {
		t.Errorf("envelope sender = %q, want the bare address", m.From)
	}
	got, err := (&netmail.AddressParser{WordDecoder: &mime.WordDecoder{}}).Parse(m.Header.Get("From"))
	if err != nil || got.Name != "コムストックローン" || got.Address != "info@jsfnet.com" {
		t.Errorf("From header = %q (%v, %v)", m.Header.Get("From"), got, err)
	}
}

func TestSendRejectsHeaderInjection(t *testing.T) {
	s := &mail.SMTPSender{Host: "127.0.0.1", Port: 1, TLS: mail.TLSNone, From: "info@jsfnet.com"}
	err := s.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "x\r\nBcc: evil@example.com", Body: "b"})
	if err == nil {
		t.Fatal("header injection accepted")
	}
}

func TestSendDialFailureIsError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	s := &mail.SMTPSender{Host: "127.0.0.1", Port: addr.Port, TLS: mail.TLSNone, From: "info@jsfnet.com", Timeout: time.Second}
	if err := s.Send(context.Background(), mail.Message{To: "a@example.com", Subject: "s", Body: "123456"}); err == nil || strings.Contains(err.Error(), "123456") {
		t.Fatalf("err = %v", err)
	}
}
