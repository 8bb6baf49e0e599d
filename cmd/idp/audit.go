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

	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

const auditUsage = `usage: idp audit <command> --config FILE

  verify [--expect-seq N --expect-hash H] [--allow-stale]
        seal new events, then check every MAC, the keyed chain and the checkpoints; prints
        "intact: N events; last seq S, hash H" (note S and H elsewhere, and pass them next
        time to prove nothing was cut off) or the first broken seq. A newest checkpoint much
        older than audit.checkpoint_interval fails too (a cut-off tail looks like that);
        --allow-stale accepts it after a time when no server ran
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
	var opts verifyOptions
	if sub == "verify" {
		fs.Int64Var(&opts.expect.Seq, "expect-seq", 0, "a last seq printed by an earlier verify: it must still be in the chain")
		fs.StringVar(&opts.expect.Hash, "expect-hash", "", "the hash printed with --expect-seq")
		fs.BoolVar(&opts.allowStale, "allow-stale", false, "accept an old newest checkpoint (no server ran since)")
	}
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
	if (opts.expect.Seq == 0) != (opts.expect.Hash == "") || opts.expect.Seq < 0 {
		return usagef("audit verify: --expect-seq (a positive number) and --expect-hash go together")
	}
	cfg, store, err := openStore(ctx, &cf, newLogger(stderr, cf.logFormat, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer store.Close()
	if sub == "verify" {
		opts.checkpointInterval = cfg.Audit.CheckpointInterval
		if opts.key, err = server.AuditKey(cfg); err != nil {
			return err
		}
		return verifyAudit(ctx, store, opts, stdout)
	}
	return listAudit(ctx, store, *loginID, *limit, stdout)
}

type verifyOptions struct {
	key                []byte
	checkpointInterval time.Duration
	expect             storage.AuditAnchor
	allowStale         bool
}

// staleAfter is how many checkpoint intervals may pass between two
// checkpoints before verify calls it a hole rather than a slow sealer.
const staleAfter = 2

func verifyAudit(ctx context.Context, store storage.Audit, opts verifyOptions, stdout io.Writer) error {
	now := time.Now()
	// Judged before this run seals and checkpoints: a tail cut together
	// with its checkpoints leaves the newest one old (or none at all), and
	// a checkpoint written now would hide that from the next run.
	stale, err := staleCheckpoints(ctx, store, now, opts.checkpointInterval)
	if err != nil {
		return err
	}
	if stale != "" {
		stale += ": either no server ran since, or the newest events and checkpoints were removed; " +
			"compare with the audit checkpoints in the server logs"
		if !opts.allowStale {
			return errors.New(stale + ", or pass --allow-stale if no server ran")
		}
		fmt.Fprintln(stdout, "warning: "+stale)
	}
	// Seal as a server would, so that the newest events are checked too;
	// the checkpoint of this run is written only once the trail verified,
	// so that a broken trail gets no checkpoint of its broken end.
	seal := storage.AuditSealOptions{Now: now, CheckpointEvery: opts.checkpointInterval, Wait: true}
	if _, err := store.SealAudit(ctx, seal); err != nil {
		return fmt.Errorf("seal audit trail: %w", err)
	}
	var expect []storage.AuditAnchor
	if opts.expect.Seq > 0 {
		expect = append(expect, opts.expect)
	}
	rep, err := storage.VerifyAudit(ctx, store, opts.key, expect...)
	if err != nil {
		return err
	}
	seal.CheckpointEvery = 0
	if _, err := store.SealAudit(ctx, seal); err != nil {
		return fmt.Errorf("checkpoint audit trail: %w", err)
	}
	if rep.Events == 0 {
		fmt.Fprintln(stdout, "audit chain intact: 0 events")
		return nil
	}
	fmt.Fprintf(stdout, "audit chain intact: %d events; last seq %d, hash %s\n", rep.Events, rep.Last.Seq, rep.Last.Hash)
	if rep.Legacy > 0 {
		fmt.Fprintf(stdout, "  %d event(s) from before the chain was keyed (seq 1-%d): checked by the old unkeyed rule, pinned by the keyed rows and checkpoints after them\n",
			rep.Legacy, rep.Legacy)
	}
	for _, g := range rep.SealGaps {
		fmt.Fprintf(stdout, "  seq %s missing when sealed: a rolled-back insert, or an event deleted before sealing\n", seqRange(g))
	}
	for _, seq := range rep.Orphans {
		fmt.Fprintf(stdout, "  seq %d committed after the chain was sealed past it: its MAC is valid, it is not chained\n", seq)
	}
	if rep.Unsealed > 0 {
		fmt.Fprintf(stdout, "  %d newest event(s) not sealed yet: they wait for an earlier seq to commit or time out\n", rep.Unsealed)
	}
	cps, err := store.ListAuditCheckpoints(ctx)
	if err != nil {
		return fmt.Errorf("read audit checkpoints: %w", err)
	}
	for i := 1; i < len(cps); i++ {
		if gap := cps[i].Time.Sub(cps[i-1].Time); gap > staleAfter*opts.checkpointInterval {
			fmt.Fprintf(stdout, "  no checkpoint from %s to %s: no server ran, or events of that time were removed and the chain went on\n",
				cps[i-1].Time.In(jst).Format(time.DateTime), cps[i].Time.In(jst).Format(time.DateTime+" MST"))
		}
	}
	return nil
}

// staleCheckpoints describes why the newest checkpoint is too old, or
// returns "".
func staleCheckpoints(ctx context.Context, store storage.Audit, now time.Time, interval time.Duration) (string, error) {
	cps, err := store.ListAuditCheckpoints(ctx)
	if err != nil {
		return "", fmt.Errorf("read audit checkpoints: %w", err)
	}
	if n := len(cps); n > 0 {
		newest := cps[n-1].Time
		if age := now.Sub(newest); age > staleAfter*interval {
			return fmt.Sprintf("the newest audit checkpoint is from %s, %s ago (checkpoints every %s)",
				newest.In(jst).Format(time.DateTime+" MST"), age.Round(time.Second), interval), nil
		}
		return "", nil
	}
	first, err := store.ListAudit(ctx, 0, 1)
	if err != nil {
		return "", fmt.Errorf("read audit trail: %w", err)
	}
	if len(first) > 0 {
		return "there are audit events but no checkpoint", nil
	}
	return "", nil
}

func seqRange(r storage.SeqRange) string {
	if r.From == r.To {
		return fmt.Sprint(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
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
func lastAuditEvents(ctx context.Context, store storage.Audit, n int, match func(*storage.AuditEvent) bool) ([]storage.AuditEvent, error) {
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
func scanAudit(ctx context.Context, store storage.Audit, fn func(*storage.AuditEvent)) error {
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
