package audit_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/storage/sqlstore"
	"github.com/comstockloan/idp/storage/storagetest"
)

func newRecorder(store audit.Appender) (*audit.Recorder, *bytes.Buffer) {
	var logs bytes.Buffer
	return audit.NewRecorder(store, slog.New(slog.NewTextHandler(&logs, nil))), &logs
}

func listAudit(t *testing.T, s storage.Store) []storage.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// The stored row and the log line carry the same facts under the stored
// names, and the stored row verifies under the audit key.
func TestRecordStoresAndLogsTheSameFacts(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s := storagetest.New(t, flavor)
		rec, logs := newRecorder(s)
		at := time.Date(2025, 4, 1, 9, 30, 0, 0, time.UTC)
		detail := audit.Detail{audit.KeyCredential: audit.Credential([]byte{0xfb, 0xff}), audit.KeyName: "会社のPC"}
		err := rec.With("login_id", "rin").Record(context.Background(), audit.PasskeyDeleted, audit.Entry{
			Time: at, Actor: audit.User("u1"), UserID: "u1", IP: "203.0.113.7", UserAgent: "Firefox",
			Detail: detail.WithAccessEnded(storage.AccessEnded{Sessions: 1, RefreshTokens: 2, AccessTokens: 3}),
		})
		if err != nil {
			t.Fatal(err)
		}
		evs := listAudit(t, s)
		if len(evs) != 1 {
			t.Fatalf("%d events stored, want 1", len(evs))
		}
		got := evs[0]
		want := map[string]string{"credential": "-_8", "name": "会社のPC",
			"sessions_ended": "1", "refresh_tokens_revoked": "2", "access_tokens_revoked": "3"}
		if got.Type != "passkey.deleted" || got.Actor != "user:u1" || got.UserID != "u1" || got.IP != "203.0.113.7" ||
			got.UserAgent != "Firefox" || !got.Time.Equal(at) || len(got.Detail) != len(want) {
			t.Errorf("stored %+v", got)
		}
		for k, v := range want {
			if got.Detail[k] != v {
				t.Errorf("detail %s = %q, want %q", k, got.Detail[k], v)
			}
		}
		if got.MAC != storage.AuditMAC(storagetest.AuditKey(), got) {
			t.Error("the stored row does not verify")
		}
		line := logs.String()
		for _, want := range []string{"level=INFO msg=audit login_id=rin type=passkey.deleted actor=user:u1 user=u1 ip=203.0.113.7 user_agent=Firefox",
			"detail.access_tokens_revoked=3 detail.credential=-_8 detail.name=会社のPC detail.refresh_tokens_revoked=2 detail.sessions_ended=1 seq=1"} {
			if !strings.Contains(line, want) {
				t.Errorf("log line lacks %q:\n%s", want, line)
			}
		}
	})
}

// A User-Agent PostgreSQL cannot store (NUL, invalid UTF-8) or a huge one
// must not cost the event: a guesser could otherwise hide its failed
// logins from the trail.
func TestRecordKeepsEventsOfHostileUserAgents(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s := storagetest.New(t, flavor)
		rec, _ := newRecorder(s)
		ua := "evil\x00\xff\xfe\t\u0085" + strings.Repeat("é", 4000)
		if err := rec.Record(context.Background(), audit.LoginFailure, audit.Entry{Actor: audit.System, UserAgent: ua,
			Detail: audit.Detail{audit.KeyMethod: "password", audit.KeyReason: "credentials"}}); err != nil {
			t.Fatal(err)
		}
		evs := listAudit(t, s)
		if len(evs) != 1 {
			t.Fatalf("%d events stored, want 1", len(evs))
		}
		got := evs[0].UserAgent
		if !strings.HasPrefix(got, "evil\uFFFD") || len(got) > 512 || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\t\u0085") {
			t.Errorf("stored user agent = %.80q (%d bytes)", got, len(got))
		}
	})
}

// What is not in the vocabulary is not written, and the refusal is an
// ERROR log line with the facts, so a caller that ignores the error (the
// login pages) still leaves a trace.
func TestRecordRefusesWhatIsNotInTheVocabulary(t *testing.T) {
	s := storagetest.New(t, "sqlite")
	rec, logs := newRecorder(s)
	for name, tc := range map[string]struct {
		ev audit.Event
		e  audit.Entry
	}{
		"zero event":    {0, audit.Entry{Actor: audit.System}},
		"unknown event": {audit.Event(len(audit.Events()) + 1), audit.Entry{Actor: audit.System}},
		"unknown key":   {audit.OTPSent, audit.Entry{Actor: audit.System, Detail: audit.Detail{audit.Key(0): "x", audit.KeyReason: "kept"}}},
		"no actor":      {audit.OTPSent, audit.Entry{UserID: "u1"}},
	} {
		logs.Reset()
		if err := rec.Record(context.Background(), tc.ev, tc.e); err == nil {
			t.Errorf("%s: recorded", name)
		}
		if !strings.Contains(logs.String(), "level=ERROR msg=audit") || !strings.Contains(logs.String(), "err=") {
			t.Errorf("%s: refusal not logged:\n%s", name, logs.String())
		}
		if name == "unknown key" && !strings.Contains(logs.String(), "detail.reason=kept") {
			t.Errorf("%s: the valid detail is not logged:\n%s", name, logs.String())
		}
	}
	if evs := listAudit(t, s); len(evs) != 0 {
		t.Errorf("refused events were stored: %+v", evs)
	}
}

// A store that cannot append (here: opened without the audit key) makes
// Record fail with the store's error and log the event at ERROR.
func TestRecordReportsAFailedAppend(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		s, err := sqlstore.Open(context.Background(), storagetest.DSN(t, flavor), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		rec, logs := newRecorder(s)
		err = rec.Record(context.Background(), audit.UserLocked, audit.Entry{Actor: audit.Staff("tanaka"), UserID: "u1"})
		if !errors.Is(err, storage.ErrNoAuditKey) || !strings.Contains(err.Error(), "audit user.locked") {
			t.Errorf("Record = %v, want the store's ErrNoAuditKey", err)
		}
		if !strings.Contains(logs.String(), "level=ERROR msg=audit type=user.locked actor=staff:tanaka user=u1") {
			t.Errorf("failed append not logged:\n%s", logs.String())
		}
	})
}
