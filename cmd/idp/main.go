// Command idp is the COM-STOCK LOAN identity provider: one binary for the
// server, development mode and the operators' and support centre's tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/comstockloan/idp/cmd/idp/internal/telemetry"
)

const usage = `usage: idp <command> [flags]

commands:
  dev                     run IdP + mail sink + demo relying party locally (no config needed)
  serve   --config FILE   run the IdP in production
  migrate --config FILE   apply database migrations and exit
  clients check --config FILE | clients hash-secret
  keys    list|rotate --config FILE
  users   …               support-centre account tools (run "idp users" for help)
  audit   verify|list --config FILE
  bench   password|sso|passkey|refresh|users|crypto|spray
                          load a running IdP you operate with complete flows (run "idp bench" for help)

Run "idp <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "idp:", err)
	}
	os.Exit(exitStatus(err))
}

// usageError is a command line that does not fit the command's grammar
// (unknown command or flag, missing argument); it exits with status 2 so a
// script can tell it from a refused operation (status 1).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitStatus maps run's result to the process exit status: 0 on success,
// 2 for usage errors (help included), 1 for everything else.
func exitStatus(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.As(err, &ue):
		return 2
	default:
		return 1
	}
}

// run dispatches a command line; it is main without the process, for tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "dev":
		return cmdDev(ctx, rest, stdout, stderr)
	case "serve":
		return cmdServe(ctx, rest, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, stderr)
	case "clients":
		return cmdClients(ctx, rest, stdin, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, stdout, stderr)
	case "users":
		return cmdUsers(ctx, rest, stdin, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, rest, stdout, stderr)
	case "bench":
		return cmdBench(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", cmd)
	}
}

// newLogger writes text or JSON lines to w; a line logged with a
// request's context carries its request_id.
func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(telemetry.LogHandler(h))
}
