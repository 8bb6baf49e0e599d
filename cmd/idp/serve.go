package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/devstack"
	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/storage/audit"
	"github.com/comstockloan/idp/storage/sqlstore"
)

// configFlags adds the flags every command that reads the config file has.
type configFlags struct {
	path      string
	logFormat string
}

func (c *configFlags) register(fs *flag.FlagSet) { c.registerWith(fs, "text") }

// registerWith is register with another default log format: the tools'
// logs are read by people, the server's by machines.
func (c *configFlags) registerWith(fs *flag.FlagSet, logFormat string) {
	fs.StringVar(&c.path, "config", "", "path of the YAML config file (required)")
	fs.StringVar(&c.logFormat, "log-format", logFormat, "log format: text or json")
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

// parseFlags parses args allowing flags after positional arguments
// ("users create ID --email X" reads naturally to support staff), and
// returns the positional ones. The flag package has already printed what
// was wrong; the error becomes a usage error (exit status 2).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// openStore loads the config and connects to its database (with the audit
// key, so that staff actions are appended to the keyed chain), bounded in
// time so that an unreachable server gives a clear error instead of a hang.
func openStore(ctx context.Context, cf *configFlags, logger *slog.Logger) (*config.Config, *sqlstore.Store, error) {
	cfg, err := cf.load()
	if err != nil {
		return nil, nil, err
	}
	auditKey, err := server.AuditKey(cfg)
	if err != nil {
		return nil, nil, err
	}
	openCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	store, err := sqlstore.Open(openCtx, cfg.Database, logger)
	if err != nil {
		return nil, nil, fmt.Errorf("database unreachable: %w", err)
	}
	return cfg, store.WithAuditKey(auditKey), nil
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("idp serve", stderr)
	cf.registerWith(fs, "json")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "lowest level logged: DEBUG, INFO, WARN or ERROR")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (go tool pprof) to this file until the server stops; for idp bench runs")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cf.logFormat != "text" && cf.logFormat != "json" {
		return usagef("idp serve: --log-format must be text or json, got %q", cf.logFormat)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cf.logFormat, level)
	// zitadel logs only through slog's default logger; make it ours so its
	// lines share the format and destination.
	slog.SetDefault(logger)
	srv, err := server.Open(ctx, cfg, logger, server.Options{})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := auditConfigLoaded(ctx, srv.Store, cf.path, cfg, logger); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen for metrics: %w", err)
		}
		logger.Info("metrics serving", "listen", mln.Addr().String(), "path", "/metrics")
		go func() {
			if err := srv.ServeMetrics(ctx, mln); err != nil {
				logger.Error("metrics server stopped", "err", err)
			}
		}()
	}
	logger.Info("identity provider serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "clients", len(cfg.Clients))
	return srv.Serve(ctx, ln)
}

// startCPUProfile profiles the process into path until the returned
// function runs; a profile of a server under idp bench shows where its time
// goes without a debug endpoint an attacker could reach.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cf configFlags
	fs := newFlagSet("idp migrate", stderr)
	cf.register(fs)
	if _, err := parseFlags(fs, args); err != nil {
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
	clientsFile := fs.String("clients", "", "register the clients of this file too (the config file's clients: format), e.g. your own website")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	var extra []config.Client
	if *clientsFile != "" {
		var err error
		if extra, err = config.LoadClients(*clientsFile); err != nil {
			return err
		}
	}
	logger := newLogger(stderr, "text", slog.LevelInfo)
	slog.SetDefault(logger) // see cmdServe
	st, err := devstack.Start(ctx, devstack.Options{
		DataDir: *data, Database: *database, IdPAddr: *idpAddr, RPAddr: *rpAddr, ExtraClients: extra,
	}, logger)
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
	var clients []string
	for _, c := range extra {
		clients = append(clients, fmt.Sprintf("    %s (from %s): redirect URIs %s", c.ID, *clientsFile, strings.Join(c.RedirectURIs, " ")))
	}
	if len(clients) == 0 {
		clients = append(clients, "    (none: add your own website with --clients FILE)")
	}
	fmt.Fprintf(stdout, `
COM-STOCK LOAN identity provider — development stack
  loan website (demo RP): %s      ← start here
  identity provider:      %s  (discovery: %s/.well-known/openid-configuration)
  received mail (OTP):    %s/dev/mail
  demo users (login ID / password):
%s
  demo client: client_id %s, client_secret %s (kept in %s)
  your clients:
%s
Press Ctrl+C to stop.
`, st.RPURL, st.IdPURL, st.IdPURL, st.IdPURL, strings.Join(users, "\n"),
		st.DemoClientID, st.DemoClientSecret, *data, strings.Join(clients, "\n"))
	select {
	case <-ctx.Done():
		st.Close()
	case <-st.Done():
	}
	return nil
}

// auditConfigLoaded records which relying parties this process serves and
// which exact config file it read, so that a later question "since when was
// this client registered?" has an answer in the tamper-evident trail.
func auditConfigLoaded(ctx context.Context, store audit.Appender, path string, cfg *config.Config, logger *slog.Logger) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hash config file: %w", err)
	}
	sum := sha256.Sum256(raw)
	ids := make([]string, len(cfg.Clients))
	for i, c := range cfg.Clients {
		ids[i] = c.ID
	}
	return audit.NewRecorder(store, logger).Record(ctx, audit.ConfigLoaded, audit.Entry{
		Actor: audit.System,
		Detail: audit.Detail{
			audit.KeyClients:      strings.Join(ids, ","),
			audit.KeyConfigSHA256: hex.EncodeToString(sum[:]),
			audit.KeyIssuer:       cfg.Issuer,
		},
	})
}
