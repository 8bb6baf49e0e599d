package mailsink_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/comstockloan/idp/login/mail"
	"github.com/comstockloan/idp/login/mail/mailsink"
)

func start(t *testing.T) (*mailsink.Sink, *mail.SMTPSender) {
	t.Helper()
	sink, err := mailsink.Start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	host, port, _ := net.SplitHostPort(sink.Addr())
	p, _ := strconv.Atoi(port)
	return sink, &mail.SMTPSender{Host: host, Port: p, TLS: mail.TLSNone, From: "info@jsfnet.com", Timeout: 5 * time.Second}
}

func TestMailboxPageListsDecodedMailNewestFirst(t *testing.T) {
	sink, sender := start(t)
	ctx := context.Background()
	for _, body := range []string{"最初 <b>111111</b>", "二通目 222222"} {
		if err := sender.Send(ctx, mail.Message{To: "hanako@example.jp", Subject: "【コムストックローン】お知らせ", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	sink.ServeHTTP(rec, httptest.NewRequest("GET", "/dev/mail", nil))
	page := rec.Body.String()
	for _, want := range []string{"【コムストックローン】お知らせ", "hanako@example.jp", "&lt;b&gt;111111&lt;/b&gt;", "二通目 222222"} {
		if !strings.Contains(page, want) {
			t.Errorf("mailbox page lacks %q", want)
		}
	}
	if strings.Index(page, "222222") > strings.Index(page, "111111") {
		t.Error("newest mail is not first")
	}
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
}

func TestWaitForNewWaitsAndTimesOut(t *testing.T) {
	sink, sender := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := sink.WaitFor(ctx, "nobody@example.jp"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor without mail: %v", err)
	}
	done := make(chan mailsink.Message, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := sink.WaitForNew(ctx, "Late@Example.jp", 0)
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	time.Sleep(50 * time.Millisecond)
	if err := sender.Send(context.Background(), mail.Message{To: "late@example.jp", Subject: "s", Body: "b"}); err != nil {
		t.Fatal(err)
	}
	if m := <-done; m.Subject != "s" || len(sink.Messages()) != 1 {
		t.Fatalf("got %+v", m)
	}
}
