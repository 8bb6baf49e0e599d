package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/comstockloan/idp/op"
)

var (
	bannerIdP    = regexp.MustCompile(`identity provider: +(http://\S+)`)
	bannerSecret = regexp.MustCompile(`client_id demo-rp, client_secret (\S+)`)
)

// runDev starts `idp dev` with args and returns its banner once printed,
// and how to stop it (also done when the test ends).
func runDev(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"dev", "--addr", "127.0.0.1:0", "--rp-addr", "127.0.0.1:0"}, args...), nil, out, io.Discard)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl+C") {
		select {
		case err := <-done:
			t.Fatalf("idp dev ended: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner from idp dev:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out.String(), stop
}

// A website developer points their own RP at `idp dev`: the demo client's
// secret is printed and stays the same across restarts of one data
// directory, and a client from --clients (the config file's format) can
// start a sign-in.
func TestDevStackServesAnOutsideRP(t *testing.T) {
	data := t.TempDir()
	hash, err := op.HashClientSecret("my-site-secret-0123456789abcdef-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	clients := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(clients, []byte("clients:\n  - id: my-site\n    secret_hash: \""+hash+"\"\n    redirect_uris: [http://localhost:3000/callback]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	banner, stop := runDev(t, "--data", data, "--clients", clients)
	secret := bannerSecret.FindStringSubmatch(banner)
	idp := bannerIdP.FindStringSubmatch(banner)
	if secret == nil || idp == nil || !strings.Contains(banner, "my-site") {
		t.Fatalf("banner lacks the IdP URL, the demo secret or my-site:\n%s", banner)
	}
	q := url.Values{
		"client_id": {"my-site"}, "redirect_uri": {"http://localhost:3000/callback"}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"s"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		"code_challenge_method": {"S256"},
	}
	jar, _ := cookiejar.New(nil)
	res, err := (&http.Client{Jar: jar}).Get(idp[1] + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Request.URL.Path != "/login" {
		t.Fatalf("authorize for my-site ended at %s with %d, want the login page", res.Request.URL, res.StatusCode)
	}

	// A file that is not a clients list is refused with its reason.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("clientz: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"dev", "--data", t.TempDir(), "--clients", bad}, nil, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "clientz") {
		t.Fatalf("dev with a misspelt clients file: %v, want an error naming clientz", err)
	}
	stop()
	again, _ := runDev(t, "--data", data)
	if same := bannerSecret.FindStringSubmatch(again); same == nil || same[1] != secret[1] {
		t.Fatalf("restart on the same data directory: secret %v, want %s", same, secret[1])
	}
	other, _ := runDev(t, "--data", t.TempDir())
	if s := bannerSecret.FindStringSubmatch(other); s == nil || s[1] == secret[1] {
		t.Fatalf("another data directory: secret %v, want a different one", s)
	}
}
