// Package devstack runs everything a developer needs on one machine with
// nothing installed: the IdP on an embedded SQLite file, an in-process SMTP
// sink whose messages can be read at /dev/mail, and a demo relying party that
// plays the loan website. The end-to-end tests start the same stack.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/demorp"
	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/login/mail/mailsink"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/op"
	"github.com/comstockloan/idp/storage"
)

// Options say where the stack listens and keeps its data.
type Options struct {
	DataDir string // holds idp.db and the dev crypto key
	// Database overrides the SQLite file (tests run the stack on PostgreSQL too).
	Database string
	IdPAddr  string // e.g. "127.0.0.1:8080"
	RPAddr   string // e.g. "127.0.0.1:8081"
	// FastHashes lowers the argon2id cost below the production minimum, for
	// tests only.
	FastHashes bool
	// ExtraClients are registered beside the demo RP (tests play a second
	// relying party with them).
	ExtraClients []config.Client
}

// DemoClientID is the demo RP's client ID.
const DemoClientID = "demo-rp"

// DemoUser is a seeded account.
type DemoUser struct {
	LoginID, Password, Email string
	Temporary                bool
}

// DemoUsers are created on first start; their passwords are printed so a
// developer can sign in at once.
var DemoUsers = []DemoUser{
	{LoginID: "demo", Password: "demo-pass-2026", Email: "demo@example.com"},
	{LoginID: "temp", Password: "temp-pass-2026", Email: "temp@example.com", Temporary: true},
}

// Stack is a running development stack.
type Stack struct {
	IdPURL string
	RPURL  string
	Sink   *mailsink.Sink
	Server *server.Server
	Config *config.Config
	// DemoClientID and DemoClientSecret are the demo RP's registration;
	// the secret is kept in the data directory, so it is stable.
	DemoClientID, DemoClientSecret string

	cancel context.CancelFunc
	done   chan struct{}
}

// Start brings the stack up and returns once both servers accept requests.
func Start(ctx context.Context, opts Options, logger *slog.Logger) (*Stack, error) {
	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	key, err := devCryptoKey(opts.DataDir)
	if err != nil {
		return nil, err
	}
	idpLn, err := net.Listen("tcp", opts.IdPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for the IdP on %s: %w", opts.IdPAddr, err)
	}
	rpLn, err := net.Listen("tcp", opts.RPAddr)
	if err != nil {
		idpLn.Close()
		return nil, fmt.Errorf("listen for the demo RP on %s: %w", opts.RPAddr, err)
	}
	sink, err := mailsink.Start(logger)
	if err != nil {
		idpLn.Close()
		rpLn.Close()
		return nil, fmt.Errorf("mail sink: %w", err)
	}
	fail := func(err error) (*Stack, error) {
		idpLn.Close()
		rpLn.Close()
		sink.Close()
		return nil, err
	}

	// WebAuthn needs a domain, so browsers reach the loopback listeners as
	// "localhost".
	idpURL := "http://localhost:" + port(idpLn)
	rpURL := "http://localhost:" + port(rpLn)
	rpSecret, err := persistentSecret(opts.DataDir, "demo-rp-secret", rand.Text)
	if err != nil {
		return fail(err)
	}
	secretHash, err := op.HashClientSecret(rpSecret)
	if err != nil {
		return fail(err)
	}
	db := opts.Database
	if db == "" {
		db = "sqlite:" + filepath.Join(opts.DataDir, "idp.db")
	}
	sinkHost, sinkPort, _ := net.SplitHostPort(sink.Addr())
	sinkPortNum, _ := strconv.Atoi(sinkPort)
	cfg := &config.Config{
		Issuer:    idpURL,
		Listen:    idpLn.Addr().String(),
		Database:  db,
		CryptoKey: key,
		SMTP:      config.SMTP{Host: sinkHost, Port: sinkPortNum, TLS: "none"},
		Clients: []config.Client{{
			ID:                     DemoClientID,
			Name:                   "コムストックローンWEBサイト (デモ)",
			SecretHash:             secretHash,
			RedirectURIs:           []string{rpURL + "/callback"},
			PostLogoutRedirectURIs: []string{rpURL + "/"},
			BackchannelLogoutURI:   rpURL + demorp.BackchannelLogoutPath,

			BackchannelLogoutSessionRequired: true,
		}},
	}
	cfg.Clients = append(cfg.Clients, opts.ExtraClients...)
	cfg.Defaults()
	// Keys rotate daily in development so the rotation path gets exercised.
	cfg.Keys.RotationPeriod = 24 * time.Hour
	cfg.Keys.PublishDelay = time.Hour
	// The demo RP shows a back-channel logout at once.
	cfg.BackchannelLogout.PollInterval = 500 * time.Millisecond
	if err := cfg.Validate(); err != nil {
		return fail(fmt.Errorf("dev config: %w", err))
	}
	if opts.FastHashes {
		cfg.Password.MemoryKiB, cfg.Password.Iterations, cfg.Password.Parallelism = 64, 1, 1
	}

	srv, err := server.Open(ctx, cfg, logger, server.Options{
		DevMailURL: idpURL + "/dev/mail",
		Extra: func(r *mux.Router) {
			r.PathPrefix("/dev/mail").Handler(sink)
		},
	})
	if err != nil {
		return fail(err)
	}
	if err := seed(ctx, srv.Store, cfg, logger); err != nil {
		srv.Close()
		return fail(err)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st := &Stack{
		IdPURL: idpURL, RPURL: rpURL, Sink: sink, Server: srv, Config: cfg,
		DemoClientID: DemoClientID, DemoClientSecret: rpSecret, cancel: cancel, done: make(chan struct{}),
	}
	idpDone := make(chan error, 1)
	go func() { idpDone <- srv.Serve(runCtx, idpLn) }()

	demo, err := demorp.New(ctx, demorp.Config{Issuer: idpURL, ClientID: DemoClientID, ClientSecret: rpSecret, BaseURL: rpURL}, logger)
	if err != nil {
		cancel()
		<-idpDone
		srv.Close()
		rpLn.Close()
		sink.Close()
		return nil, err
	}
	rpSrv := &http.Server{Handler: demo.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go rpSrv.Serve(rpLn)
	go func() {
		<-runCtx.Done()
		shutdownCtx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		rpSrv.Shutdown(shutdownCtx)
		if err := <-idpDone; err != nil {
			logger.Error("IdP server", "err", err)
		}
		sink.Close()
		srv.Close()
		close(st.done)
	}()
	return st, nil
}

// Close stops both servers and the sink and waits for them.
func (s *Stack) Close() {
	s.cancel()
	<-s.done
}

// Done is closed when the stack has stopped.
func (s *Stack) Done() <-chan struct{} { return s.done }

func port(l net.Listener) string { return strconv.Itoa(l.Addr().(*net.TCPAddr).Port) }

// devCryptoKey keeps one random key per data directory so codes, tokens and
// stored signing keys survive a restart of the dev stack.
func devCryptoKey(dir string) (string, error) {
	return persistentSecret(dir, "crypto-key", func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return hex.EncodeToString(b)
	})
}

// persistentSecret is the value of file name in dir, made by gen on first
// use: the demo client's secret stays what a developer configured in their
// own RP across restarts.
func persistentSecret(dir, name string, gen func() string) (string, error) {
	path := filepath.Join(dir, name)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read dev %s: %w", name, err)
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		return "", fmt.Errorf("write dev %s: %w", name, err)
	}
	return v, nil
}

func seed(ctx context.Context, store storage.Users, cfg *config.Config, logger *slog.Logger) error {
	params := password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism}
	for _, u := range DemoUsers {
		if _, err := store.UserByLoginID(ctx, u.LoginID); err == nil {
			continue
		} else if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("seed %s: %w", u.LoginID, err)
		}
		hash, err := password.Hash(params, u.Password)
		if err != nil {
			return fmt.Errorf("seed %s: %w", u.LoginID, err)
		}
		now := time.Now().UTC()
		err = store.CreateUser(ctx, &storage.User{
			ID: rand.Text(), LoginID: u.LoginID, Email: u.Email, DisplayName: u.LoginID,
			PasswordHash: hash, PasswordTemporary: u.Temporary, CreatedAt: now, UpdatedAt: now,
		})
		if err != nil && !errors.Is(err, storage.ErrAlreadyExists) {
			return fmt.Errorf("seed %s: %w", u.LoginID, err)
		}
		logger.Info("seeded demo user", "login_id", u.LoginID, "temporary_password", u.Temporary)
	}
	return nil
}
