package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
)

// container is what an orchestrator hands the idp process, rebuilt from a
// deployment file without a container engine: the files it mounts (by path
// inside the container), its environment and its command line. Start runs
// the real `idp` main on it.
type container struct {
	files map[string][]byte // absolute path in the container -> content
	env   map[string]string
	args  []string // after the entrypoint, i.e. what run() gets
}

func newContainer() *container {
	return &container{files: map[string][]byte{}, env: map[string]string{}}
}

// started is a running container: the address it listens on.
type started struct {
	addr string
}

var listenLogged = regexp.MustCompile(`"msg":"identity provider serving".*?"listen":"([^"]+)"|msg="identity provider serving".*? listen=(\S+)`)

// materialize writes the container's files under a temporary root and
// returns the mapping from a container path to its copy (false for a path
// that is not a file of the container).
func (c *container) materialize(t *testing.T) func(string) (string, bool) {
	t.Helper()
	root := t.TempDir()
	inRoot := func(p string) (string, bool) {
		if _, ok := c.files[p]; ok && filepath.IsAbs(p) {
			return filepath.Join(root, p), true
		}
		return p, false
	}
	for p, body := range c.files {
		host, ok := inRoot(p)
		if !ok {
			t.Fatalf("container file %q: not an absolute path", p)
		}
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return inRoot
}

// setEnv gives the test process the container's IdP variables, and clears
// those the container does not set. The others (GOMEMLIMIT, SSL_CERT_FILE)
// are read by the Go runtime of a fresh process, which an in-process run is
// not, and would leak into the rest of the test binary.
func (c *container) setEnv(t *testing.T) {
	for _, name := range []string{"IDP_DATABASE", "IDP_CRYPTO_KEY", "IDP_SMTP_PASSWORD"} {
		t.Setenv(name, "")
	}
	for name, v := range c.env {
		if strings.HasPrefix(name, "IDP_") {
			t.Setenv(name, v)
		}
	}
}

// load reads the container's config file at path with the real loader
// (config.Load), in the container's environment and files.
func (c *container) load(t *testing.T, path string) (*config.Config, error) {
	t.Helper()
	inRoot := c.materialize(t)
	host, ok := inRoot(path)
	if !ok {
		t.Fatalf("%s: no such file in the container (files: %v)", path, keys(c.files))
	}
	rewriteConfig(t, host, inRoot, "")
	c.setEnv(t)
	return config.Load(host)
}

// mustLoad is load for a config that must be valid.
func (c *container) mustLoad(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := c.load(t, path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cfg
}

// start materializes the container, points every path in the command line
// and in the config file at the copies, overrides the config's listen
// address with a free loopback port (the only setting a test must change)
// and runs `idp` with the container's arguments until the test ends. It
// fails the test unless the server reports that it serves.
func (c *container) start(t *testing.T) *started {
	t.Helper()
	inRoot := c.materialize(t)
	args := append([]string(nil), c.args...)
	configPath := ""
	for i, a := range args {
		if i > 0 && args[i-1] == "--config" {
			host, ok := inRoot(a)
			if !ok {
				t.Fatalf("--config %s: no such file in the container (files: %v)", a, keys(c.files))
			}
			args[i], configPath = host, host
		}
	}
	if configPath == "" {
		t.Fatalf("command line %q names no --config file", c.args)
	}
	rewriteConfig(t, configPath, inRoot, "127.0.0.1:0")

	c.setEnv(t)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), &out, &errOut) }()
	t.Cleanup(func() {
		cancel()
		// As on SIGTERM: the server drains and exits cleanly.
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("idp %q after stop: %v\n%s", c.args, err, errOut.String())
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		if m := listenLogged.FindStringSubmatch(errOut.String()); m != nil {
			return &started{addr: m[1] + m[2]}
		}
		select {
		case err := <-done:
			t.Fatalf("idp %q ended before serving: %v\n%s", c.args, err, errOut.String())
		case <-deadline:
			t.Fatalf("idp %q not serving after 30s\n%s", c.args, errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rewriteConfig edits the config file in place: every string naming a file
// of the container names its copy under the test's root, and a non-empty
// listen replaces the listen address.
func rewriteConfig(t *testing.T, path string, inRoot func(string) (string, bool), listen string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("config %s: %v", path, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("config %s is not a mapping", path)
	}
	top := doc.Content[0]
	if listen != "" {
		setListen := false
		for i := 0; i+1 < len(top.Content); i += 2 {
			if top.Content[i].Value == "listen" {
				top.Content[i+1].Value, top.Content[i+1].Style = listen, 0
				setListen = true
			}
		}
		if !setListen {
			top.Content = append(top.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Value: "listen"},
				&yaml.Node{Kind: yaml.ScalarNode, Value: listen})
		}
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			if host, ok := inRoot(n.Value); ok {
				n.Value = host
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(top)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// get asks the running server for path as an orchestrator's probe does:
// plain http to the container's address, with the Host a probe sends (the
// pod address, not the issuer's name).
func (s *started) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "10.0.0.7:8080"
	client := &http.Client{
		Timeout: 10 * time.Second,
		// A probe follows no redirect to another host; a redirect is not "up".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
