// Package deploy holds the deployment files (Dockerfile, systemd unit, Kubernetes manifests,
// Grafana dashboard); its test keeps them consistent with the worker they deploy.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, d)
	}
}

func dig(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

// TestKubernetes: the pod outlives the worker's drain, probes and scrape hit the metrics port,
// and KEDA watches the consumers the worker really uses.
func TestKubernetes(t *testing.T) {
	ds := docs(t, "kubernetes/deployment.yaml")
	if len(ds) != 2 || ds[0]["kind"] != "Deployment" || ds[1]["kind"] != "PodDisruptionBudget" {
		t.Fatalf("deployment.yaml: want a Deployment and a PodDisruptionBudget")
	}
	spec := dig(ds[0], "spec", "template", "spec")
	grace, _ := dig(spec, "terminationGracePeriodSeconds").(int)
	if drain := drainTime(t); time.Duration(grace)*time.Second <= drain {
		t.Errorf("terminationGracePeriodSeconds %d does not cover the drain (%s)", grace, drain)
	}
	c := dig(spec, "containers").([]any)[0]
	if !strings.Contains(yamlString(t, c), "/readyz") || !strings.Contains(yamlString(t, c), "/healthz") {
		t.Error("probes do not use /readyz and /healthz")
	}
	keda := docs(t, "kubernetes/keda.yaml")[0]
	var consumers []string
	for _, tr := range dig(keda, "spec", "triggers").([]any) {
		consumers = append(consumers, dig(tr, "metadata", "consumer").(string))
		if s := dig(tr, "metadata", "stream"); s != worker.JobsStream {
			t.Errorf("KEDA stream %v, want %s", s, worker.JobsStream)
		}
	}
	for _, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		if !slicesContains(consumers, worker.ConsumerFor(p)) {
			t.Errorf("KEDA does not watch consumer %s", worker.ConsumerFor(p))
		}
	}
}

func yamlString(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestSystemdUnit: systemd waits out the drain.
func TestSystemdUnit(t *testing.T) {
	b, err := os.ReadFile("transcoder.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no TimeoutStopSec")
	}
	secs, _ := strconv.Atoi(string(m[1]))
	if drain := drainTime(t); time.Duration(secs)*time.Second <= drain {
		t.Errorf("TimeoutStopSec=%d does not cover the drain (%s)", secs, drain)
	}
}

// drainTime is grace_period + kill_delay from the worker's documented defaults.
func drainTime(t *testing.T) time.Duration {
	t.Helper()
	var cfg struct {
		GracePeriod time.Duration `yaml:"grace_period"`
		KillDelay   time.Duration `yaml:"kill_delay"`
	}
	if err := yaml.Unmarshal(configs.WorkerExample, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.GracePeriod + cfg.KillDelay
}

// TestDashboard: every metric the dashboard queries is one the worker exports.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../worker/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`transcoder_[a-z_]+`)
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(name, "_bucket")
				base = strings.TrimPrefix(base, "transcoder_")
				if !strings.Contains(string(src), `"transcoder_`+base+`"`) && !strings.Contains(string(src), `"`+strings.TrimPrefix(base, "ring_")+`"`) {
					t.Errorf("dashboard queries %s, which worker/metrics.go does not export", name)
				}
			}
		}
	}
}

// TestNATSRolesDocumented: the permission table of README.md ("NATS roles", for NKEY and JWT
// users) lists what nats/server.conf gives each user, no more and no less.
func TestNATSRolesDocumented(t *testing.T) {
	for _, role := range []string{"WORKER", "SUBMITTER", "VIEWER"} {
		t.Setenv("TRANSCODER_"+role+"_PASSWORD", "x")
	}
	opts, err := server.ProcessConfigFile("nats/server.conf")
	if err != nil {
		t.Fatal(err)
	}
	if !opts.JetStream {
		t.Error("nats/server.conf: JetStream is off")
	}
	conf := map[string][3][]string{}
	for _, u := range opts.Users {
		p := u.Permissions
		if p == nil || p.Publish == nil || p.Subscribe == nil {
			t.Fatalf("user %s: no publish or subscribe permissions", u.Username)
		}
		conf[u.Username] = [3][]string{p.Publish.Allow, p.Publish.Deny, p.Subscribe.Allow}
	}
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string][3][]string{}
	tick := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|") // "| role | allow | deny | subscribe |"
		if len(cells) != 6 {
			continue
		}
		user, cells := strings.TrimSpace(cells[1]), cells[1:]
		var row [3][]string
		for i := range row {
			for _, m := range tick.FindAllStringSubmatch(cells[i+1], -1) {
				row[i] = append(row[i], m[1])
			}
		}
		doc[user] = row
	}
	// The submitter's row lists what it has beyond the viewer's ("and the viewer's").
	for i := range 3 {
		sub := doc["submitter"]
		sub[i] = append(sub[i], doc["viewer"][i]...)
		doc["submitter"] = sub
	}
	for _, user := range []string{"worker", "submitter", "viewer"} {
		for i, what := range []string{"publish allow", "publish deny", "subscribe allow"} {
			got, want := slices.Sorted(slices.Values(doc[user][i])), slices.Sorted(slices.Values(conf[user][i]))
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: README.md says %v, nats/server.conf %v", user, what, got, want)
			}
		}
	}
}
