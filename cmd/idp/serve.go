package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/storage/sqlstore"
)

// configFlags adds the flags every command that reads the config file has.
type configFlags struct {
	path      string
	logFormat string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "path of the YAML config file (required)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
}

func (c *configFlags) load() (*config.Config, error) {
	if c.path == "" {
		return nil, fmt.Errorf("--config FILE is required")
	}
	return config.Load(c.path)
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("idp serve", stderr)
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cf.logFormat, slog.LevelInfo)
	srv, err := server.Open(ctx, cfg, logger, server.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	logger.Info("identity provider serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "clients", len(cfg.Clients))
	return srv.Serve(ctx, ln)
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("idp migrate", stderr)
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.Database, newLogger(stderr, cf.logFormat, slog.LevelInfo))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "database schema is up to date")
	return nil
}

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("idp dev", stderr)
	data := fs.String("data", ".idp-dev", "directory for the SQLite database and the dev crypto key")
	idpAddr := fs.String("addr", "127.0.0.1:8080", "listen address of the IdP (browse it as http://localhost:PORT)")
	rpAddr := fs.String("rp-addr", "127.0.0.1:8081", "listen address of the demo relying party")
	database := fs.String("database", "", "use this database instead of the SQLite file (postgres://… or sqlite:…)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := newLogger(stderr, "text", slog.LevelInfo)
	st, err := devstack.Start(ctx, devstack.Options{DataDir: *data, Database: *database, IdPAddr: *idpAddr, RPAddr: *rpAddr}, logger)
	if err != nil {
		return err
	}
	var users []string
	for _, u := range devstack.DemoUsers {
		kind := "normal password"
		if u.Temporary {
			kind = "temporary password (仮パスワード): must be changed at first login"
		}
		users = append(users, fmt.Sprintf("    %-6s / %-16s %s, mail to %s", u.LoginID, u.Password, kind, u.Email))
	}
	fmt.Fprintf(stdout, `
COM-STOCK LOAN identity provider — development stack
  loan website (demo RP): %s      ← start here
  identity provider:      %s
  received mail (OTP):    %s/dev/mail
  demo users (login ID / password):
%s
Press Ctrl+C to stop.
`, st.RPURL, st.IdPURL, st.IdPURL, strings.Join(users, "\n"))
	select {
	case <-ctx.Done():
		st.Close()
	case <-st.Done():
	}
	return nil
}
