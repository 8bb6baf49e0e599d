package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// cpuMetric is the process collector's counter of the CPU a replica has
// used (user and system), in seconds.
const cpuMetric = "process_cpu_seconds_total"

// cpuMeter reads, at both edges of a run's measured window, the CPU the
// target's replicas, this bench and the whole machine have used. On a
// shared machine flows/s says little about the server; CPU per flow, and
// the flows one server CPU-second serves, hold on another machine.
type cpuMeter struct {
	replicas []replica
	client   *http.Client
	stderr   io.Writer
}

// replica is one /metrics URL of the target.
type replica struct {
	url string
	// local is whether it runs on this machine, so that its CPU is part of
	// the machine's total and not one of the "other processes".
	local bool
}

// registerCPU adds --metrics; newCPUMeter reads it once the target's
// timeout is known.
func registerCPU(fs *flag.FlagSet) *string {
	return fs.String("metrics", "", "the target replicas' /metrics URLs, comma-separated (their metrics_listen): the run reports the server's CPU per flow")
}

func newCPUMeter(ctx context.Context, list string, timeout time.Duration, stderr io.Writer) (*cpuMeter, error) {
	m := &cpuMeter{client: &http.Client{Timeout: min(timeout, 10*time.Second)}, stderr: stderr}
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("bench: --metrics %q is not an http(s) URL", raw)
		}
		m.replicas = append(m.replicas, replica{url: raw, local: onThisMachine(ctx, u.Hostname())})
	}
	return m, nil
}

// onThisMachine reports whether every address of host is a loopback
// address or one of this machine's interfaces. An unresolvable host is
// not: its scrape fails and says so.
func onThisMachine(ctx context.Context, host string) bool {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	own, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if a.IP.IsLoopback() {
			continue
		}
		mine := false
		for _, o := range own {
			if n, ok := o.(*net.IPNet); ok && n.IP.Equal(a.IP) {
				mine = true
			}
		}
		if !mine {
			return false
		}
	}
	return true
}

// cpuSample is one reading of every counter; a replica whose scrape
// failed has an error instead of a figure.
type cpuSample struct {
	at        time.Time
	server    []float64 // seconds, per replica
	failed    []error
	self      time.Duration
	selfOK    bool
	machine   time.Duration
	machineOK bool
}

// sample reads every counter at once. A replica that failed in prev is
// not asked again, so a run reports each failure once, on stderr, as
// "bench c=N: --metrics URL: why".
func (m *cpuMeter) sample(ctx context.Context, run string, prev *cpuSample) *cpuSample {
	s := &cpuSample{server: make([]float64, len(m.replicas)), failed: make([]error, len(m.replicas))}
	var wg sync.WaitGroup
	for i, rep := range m.replicas {
		if prev != nil && prev.failed[i] != nil {
			s.failed[i] = prev.failed[i]
			continue
		}
		wg.Go(func() {
			s.server[i], s.failed[i] = m.scrape(ctx, rep.url)
			if s.failed[i] == nil && prev != nil && s.server[i] < prev.server[i] {
				s.failed[i] = errors.New(cpuMetric + " went down: did the replica restart during the run?")
			}
			if s.failed[i] != nil {
				fmt.Fprintf(m.stderr, "bench %s: --metrics %s: %v; no server CPU for this run\n", run, rep.url, s.failed[i])
			}
		})
	}
	s.at = time.Now()
	s.self, s.selfOK = selfCPU()
	s.machine, s.machineOK = machineCPU()
	wg.Wait()
	return s
}

func (m *cpuMeter) scrape(ctx context.Context, rawURL string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, err
	}
	// The classic text format; OpenMetrics writes this sample alike.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	res, err := m.client.Do(req)
	if err != nil {
		// The line names the URL already; *url.Error would repeat it.
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, ue.Err
		}
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s", res.Status)
	}
	v, err := processCPUSeconds(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return 0, fmt.Errorf("%w (is it a replica's metrics_listen /metrics?)", err)
	}
	return v, nil
}

// processCPUSeconds reads the one process_cpu_seconds_total sample of a
// Prometheus text exposition (prometheus/common's parser). It is strict: no
// sample, two samples (two processes behind one URL would be summed
// wrongly) or a value that is not a finite, non-negative number are errors.
func processCPUSeconds(r io.Reader) (float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("reading the metrics: %w", err)
	}
	family, ok := families[cpuMetric]
	if !ok || len(family.GetMetric()) == 0 {
		return 0, fmt.Errorf("no %s sample", cpuMetric)
	}
	if n := len(family.GetMetric()); n > 1 {
		return 0, fmt.Errorf("%d %s samples, want the one of a single process", n, cpuMetric)
	}
	m := family.GetMetric()[0]
	x := m.GetCounter().GetValue()
	if m.GetCounter() == nil {
		x = m.GetUntyped().GetValue()
	}
	if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
		return 0, fmt.Errorf("%s: value %v is not a CPU time", cpuMetric, x)
	}
	return x, nil
}

// userHZ is the unit of /proc/stat: the kernel reports in USER_HZ, which
// is 100 on every Linux architecture Go supports.
const userHZ = 100

// machineCPU is the CPU time every process on this machine has used
// (user, nice, system, irq, softirq, steal; guest time is already in
// user), from /proc/stat; false off Linux or when it cannot be read.
func machineCPU() (time.Duration, bool) {
	if runtime.GOOS != "linux" {
		return 0, false
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, true
}

// cpuUse is what a run's measured window cost, from two samples.
type cpuUse struct {
	window time.Duration
	// server is the replicas' CPU, summed; serverOK only when every
	// replica was read at both edges.
	server    time.Duration
	serverOK  bool
	replicas  int
	local     time.Duration // of server, the replicas on this machine
	self      time.Duration
	selfOK    bool
	machine   time.Duration
	machineOK bool
}

func (m *cpuMeter) use(before, after *cpuSample) *cpuUse {
	u := &cpuUse{
		window:   after.at.Sub(before.at),
		replicas: len(m.replicas),
		serverOK: len(m.replicas) > 0,
		self:     after.self - before.self, selfOK: before.selfOK && after.selfOK,
		machine: after.machine - before.machine, machineOK: before.machineOK && after.machineOK,
	}
	for i, rep := range m.replicas {
		if after.failed[i] != nil {
			u.serverOK = false
			continue
		}
		d := time.Duration((after.server[i] - before.server[i]) * float64(time.Second))
		u.server += d
		if rep.local {
			u.local += d
		}
	}
	return u
}

// print writes the CPU lines of a run of flows: each figure per flow.
func (u *cpuUse) print(w io.Writer, flows int) {
	if u == nil || flows == 0 {
		return
	}
	perFlow := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000/float64(flows)) }
	cores := func(d time.Duration) string {
		if u.window <= 0 {
			return "?"
		}
		return fmt.Sprintf("%.2f", d.Seconds()/u.window.Seconds())
	}
	switch {
	case u.serverOK && u.server > 0:
		fmt.Fprintf(w, "  server CPU %s per flow (summed over %d replica(s), %s cores busy); server capacity %.1f flows per server CPU-second\n",
			perFlow(u.server), u.replicas, cores(u.server), float64(flows)/u.server.Seconds())
	case u.serverOK:
		fmt.Fprintf(w, "  server CPU: %s did not move over %d flows (its resolution is 10 ms); measure more flows\n", cpuMetric, flows)
	}
	if u.selfOK {
		fmt.Fprintf(w, "  generator CPU %s per flow (this bench process, %s cores busy)\n", perFlow(u.self), cores(u.self))
	}
	if !u.machineOK || !u.selfOK {
		return
	}
	label, rest := "other processes (e.g. the database, when on this machine)", u.machine-u.self-u.local
	if !u.serverOK {
		label, rest = "other processes (the server too, when on this machine: its CPU was not read; e.g. the database)", u.machine-u.self
	}
	if rest < 0 {
		fmt.Fprintf(w, "  %s: none measured, the machine's %s per flow is less than the figures above (does the server run in the bench's process?)\n",
			label, perFlow(u.machine))
		return
	}
	fmt.Fprintf(w, "  %s CPU %s per flow; the machine's total %s per flow (%s cores busy)\n",
		label, perFlow(rest), perFlow(u.machine), cores(u.machine))
}
