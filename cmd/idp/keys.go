package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage/sqlstore"
)

func cmdKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return usagef("usage: idp keys list|rotate --config FILE")
	}
	var cf configFlags
	fs := newFlagSet("idp keys "+args[0], stderr)
	cf.register(fs)
	if _, err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cf.logFormat, slog.LevelWarn)
	store, err := sqlstore.Open(ctx, cfg.Database, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	if args[0] == "rotate" {
		opCfg, err := server.OPConfig(cfg)
		if err != nil {
			return err
		}
		p, err := op.New(opCfg, store, logger)
		if err != nil {
			return err
		}
		if err := p.RotateKeys(ctx, true); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "next signing key published; it signs from its activation time:")
	}
	keys, err := store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, k := range keys {
		state := "published"
		switch {
		case now.After(k.RetireAt):
			state = "retired (verification only)"
		case !now.Before(k.ActiveFrom):
			state = "signing"
		}
		fmt.Fprintf(stdout, "%s  %s  %-28s active %s  retire %s  expires %s\n", k.ID, k.Algorithm, state,
			k.ActiveFrom.Format(time.RFC3339), k.RetireAt.Format(time.RFC3339), k.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}
