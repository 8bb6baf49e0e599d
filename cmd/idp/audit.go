package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

const auditUsage = `usage: idp audit <command> --config FILE

  verify                             check the hash chain; prints "intact: N events" or the first broken seq
  list [--user LOGIN_ID] [--limit N] the latest events (time in JST, type, actor, user, ip)
`

// auditPage is how many events one ListAudit call reads while scanning.
const auditPage = 1000

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "verify" && args[0] != "list") {
		fmt.Fprint(stderr, auditUsage)
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return usagef("audit: missing command (verify, list)")
		}
		return usagef("unknown audit command %q", args[0])
	}
	sub := args[0]
	var cf configFlags
	fs := newFlagSet("idp audit "+sub, stderr)
	cf.register(fs)
	var loginID *string
	var limit *int
	if sub == "list" {
		loginID = fs.String("user", "", "only events of the user with this login ID")
		limit = fs.Int("limit", 50, "print at most this many of the latest events")
	}
	positional, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return usagef("audit %s takes no arguments, got %q", sub, positional)
	}
	if limit != nil && *limit <= 0 {
		return fmt.Errorf("--limit must be a positive number, got %d", *limit)
	}
	_, store, err := openStore(ctx, &cf, newLogger(stderr, cf.logFormat, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer store.Close()
	if sub == "verify" {
		return verifyAudit(ctx, store, stdout)
	}
	return listAudit(ctx, store, *loginID, *limit, stdout)
}

func verifyAudit(ctx context.Context, store storage.Store, stdout io.Writer) error {
	var after int64
	prev := ""
	total := 0
	for {
		events, err := store.ListAudit(ctx, after, auditPage)
		if err != nil {
			return fmt.Errorf("read audit trail: %w", err)
		}
		if len(events) == 0 {
			break
		}
		// A row deleted at the very start shows as a first seq other than 1.
		if after == 0 && events[0].Seq != 1 {
			return fmt.Errorf("audit chain broken at event seq %d: earlier events were removed", events[0].Seq)
		}
		if after != 0 && events[0].Seq != after+1 {
			return fmt.Errorf("audit chain broken at event seq %d: events were removed before it", events[0].Seq)
		}
		if seq, ok := storage.VerifyAuditChain(events, prev); !ok {
			return fmt.Errorf("audit chain broken at event seq %d: it or an earlier row was altered or removed", seq)
		}
		total += len(events)
		last := events[len(events)-1]
		after, prev = last.Seq, last.Hash
	}
	if total == 0 {
		fmt.Fprintln(stdout, "audit chain intact: 0 events")
		return nil
	}
	// The chain cannot show rows cut off its end; the last hash, noted
	// somewhere else (a ticket, a daily mail), lets a later run prove that.
	fmt.Fprintf(stdout, "audit chain intact: %d events; last seq %d, hash %s\n", total, after, prev)
	return nil
}

func listAudit(ctx context.Context, store *sqlstore.Store, loginID string, limit int, stdout io.Writer) error {
	match := func(*storage.AuditEvent) bool { return true }
	if loginID != "" {
		userIDs := map[string]bool{}
		usr, err := store.UserByLoginID(ctx, loginID)
		switch {
		case err == nil:
			userIDs[usr.ID] = true
		case !errors.Is(err, storage.ErrNotFound):
			return fmt.Errorf("look up %q: %w", loginID, err)
		}
		// A deleted user is still found through the events that named
		// their login ID (user.created, user.imported, user.deleted): one
		// more pass over the trail, cheap for a support tool.
		err = scanAudit(ctx, store, func(e *storage.AuditEvent) {
			if e.UserID != "" && e.Detail["login_id"] == loginID {
				userIDs[e.UserID] = true
			}
		})
		if err != nil {
			return err
		}
		match = func(e *storage.AuditEvent) bool { return userIDs[e.UserID] }
	}
	events, err := lastAuditEvents(ctx, store, limit, match)
	if err != nil {
		return err
	}
	if loginID != "" && len(events) == 0 {
		return fmt.Errorf("no user with login ID %q, and no audit event names it", loginID)
	}
	// One query for the login IDs would need a new Store method; a support
	// tool printing at most --limit rows can afford one lookup per user.
	// Deleted users are named by whatever event recorded their login ID.
	loginIDs := map[string]string{}
	for _, e := range events {
		if id := e.Detail["login_id"]; id != "" && e.UserID != "" {
			loginIDs[e.UserID] = id
		}
	}
	looked := map[string]bool{}
	for _, e := range events {
		if e.UserID == "" || looked[e.UserID] {
			continue
		}
		looked[e.UserID] = true
		if usr, err := store.UserByID(ctx, e.UserID); err == nil {
			loginIDs[e.UserID] = usr.LoginID
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("look up user %s: %w", e.UserID, err)
		}
	}
	for _, e := range events {
		who := "-"
		if e.UserID != "" {
			who = orDash(loginIDs[e.UserID]) + " (" + e.UserID + ")"
		}
		fmt.Fprintf(stdout, "%6d  %s  %-26s %-20s user %s  ip %s%s\n", e.Seq, e.Time.In(jst).Format(time.DateTime+" MST"),
			e.Type, e.Actor, who, orDash(e.IP), formatDetail(e.Detail))
	}
	fmt.Fprintf(stdout, "%d event(s)\n", len(events))
	return nil
}

// lastAuditEvents keeps the latest n events that match, oldest first.
func lastAuditEvents(ctx context.Context, store storage.Store, n int, match func(*storage.AuditEvent) bool) ([]storage.AuditEvent, error) {
	var kept []storage.AuditEvent
	err := scanAudit(ctx, store, func(e *storage.AuditEvent) {
		if match(e) {
			kept = append(kept, *e)
			if len(kept) > n {
				kept = kept[1:]
			}
		}
	})
	return kept, err
}

// scanAudit calls fn for every event in Seq order. The Store has no
// filtered query; a full scan page by page is fine for a support tool.
func scanAudit(ctx context.Context, store storage.Store, fn func(*storage.AuditEvent)) error {
	var after int64
	for {
		events, err := store.ListAudit(ctx, after, auditPage)
		if err != nil {
			return fmt.Errorf("read audit trail: %w", err)
		}
		if len(events) == 0 {
			return nil
		}
		for i := range events {
			fn(&events[i])
		}
		after = events[len(events)-1].Seq
	}
}

func formatDetail(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s=%q", k, d[k])
	}
	return b.String()
}
