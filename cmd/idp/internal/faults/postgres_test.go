package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// cluster is a PostgreSQL server of this test alone, so that stopping and
// restarting it disturbs no other test.
type cluster struct {
	t    *testing.T
	bin  string
	dir  string
	port int
}

// postgresBin finds the newest server binaries the way .ci/test does; a
// missing server fails the test.
func postgresBin(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	// Never a skip: a fault test that did not run proves nothing.
	t.Fatal("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: apt-get install postgresql")
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// startCluster initdbs a throwaway cluster on a free loopback port, with
// durability off (the test restarts it, it never crashes the machine).
func startCluster(t *testing.T) *cluster {
	t.Helper()
	bin := postgresBin(t)
	// Not t.TempDir: its parents are private to this user, and the server
	// runs as "postgres" when the test runs as root.
	dir, err := os.MkdirTemp("", "idp-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, bin: bin, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		_ = c.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user to run the server: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := c.command(ctx, "initdb", "-D", c.data(), "-U", "app", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	return c
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

// DSN of the cluster's postgres database as user app.
func (c *cluster) DSN() string {
	return fmt.Sprintf("postgres://app@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", c.port)
}

// command runs a server binary, as the postgres user when we are root.
func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	if os.Geteuid() == 0 {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.CommandContext(ctx, path, args...)
}

func (c *cluster) pgctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := c.command(ctx, "pg_ctl", append([]string{"-D", c.data(), "-w"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %w\n%s", args, err, out)
	}
	return nil
}

// start starts the server and returns once it accepts connections.
func (c *cluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		c.port, c.dir)
	if err := c.pgctl("start", "-l", filepath.Join(c.dir, "server.log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("%v\nserver.log:\n%s", err, log)
	}
}

// stop shuts the server down the way an operator's restart does ("fast":
// sessions are ended, open transactions roll back).
func (c *cluster) stop() {
	c.t.Helper()
	if err := c.pgctl("stop", "-m", "fast"); err != nil {
		c.t.Fatal(err)
	}
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before we bind it again, which on loopback in a test is rare
// enough.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
