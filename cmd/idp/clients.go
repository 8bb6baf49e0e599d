package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/op"
)

func cmdClients(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: idp clients check --config FILE | idp clients hash-secret (reads the secret from stdin)")
	}
	switch args[0] {
	case "check":
		var cf configFlags
		fs := newFlagSet("idp clients check", stderr)
		cf.register(fs)
		if _, err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		opCfg, err := server.OPConfig(cfg)
		if err != nil {
			return err
		}
		if err := opCfg.Validate(); err != nil {
			return err
		}
		for _, c := range cfg.Clients {
			kind := "confidential"
			if c.Public {
				kind = "public"
			}
			fmt.Fprintf(stdout, "ok  %s (%s): %d redirect URI(s), scopes %s\n", c.ID, kind, len(c.RedirectURIs), strings.Join(c.Scopes, " "))
		}
		return nil
	case "hash-secret":
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("read secret from stdin: %w", err)
		}
		secret := strings.TrimRight(line, "\r\n")
		if len(secret) < 32 {
			return fmt.Errorf("a client secret must be at least 32 characters (try: openssl rand -base64 32)")
		}
		hash, err := op.HashClientSecret(secret)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, hash)
		return nil
	default:
		return fmt.Errorf("unknown clients command %q (check, hash-secret)", args[0])
	}
}
