package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/comstockloan/idp/storage"
	"github.com/comstockloan/idp/storage/sqlstore"
)

func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return fmt.Errorf("usage: idp audit verify --config FILE")
	}
	var cf configFlags
	fs := newFlagSet("idp audit verify", stderr)
	cf.register(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.Database, newLogger(stderr, cf.logFormat, slog.LevelWarn))
	if err != nil {
		return err
	}
	defer store.Close()
	var after int64
	prev := ""
	total := 0
	for {
		events, err := store.ListAudit(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			break
		}
		if seq, ok := storage.VerifyAuditChain(events, prev); !ok {
			return fmt.Errorf("audit chain broken at event seq %d: it or an earlier row was altered or removed", seq)
		}
		total += len(events)
		last := events[len(events)-1]
		after, prev = last.Seq, last.Hash
	}
	fmt.Fprintf(stdout, "audit chain intact: %d events\n", total)
	return nil
}
