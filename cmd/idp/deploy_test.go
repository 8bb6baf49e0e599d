package main

// The files under deploy/ are tested here, in package main, because no
// container engine runs in CI and the next best thing is the real program:
// this package can run `idp serve` exactly as the Dockerfile and the
// manifests start it (the real flag parser, config loader and server), and
// deploy/ itself could not import cmd/idp/internal. Each test rebuilds what
// the orchestrator would hand the process (files, environment, arguments;
// see container_test.go) and probes the paths the files name over HTTP.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"math"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/comstockloan/idp/cmd/idp/internal/config"
	"github.com/comstockloan/idp/cmd/idp/internal/server"
	"github.com/comstockloan/idp/login/password"
	"github.com/comstockloan/idp/storage/storagetest"
)

const deployDir = "../../deploy"

// testCryptoKey stands in for every deployment's crypto key.
const testCryptoKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// --- Kubernetes objects, as far as the tests read them ---

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// selects reports whether the selector picks pods carrying labels.
func (s labelSelector) selects(labels map[string]string) bool {
	if len(s.MatchLabels) == 0 {
		return false
	}
	for k, v := range s.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	StartupProbe   *k8sProbe `yaml:"startupProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	Lifecycle      struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Deployment
		Replicas int           `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxUnavailable string `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				TopologySpreadConstraints []struct {
					MaxSkew           int           `yaml:"maxSkew"`
					TopologyKey       string        `yaml:"topologyKey"`
					WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
					LabelSelector     labelSelector `yaml:"labelSelector"`
				} `yaml:"topologySpreadConstraints"`
				TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
				Containers                    []k8sContainer `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name  string      `yaml:"name"`
						Items []keyToPath `yaml:"items"`
					} `yaml:"configMap"`
					Secret *struct {
						SecretName string      `yaml:"secretName"`
						Items      []keyToPath `yaml:"items"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// Service (Selector is a plain map there) and PodDisruptionBudget
		Ports []struct {
			Name       string `yaml:"name"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		MinAvailable   string `yaml:"minAvailable"`
		MaxUnavailable string `yaml:"maxUnavailable"`
	} `yaml:"spec"`
	serviceSelector map[string]string
}

// k8sManifests reads every object of every file in deploy/kubernetes.
func k8sManifests(t *testing.T) map[string]*k8sObject {
	t.Helper()
	objs := map[string]*k8sObject{}
	files, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var node yaml.Node
			if err := dec.Decode(&node); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			o := &k8sObject{}
			if err := node.Decode(o); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "Service" {
				var svc struct {
					Spec struct {
						Selector map[string]string `yaml:"selector"`
					} `yaml:"spec"`
				}
				if err := node.Decode(&svc); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				o.serviceSelector = svc.Spec.Selector
			}
			id := o.Kind + "/" + o.Metadata.Name
			if objs[id] != nil {
				t.Fatalf("%s defined twice", id)
			}
			objs[id] = o
		}
	}
	return objs
}

func mustObject(t *testing.T, objs map[string]*k8sObject, id string) *k8sObject {
	t.Helper()
	o := objs[id]
	if o == nil {
		t.Fatalf("no %s in deploy/kubernetes (have %v)", id, keys(objs))
	}
	return o
}

func idpContainer(t *testing.T, d *k8sObject) *k8sContainer {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "idp" {
			return c
		}
	}
	t.Fatal("Deployment idp has no container named idp")
	return nil
}

func (c *k8sContainer) probes() map[string]*k8sProbe {
	return map[string]*k8sProbe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe}
}

func (c *k8sContainer) portNamed(name string) (int, bool) {
	for _, p := range c.Ports {
		if p.Name == name || strconv.Itoa(p.ContainerPort) == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// testSecretValues are what an operator puts in the Secret, by key.
func testSecretValues(dsn string) map[string]string {
	return map[string]string{
		"database":      dsn,
		"crypto-key":    testCryptoKey,
		"smtp-password": "test-smtp-password",
	}
}

// podContainer is what the kubelet gives the idp container of the
// Deployment: the ConfigMap and Secret volumes as files, the environment
// (secretKeyRef resolved from secret), and the Dockerfile's entrypoint
// with the container's args (or the image's CMD).
func podContainer(t *testing.T, objs map[string]*k8sObject, secret map[string]string) *container {
	t.Helper()
	d := mustObject(t, objs, "Deployment/idp")
	c := idpContainer(t, d)
	secretObj := mustObject(t, objs, "Secret/idp-secrets")
	ctr := newContainer()
	volumes := map[string]func(dir string){}
	for _, v := range d.Spec.Template.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			cm := mustObject(t, objs, "ConfigMap/"+v.ConfigMap.Name)
			items := v.ConfigMap.Items
			if items == nil {
				for k := range cm.Data {
					items = append(items, keyToPath{Key: k, Path: k})
				}
			}
			volumes[v.Name] = func(dir string) {
				for _, it := range items {
					body, ok := cm.Data[it.Key]
					if !ok {
						t.Fatalf("volume %s: ConfigMap %s has no key %q", v.Name, cm.Metadata.Name, it.Key)
					}
					ctr.files[dir+"/"+it.Path] = []byte(body)
				}
			}
		case v.Secret != nil:
			if v.Secret.SecretName != secretObj.Metadata.Name {
				t.Fatalf("volume %s mounts Secret %q, the template is %q", v.Name, v.Secret.SecretName, secretObj.Metadata.Name)
			}
			items := v.Secret.Items
			if items == nil {
				for k := range secretObj.StringData {
					items = append(items, keyToPath{Key: k, Path: k})
				}
			}
			volumes[v.Name] = func(dir string) {
				for _, it := range items {
					if _, ok := secretObj.StringData[it.Key]; !ok {
						t.Fatalf("volume %s: the Secret template has no key %q", v.Name, it.Key)
					}
					if _, ok := secret[it.Key]; !ok {
						t.Fatalf("volume %s: the test has no value for Secret key %q", v.Name, it.Key)
					}
					ctr.files[dir+"/"+it.Path] = []byte(secret[it.Key] + "\n")
				}
			}
		}
	}
	for _, m := range c.VolumeMounts {
		mount, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volumeMount %s: no such volume", m.Name)
		}
		mount(m.MountPath)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secretObj.Metadata.Name {
				t.Fatalf("env %s reads Secret %q, the template is %q", e.Name, ref.Name, secretObj.Metadata.Name)
			}
			if _, ok := secretObj.StringData[ref.Key]; !ok {
				t.Fatalf("env %s: the Secret template has no key %q", e.Name, ref.Key)
			}
			if _, ok := secret[ref.Key]; !ok {
				t.Fatalf("env %s: the test has no value for Secret key %q", e.Name, ref.Key)
			}
			ctr.env[e.Name] = secret[ref.Key]
		case e.ValueFrom == nil:
			ctr.env[e.Name] = e.Value
		}
	}
	df := parseDockerfile(t)
	if len(c.Command) > 0 {
		t.Fatalf("the container overrides the image's entrypoint with %q", c.Command)
	}
	ctr.args = df.cmd
	if c.Args != nil {
		ctr.args = c.Args
	}
	return ctr
}

// --- The tests ---

// Every YAML file under deploy/ parses, every document of it.
func TestDeployYAMLParses(t *testing.T) {
	n := 0
	err := filepath.WalkDir(deployDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		docs := 0
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Errorf("%s: document %d: %v", path, docs+1, err)
				break
			}
			docs++
		}
		if docs == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Errorf("only %d YAML files under deploy/; expected the example config, compose files and manifests", n)
	}
}

// configFieldPaths lists every key config.Config reads, as dotted paths
// (list elements have no index: "clients.id").
func configFieldPaths(t reflect.Type, prefix string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + tag
		ft := f.Type
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)) {
			configFieldPaths(ft, path+".", out)
			continue
		}
		out[path] = true
	}
}

// commentedKey is a commented-out setting: "# key: value" at any indent.
var commentedKey = regexp.MustCompile(`^(\s*)# ?(([a-z_]+):( .*)?)$`)

// uncomment turns the example's commented-out settings (lines "# key: …"
// whose key is a config field name, so that prose is left alone) into
// settings, so that they are checked like the others.
func uncomment(raw []byte, fields map[string]bool) []byte {
	names := map[string]bool{}
	for p := range fields {
		names[p[strings.LastIndexByte(p, '.')+1:]] = true
	}
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		if m := commentedKey.FindStringSubmatch(line); m != nil && names[m[3]] {
			line = m[1] + m[2]
		}
		b.WriteString(line + "\n")
	}
	return b.Bytes()
}

// The example config documents every field the server reads: each is set
// or commented out, with a comment, and what is commented out is spelled as
// the strict loader wants it.
func TestDeployExampleConfigDocumentsEveryField(t *testing.T) {
	want := map[string]bool{}
	configFieldPaths(reflect.TypeOf(config.Config{}), "", want)

	raw := uncomment(readDeploy(t, "idp.example.yaml"), want)
	var strict config.Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("idp.example.yaml with its commented-out settings: %v", err)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := prefix + k.Value
				have[path] = true
				if k.HeadComment == "" && k.LineComment == "" && v.LineComment == "" {
					t.Errorf("idp.example.yaml: %s has no comment", path)
				}
				if v.Kind == yaml.MappingNode || (v.Kind == yaml.SequenceNode && len(v.Content) > 0 && v.Content[0].Kind == yaml.MappingNode) {
					walk(v, path+".")
				}
			}
		}
	}
	walk(doc.Content[0], "")
	for p := range want {
		if !have[p] {
			t.Errorf("idp.example.yaml does not mention %s (a field of config.Config)", p)
		}
	}
	if len(want) < 60 {
		t.Errorf("found only %d config fields by reflection; the walk is broken", len(want))
	}
}

// The example loads with the real loader, its secret files in place.
func TestDeployExampleConfigLoads(t *testing.T) {
	ctr := newContainer()
	ctr.files["/etc/idp/idp.yaml"] = readDeploy(t, "idp.example.yaml")
	ctr.files["/run/secrets/idp-crypto-key"] = []byte(testCryptoKey + "\n")
	ctr.files["/run/secrets/idp-smtp-password"] = []byte("test-smtp-password\n")
	cfg := ctr.mustLoad(t, "/etc/idp/idp.yaml")
	if cfg.CryptoKey != testCryptoKey || cfg.SMTP.Password != "test-smtp-password" {
		t.Errorf("secrets not read from their files: crypto_key %q, smtp.password %q", cfg.CryptoKey, cfg.SMTP.Password)
	}
	if !cfg.TrustProxyHeaders || !strings.HasPrefix(cfg.Issuer, "https://") {
		t.Errorf("the production example must trust its load balancer and have an https issuer: %+v", cfg)
	}
}

// The pod the Deployment describes starts: the ConfigMap's idp.yaml and
// the Secret's keys, mounted and set as the manifest says, load, and the
// server answers every probe path with 200 on the port the probe names.
func TestDeployKubernetesPodServesItsProbes(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		objs := k8sManifests(t)
		ctr := podContainer(t, objs, testSecretValues(storagetest.EmptyDSN(t, flavor)))
		c := idpContainer(t, mustObject(t, objs, "Deployment/idp"))
		cfg := ctr.mustLoad(t, "/etc/idp/idp.yaml")
		_, listenPort, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.CryptoKey != testCryptoKey || cfg.SMTP.Password != "test-smtp-password" {
			t.Errorf("the pod's config did not read the Secret: crypto_key %q, smtp.password %q", cfg.CryptoKey, cfg.SMTP.Password)
		}

		srv := ctr.start(t)
		for name, p := range c.probes() {
			if p == nil || p.HTTPGet == nil {
				if name != "startupProbe" {
					t.Errorf("container idp has no HTTP %s", name)
				}
				continue
			}
			port, ok := c.portNamed(p.HTTPGet.Port)
			if !ok {
				t.Errorf("%s port %q is not a port of the container", name, p.HTTPGet.Port)
			} else if strconv.Itoa(port) != listenPort {
				t.Errorf("%s goes to port %d, the server listens on %s", name, port, cfg.Listen)
			}
			if status, body := srv.get(t, p.HTTPGet.Path); status != 200 {
				t.Errorf("%s GET %s: %d %q, want 200", name, p.HTTPGet.Path, status, body)
			}
		}
		// And a path the server does not have is not 200: the probe check
		// above can fail.
		if status, _ := srv.get(t, "/no-such-probe"); status == 200 {
			t.Errorf("GET /no-such-probe answered 200: the probe check proves nothing")
		}
	})
}

// The shape of the Deployment: three replicas on different nodes that stay
// at least two through rollouts and drains, and a Service and PDB that
// select its pods.
func TestDeployKubernetesAvailability(t *testing.T) {
	objs := k8sManifests(t)
	d := mustObject(t, objs, "Deployment/idp")
	pods := d.Spec.Template.Metadata.Labels
	if d.Spec.Replicas != 3 {
		t.Errorf("replicas %d, want 3", d.Spec.Replicas)
	}
	if !d.Spec.Selector.selects(pods) {
		t.Errorf("the Deployment's selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, pods)
	}
	if ru := d.Spec.Strategy.RollingUpdate; d.Spec.Strategy.Type != "RollingUpdate" || d.Spec.Replicas-atoi(t, ru.MaxUnavailable, d.Spec.Replicas) < 2 {
		t.Errorf("strategy %+v lets a rollout go below 2 ready replicas", d.Spec.Strategy)
	}

	var pdb *k8sObject
	for id, o := range objs {
		if strings.HasPrefix(id, "PodDisruptionBudget/") && o.Spec.Selector.selects(pods) {
			pdb = o
		}
	}
	if pdb == nil {
		t.Fatal("no PodDisruptionBudget selects the idp pods")
	}
	switch {
	case pdb.Spec.MinAvailable != "" && pdb.Spec.MaxUnavailable != "":
		t.Errorf("the PDB sets both minAvailable and maxUnavailable")
	case pdb.Spec.MinAvailable != "" && atoi(t, pdb.Spec.MinAvailable, d.Spec.Replicas) < 2,
		pdb.Spec.MaxUnavailable != "" && d.Spec.Replicas-atoi(t, pdb.Spec.MaxUnavailable, d.Spec.Replicas) < 2,
		pdb.Spec.MinAvailable == "" && pdb.Spec.MaxUnavailable == "":
		t.Errorf("the PDB (minAvailable %q, maxUnavailable %q) lets a drain go below 2 of %d", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable, d.Spec.Replicas)
	}

	spread := false
	for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
		if c.TopologyKey == "kubernetes.io/hostname" && c.WhenUnsatisfiable == "DoNotSchedule" && c.MaxSkew == 1 && c.LabelSelector.selects(pods) {
			spread = true
		}
	}
	if !spread {
		t.Error("no hard topology spread over kubernetes.io/hostname (maxSkew 1) for the idp pods: replicas may share a node")
	}

	svc := mustObject(t, objs, "Service/idp")
	if !(labelSelector{MatchLabels: svc.serviceSelector}).selects(pods) {
		t.Errorf("the Service selects %v, the pods are %v", svc.serviceSelector, pods)
	}
	c := idpContainer(t, d)
	for _, p := range svc.Spec.Ports {
		if _, ok := c.portNamed(p.TargetPort); !ok {
			t.Errorf("Service port %s targets %q, which the container does not have", p.Name, p.TargetPort)
		}
	}
	if len(svc.Spec.Ports) == 0 {
		t.Error("the Service has no ports")
	}
}

// atoi reads an int-or-percentage of total (rounding a percentage of
// unavailable pods up, as Kubernetes does for a PDB).
func atoi(t *testing.T, s string, total int) int {
	t.Helper()
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(pct)
		if err != nil {
			t.Fatalf("bad percentage %q", s)
		}
		return int(math.Ceil(float64(n) * float64(total) / 100))
	}
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad int-or-string %q", s)
	}
	return n
}

// A pod being stopped keeps serving through its preStop pause and then
// drains in-flight requests; the grace period must cover both, or the
// kubelet kills requests the server would have finished.
func TestDeployKubernetesGracePeriodCoversTheDrain(t *testing.T) {
	d := mustObject(t, k8sManifests(t), "Deployment/idp")
	c := idpContainer(t, d)
	drain := server.ShutdownTimeout
	var preStop time.Duration
	if c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if preStop == 0 {
		t.Error("no preStop sleep: the pod stops accepting before the endpoints controller removes it from the Service")
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if grace <= preStop+drain {
		t.Errorf("terminationGracePeriodSeconds %s does not cover preStop %s + the server's shutdown drain %s", grace, preStop, drain)
	}
}

// The container's resources fit the password-hash limiter, which sizes
// itself from the cgroup memory limit (an eighth of it for concurrent
// argon2id hashes) and the CPUs Go sees (at most half of them hash).
func TestDeployKubernetesResourcesFitThePasswordHashLimiter(t *testing.T) {
	objs := k8sManifests(t)
	c := idpContainer(t, mustObject(t, objs, "Deployment/idp"))
	cfg := podContainer(t, objs, testSecretValues("sqlite:"+filepath.Join(t.TempDir(), "idp.db"))).mustLoad(t, "/etc/idp/idp.yaml")

	limit := quantityBytes(t, c.Resources.Limits["memory"])
	if limit == 0 {
		// Without a limit the limiter sizes itself from the node's memory:
		// up to 1 GiB of hashes in a pod the scheduler reserved far less for.
		t.Fatal("no memory limit on the idp container")
	}
	if req := quantityBytes(t, c.Resources.Requests["memory"]); req < limit {
		t.Errorf("memory request %s below the limit %s: the memory a password spray uses is not reserved", c.Resources.Requests["memory"], c.Resources.Limits["memory"])
	}
	budget := min(limit/8, 1<<30) // password.NewLimiter's default budget
	if cfg.Password.HashMemoryMiB > 0 {
		budget = int64(cfg.Password.HashMemoryMiB) << 20
	}
	perHash := int64(cfg.Password.MemoryKiB) << 10
	if budget < perHash {
		t.Fatalf("memory limit %s gives the limiter %d MiB, less than one %d MiB hash", c.Resources.Limits["memory"], budget>>20, perHash>>20)
	}

	// Go ≥ 1.25 sets GOMAXPROCS from the CPU limit (rounded up, at least 2).
	procs := 64 // no CPU limit: a big node
	if cpu := c.Resources.Limits["cpu"]; cpu != "" {
		procs = max(2, int(math.Ceil(quantityCPU(t, cpu))))
	}
	prev := runtime.GOMAXPROCS(procs)
	slots := password.NewLimiter(password.LimiterConfig{MemoryBudget: budget}, password.Params{MemoryKiB: cfg.Password.MemoryKiB}).Slots()
	runtime.GOMAXPROCS(prev)
	if slots < 2 {
		t.Errorf("the limiter gets %d hashing slot(s) per pod from memory %s and cpu %q: one slow hash holds every password login of the pod", slots, c.Resources.Limits["memory"], c.Resources.Limits["cpu"])
	}
	t.Logf("per pod: %d hashing slots of %d MiB, budget %d MiB of a %d MiB limit, GOMAXPROCS %d", slots, perHash>>20, budget>>20, limit>>20, procs)

	var goMemLimit string
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			goMemLimit = e.Value
		}
	}
	if goMemLimit == "" {
		t.Fatal("no GOMEMLIMIT: Go's collector does not know the container's limit")
	}
	if soft := goMemLimitBytes(t, goMemLimit); soft >= limit || soft < budget+64<<20 {
		t.Errorf("GOMEMLIMIT %s must lie between the hash budget plus 64 MiB (%d MiB) and the memory limit (%d MiB)", goMemLimit, (budget+64<<20)>>20, limit>>20)
	}
}

var quantity = regexp.MustCompile(`^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T|m)?$`)

// quantityBytes reads a Kubernetes memory quantity ("512Mi", "1G").
func quantityBytes(t *testing.T, q string) int64 {
	t.Helper()
	if q == "" {
		return 0
	}
	m := quantity.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("memory quantity %q not understood", q)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	mult := map[string]float64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	if mult == 0 {
		t.Fatalf("memory quantity %q not understood", q)
	}
	return int64(n * mult)
}

// quantityCPU reads a Kubernetes CPU quantity ("4", "500m").
func quantityCPU(t *testing.T, q string) float64 {
	t.Helper()
	s, milli := strings.CutSuffix(q, "m")
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("cpu quantity %q not understood", q)
	}
	if milli {
		n /= 1000
	}
	return n
}

// goMemLimitBytes reads GOMEMLIMIT's syntax (runtime/debug: "460MiB").
func goMemLimitBytes(t *testing.T, s string) int64 {
	t.Helper()
	for suffix, mult := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				t.Fatalf("GOMEMLIMIT %q: %v", s, err)
			}
			return v * mult
		}
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(s, "B"), 10, 64)
	if err != nil {
		t.Fatalf("GOMEMLIMIT %q not understood", s)
	}
	return v
}

// The container runs as a user Kubernetes can verify is not root, and the
// ConfigMap holds no secret.
func TestDeployKubernetesPodIsNonRootAndConfigHoldsNoSecret(t *testing.T) {
	objs := k8sManifests(t)
	d := mustObject(t, objs, "Deployment/idp")
	sc := d.Spec.Template.Spec.SecurityContext
	if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Error("the pod does not set runAsNonRoot")
	}
	// runAsNonRoot refuses an image whose USER is a name unless runAsUser
	// gives the number.
	if (sc.RunAsUser == nil || *sc.RunAsUser == 0) && !parseDockerfile(t).numericUser {
		t.Error("runAsNonRoot without a numeric non-zero runAsUser or image USER: the kubelet cannot verify it and refuses the pod")
	}

	var cm struct {
		Database  string `yaml:"database"`
		CryptoKey string `yaml:"crypto_key"`
		SMTP      struct {
			Password string `yaml:"password"`
		} `yaml:"smtp"`
	}
	for id, o := range objs {
		if !strings.HasPrefix(id, "ConfigMap/") {
			continue
		}
		for key, body := range o.Data {
			if err := yaml.Unmarshal([]byte(body), &cm); err != nil {
				t.Fatalf("%s key %s: %v", id, key, err)
			}
			if cm.CryptoKey != "" || cm.SMTP.Password != "" {
				t.Errorf("%s key %s holds a secret (crypto_key or smtp.password); it belongs in the Secret", id, key)
			}
			if u, err := url.Parse(cm.Database); cm.Database != "" && (err != nil || u.User == nil || hasPassword(u)) {
				t.Errorf("%s key %s: database %q may carry a password; it belongs in the Secret (IDP_DATABASE)", id, key, cm.Database)
			}
		}
	}
}

func hasPassword(u *url.URL) bool { _, ok := u.User.Password(); return ok }

// The Secret template's placeholders stop start-up with a message naming
// the fields, so a forgotten value cannot run (a crypto key anyone can read
// in this repository would sign tokens and key the audit chain).
func TestDeployKubernetesSecretTemplateIsRefused(t *testing.T) {
	objs := k8sManifests(t)
	secret := mustObject(t, objs, "Secret/idp-secrets").StringData
	for k, v := range secret {
		if !strings.Contains(v, "REPLACE-ME") {
			t.Errorf("Secret template key %s = %q: not a visible placeholder", k, v)
		}
	}
	for k := range testSecretValues("") {
		if _, ok := secret[k]; !ok {
			t.Errorf("the Secret template has no key %s", k)
		}
	}
	_, err := podContainer(t, objs, secret).load(t, "/etc/idp/idp.yaml")
	if err == nil {
		t.Fatal("the pod starts with the Secret template's placeholders")
	}
	for _, field := range []string{"database:", "crypto_key:"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

// --- Dockerfile ---

type dockerfile struct {
	finalFrom   string
	user        string
	numericUser bool
	expose      []string
	entrypoint  []string
	cmd         []string
	runs        []string
	copies      []string
}

// parseDockerfile reads the instructions the tests check, continuation
// lines joined; ENTRYPOINT and CMD must be in exec (JSON) form.
func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(readDeploy(t, "Dockerfile")), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && cur == "") {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	df := &dockerfile{}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		execForm := func() []string {
			var v []string
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("Dockerfile %s %s: not exec form (the image has no shell): %v", instr, rest, err)
			}
			return v
		}
		switch strings.ToUpper(instr) {
		case "FROM":
			f := strings.Fields(rest)
			for len(f) > 0 && strings.HasPrefix(f[0], "--") {
				f = f[1:]
			}
			df.finalFrom, df.user = f[0], "" // a new stage starts as root
		case "USER":
			df.user = rest
		case "EXPOSE":
			df.expose = append(df.expose, strings.Fields(rest)...)
		case "ENTRYPOINT":
			df.entrypoint = execForm()
		case "CMD":
			df.cmd = execForm()
		case "RUN":
			df.runs = append(df.runs, rest)
		case "COPY":
			df.copies = append(df.copies, rest)
		}
	}
	uid, _, _ := strings.Cut(df.user, ":")
	n, err := strconv.Atoi(uid)
	df.numericUser = err == nil && n != 0
	return df
}

// The image is static, distroless or scratch, not root, and its CMD is a
// command line `idp` accepts (the compose test runs it).
func TestDeployDockerfile(t *testing.T) {
	df := parseDockerfile(t)
	if !strings.HasPrefix(df.finalFrom, "gcr.io/distroless/static") && df.finalFrom != "scratch" {
		t.Errorf("final stage FROM %s: want distroless/static or scratch (a static binary needs no libc)", df.finalFrom)
	}
	if !slices.ContainsFunc(df.runs, func(r string) bool { return strings.Contains(r, "CGO_ENABLED=0") && strings.Contains(r, "go build") }) {
		t.Error("the binary is not built with CGO_ENABLED=0: it would need a libc distroless/static does not have")
	}
	if !df.numericUser {
		t.Errorf("final stage USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot cannot check a name)", df.user)
	}
	if len(df.entrypoint) != 1 || !slices.ContainsFunc(df.copies, func(c string) bool { return strings.HasSuffix(c, " "+df.entrypoint[0]) }) {
		t.Errorf("ENTRYPOINT %q is not the binary the image copies (%q)", df.entrypoint, df.copies)
	}
	if len(df.cmd) == 0 || df.cmd[0] != "serve" {
		t.Fatalf("CMD %q does not serve", df.cmd)
	}

	// The Kubernetes container's port and the image's EXPOSE are the port
	// the config listens on.
	objs := k8sManifests(t)
	c := idpContainer(t, mustObject(t, objs, "Deployment/idp"))
	cfg := podContainer(t, objs, testSecretValues("sqlite:"+filepath.Join(t.TempDir(), "idp.db"))).mustLoad(t, "/etc/idp/idp.yaml")
	_, port, _ := net.SplitHostPort(cfg.Listen)
	if !slices.Contains(df.expose, port) && !slices.Contains(df.expose, port+"/tcp") {
		t.Errorf("EXPOSE %v, the config listens on %s", df.expose, cfg.Listen)
	}
	if p, ok := c.portNamed("http"); !ok || strconv.Itoa(p) != port {
		t.Errorf("container port http = %d, the config listens on %s", p, cfg.Listen)
	}

	// A flag the parser does not know is refused: the compose and pod tests,
	// which run CMD and args, would catch a renamed flag.
	bad := append(slices.Clone(df.cmd), "--no-such-flag")
	if err := run(t.Context(), bad, strings.NewReader(""), new(bytes.Buffer), new(bytes.Buffer)); exitStatus(err) != 2 {
		t.Errorf("idp %q: status %d (%v), want the usage error 2", bad, exitStatus(err), err)
	}
}

// --- compose ---

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

func composeServices(t *testing.T) map[string]*composeService {
	t.Helper()
	var f struct {
		Services map[string]*composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(readDeploy(t, "compose.yaml"), &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return f.Services
}

var composeInterpolation = regexp.MustCompile(`\$\{([A-Z_]+)(:-|:\?)([^}]*)\}`)

// composeVar resolves compose's ${NAME:-default} and ${NAME:?error}; a
// required variable takes its value from required.
func composeVar(t *testing.T, s string, required map[string]string) string {
	t.Helper()
	return composeInterpolation.ReplaceAllStringFunc(s, func(m string) string {
		p := composeInterpolation.FindStringSubmatch(m)
		if p[2] == ":-" {
			return p[3]
		}
		v, ok := required[p[1]]
		if !ok {
			t.Fatalf("compose.yaml requires %s; give the test a value for it", p[1])
		}
		return v
	})
}

// idpService is the compose service built from deploy/Dockerfile.
func idpService(t *testing.T, svcs map[string]*composeService) (string, *composeService) {
	t.Helper()
	for name, s := range svcs {
		if s.Build != nil && filepath.Base(s.Build.Dockerfile) == "Dockerfile" {
			return name, s
		}
	}
	t.Fatal("no compose service builds deploy/Dockerfile")
	return "", nil
}

// composeContainer is what compose gives one idp replica, with the
// database it names replaced by the test's.
func composeContainer(t *testing.T, s *composeService, dsn string) *container {
	t.Helper()
	ctr := newContainer()
	for k, v := range s.Environment {
		ctr.env[k] = composeVar(t, v, map[string]string{"IDP_CRYPTO_KEY": testCryptoKey})
	}
	if _, ok := ctr.env["IDP_DATABASE"]; !ok {
		t.Fatal("the compose idp service sets no IDP_DATABASE")
	}
	ctr.env["IDP_DATABASE"] = dsn
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue // a named volume
		}
		ctr.files[parts[1]] = readDeploy(t, parts[0])
	}
	ctr.args = parseDockerfile(t).cmd
	if s.Command != nil {
		ctr.args = s.Command
	}
	return ctr
}

// nginxConf is what the test reads from compose/nginx.conf.
type nginxConf struct {
	listen    []string
	upstreams []string // host:port of upstream servers
	xff       string   // the X-Forwarded-For value set
}

func parseNginx(t *testing.T, raw []byte) nginxConf {
	t.Helper()
	var c nginxConf
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line, _, _ := strings.Cut(strings.TrimSpace(sc.Text()), "#")
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		switch {
		case len(f) >= 2 && f[0] == "listen":
			c.listen = append(c.listen, f[1])
		case len(f) >= 2 && f[0] == "server" && f[1] != "{":
			c.upstreams = append(c.upstreams, f[1])
		case len(f) == 3 && f[0] == "proxy_set_header" && strings.EqualFold(f[1], "X-Forwarded-For"):
			c.xff = f[2]
		}
	}
	return c
}

// The compose stack: several replicas of the image on one PostgreSQL and a
// mail catcher, behind a load balancer that forwards to the port the IdP
// listens on and appends the client address the IdP trusts.
func TestDeployComposeShape(t *testing.T) {
	svcs := composeServices(t)
	name, idp := idpService(t, svcs)
	if idp.Build.Dockerfile != "deploy/Dockerfile" || idp.Build.Context != ".." {
		t.Errorf("the idp service builds %+v, want deploy/Dockerfile from the repository root", *idp.Build)
	}
	if idp.Deploy.Replicas < 2 {
		t.Errorf("%d idp replicas, want 2 or more on one database", idp.Deploy.Replicas)
	}
	var postgres, mail string
	for n, s := range svcs {
		switch {
		case strings.HasPrefix(s.Image, "postgres:"):
			postgres = n
		case strings.HasPrefix(s.Image, "axllent/mailpit"):
			mail = n
		}
	}
	cfg := composeContainer(t, idp, "sqlite:"+filepath.Join(t.TempDir(), "idp.db")).mustLoad(t, "/etc/idp/idp.yaml")
	if postgres == "" || !strings.Contains(idp.Environment["IDP_DATABASE"], "@"+postgres+":5432/") {
		t.Errorf("IDP_DATABASE %q is not the compose PostgreSQL service %q", idp.Environment["IDP_DATABASE"], postgres)
	}
	if mail == "" || cfg.SMTP.Host != mail {
		t.Errorf("smtp.host %q is not the mail catcher service %q", cfg.SMTP.Host, mail)
	}
	if !strings.HasPrefix(idp.Environment["IDP_CRYPTO_KEY"], "${IDP_CRYPTO_KEY:?") {
		t.Errorf("IDP_CRYPTO_KEY = %q: the crypto key must come from the operator's environment, never a default", idp.Environment["IDP_CRYPTO_KEY"])
	}

	lb, ok := svcs["lb"]
	if !ok {
		t.Fatal("no lb service")
	}
	var conf []byte
	for _, v := range lb.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/etc/nginx/nginx.conf") {
			conf = readDeploy(t, src)
		}
	}
	if conf == nil {
		t.Fatal("the lb service mounts no nginx.conf")
	}
	ng := parseNginx(t, conf)
	_, listenPort, _ := net.SplitHostPort(cfg.Listen)
	if len(ng.upstreams) == 0 {
		t.Error("nginx.conf has no upstream server")
	}
	for _, u := range ng.upstreams {
		if u != name+":"+listenPort {
			t.Errorf("nginx upstream %s, want %s:%s (the idp service and its listen port)", u, name, listenPort)
		}
	}
	if cfg.TrustProxyHeaders && ng.xff != "$proxy_add_x_forwarded_for" && ng.xff != "$remote_addr" {
		t.Errorf("trust_proxy_headers is on but nginx sets X-Forwarded-For to %q: the last entry would not be the client", ng.xff)
	}
	published := false
	for _, p := range lb.Ports {
		parts := strings.Split(p, ":")
		published = published || slices.Contains(ng.listen, parts[len(parts)-1])
	}
	if !published {
		t.Errorf("the lb publishes %v, nginx listens on %v", lb.Ports, ng.listen)
	}
	if lb.Healthcheck == nil {
		t.Error("the lb service has no healthcheck")
	}
}

// Every HTTP healthcheck of the compose stack reaches a port nginx listens
// on and a path a real replica, started as compose starts it (the image's
// CMD, the mounted compose/idp.yaml, its environment), answers with 200.
func TestDeployComposeReplicaServesHealthchecks(t *testing.T) {
	storagetest.Each(t, func(t *testing.T, flavor string) {
		svcs := composeServices(t)
		_, idp := idpService(t, svcs)
		srv := composeContainer(t, idp, storagetest.EmptyDSN(t, flavor)).start(t)
		var conf nginxConf
		for _, v := range svcs["lb"].Volumes {
			if src, dst, _ := strings.Cut(v, ":"); strings.HasPrefix(dst, "/etc/nginx/nginx.conf") {
				conf = parseNginx(t, readDeploy(t, src))
			}
		}
		checked := 0
		for name, s := range svcs {
			if s.Healthcheck == nil {
				continue
			}
			for _, arg := range s.Healthcheck.Test {
				u, err := url.Parse(arg)
				if err != nil || u.Scheme != "http" {
					continue
				}
				if name != "lb" {
					t.Errorf("service %s checks %s: only the lb reaches the replicas", name, arg)
					continue
				}
				if !slices.Contains(conf.listen, u.Port()) {
					t.Errorf("healthcheck %s: nginx does not listen on port %s (%v)", arg, u.Port(), conf.listen)
				}
				if status, body := srv.get(t, u.RequestURI()); status != 200 {
					t.Errorf("healthcheck %s: a replica answers %d %q, want 200", arg, status, body)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Error("no HTTP healthcheck in compose.yaml reaches the IdP")
		}
	})
}
