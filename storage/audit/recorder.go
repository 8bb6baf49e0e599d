package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/comstockloan/idp/storage"
)

// Appender is the part of storage.Store a Recorder writes to.
type Appender interface {
	AppendAudit(ctx context.Context, e *storage.AuditEvent) error
}

// Actor is who caused an event: User, Staff or System.
type Actor string

// System is the actor of events nobody signed in caused: a start-up, a
// throttled or unknown login.
const System Actor = "system"

// User is the customer with the given user ID.
func User(id string) Actor { return Actor("user:" + id) }

// Staff is a support-centre operator (the CLI's $IDP_OPERATOR).
func Staff(name string) Actor { return Actor("staff:" + name) }

// Entry is everything of an event but its type. Only Actor is required.
type Entry struct {
	Time      time.Time // zero: the store's clock
	Actor     Actor
	UserID    string // whom the event is about
	IP        string
	UserAgent string // client-chosen; made storable (see auditableText)
	Detail    Detail
}

// Recorder writes audit events to the store and to the log.
type Recorder struct {
	store Appender
	log   *slog.Logger
}

// NewRecorder returns a Recorder appending to store and logging to log.
func NewRecorder(store Appender, log *slog.Logger) *Recorder {
	return &Recorder{store: store, log: log}
}

// With returns a Recorder whose log lines also carry args (as
// slog.Logger.With), for context the stored event does not hold, such as
// the login ID a staff command acts on.
func (r *Recorder) With(args ...any) *Recorder {
	return &Recorder{store: r.store, log: r.log.With(args...)}
}

// maxUserAgent bounds the stored User-Agent, in bytes.
const maxUserAgent = 512

// Record appends ev with e to the trail and writes one log line with
// message "audit" and the same facts: type, actor, user, ip, user_agent,
// detail (a group) and the stored seq. A line at level ERROR with "err" is
// an event that was not stored (refused here or by the store), so a failed
// append is never silent; the error is returned too, for callers whose
// action must not go unaudited.
func (r *Recorder) Record(ctx context.Context, ev Event, e Entry) error {
	detail, err := e.Detail.stored()
	row := &storage.AuditEvent{
		Time: e.Time, Type: ev.String(), Actor: string(e.Actor), UserID: e.UserID,
		IP: e.IP, UserAgent: auditableText(e.UserAgent, maxUserAgent), Detail: detail,
	}
	switch {
	case err != nil:
	case !ev.valid():
		err = errors.New("not one of audit.Events")
	case e.Actor == "":
		err = errors.New("no actor")
	default:
		err = r.store.AppendAudit(ctx, row)
	}
	attrs := []any{"type", row.Type, "actor", row.Actor, "user", row.UserID,
		"ip", row.IP, "user_agent", row.UserAgent, detailGroup(detail)}
	if err != nil {
		r.log.ErrorContext(ctx, "audit", append(attrs, "err", err)...)
		return fmt.Errorf("audit %s: %w", ev, err)
	}
	r.log.InfoContext(ctx, "audit", append(attrs, "seq", row.Seq)...)
	return nil
}

// detailGroup is the detail as a log group with its keys in order, so the
// text form reads detail.method=… detail.reason=… on every line.
func detailGroup(detail map[string]string) slog.Attr {
	keys := make([]string, 0, len(detail))
	for k := range detail {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]any, len(keys))
	for i, k := range keys {
		attrs[i] = slog.String(k, detail[k])
	}
	return slog.Group("detail", attrs...)
}

// auditableText makes a client-chosen header storable. Text PostgreSQL
// refuses (storage.RepairText) would make AppendAudit fail, and a client
// could then hide its own failed logins from the trail with a crafted
// User-Agent; control characters become U+FFFD too, so a header cannot
// fake lines in a report of the trail.
func auditableText(s string, maxBytes int) string {
	return storage.RepairText(strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return '\uFFFD'
		}
		return c
	}, s), maxBytes)
}
