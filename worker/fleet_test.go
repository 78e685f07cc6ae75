package worker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a test against a local server
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestMetricsAndRegistry: a worker serves Prometheus metrics, health and readiness, and keeps a
// registry entry (with its encoders) that `transcoder workers` reads; both follow its life.
func TestMetricsAndRegistry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.startWorker("visible")
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()

	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("readyz %d while running", code)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d", code)
	}
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "m.mp4"))
	if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded {
		t.Fatalf("%s %+v", ev.Type, ev.Error)
	}
	_, body := get(t, srv.URL+"/metrics")
	for _, want := range []string{
		`transcoder_jobs_total{class="",outcome="succeeded"} 1`,
		"transcoder_ring_buffers_capacity " + strconv.Itoa(w.Ring().Capacity),
		"transcoder_ring_buffers_in_use",
		"transcoder_ring_acquire_wait_seconds_total",
		"transcoder_job_duration_seconds_bucket",
		"transcoder_output_bytes_total",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	ws, err := e.client.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].ID != "visible" || ws[0].Slots != 2 || ws[0].RingCapacity != w.Ring().Capacity ||
		!slices.Contains(ws[0].Capabilities, "libx264") || !strings.HasPrefix(ws[0].Version, "ffmpeg version") {
		t.Fatalf("registry: %+v", ws)
	}
	sts, err := e.client.Jobs(context.Background(), 10)
	if err != nil || len(sts) != 1 || sts[0].ID != id || sts[0].State != job.StateSucceeded {
		t.Errorf("jobs: %+v %v", sts, err)
	}

	e.stopWorker(w)
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz %d after shutdown", code)
	}
	if ws, err := e.client.Workers(context.Background()); err != nil || len(ws) != 0 {
		t.Errorf("registry after shutdown: %+v %v", ws, err)
	}
}

// TestPriorities: with its one slot busy, a worker is sent low, normal and high jobs, in that
// order. When the slot frees, high goes first, then normal, then low; and a low job waiting
// behind a stream of high ones starts within five pulls.
func TestPriorities(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("one-slot", func(c *worker.Config) { c.Slots = 1 })
	long := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	short := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	submit := func(in, name string, p job.Priority) string {
		j := &job.Job{Input: "file://" + in, Preset: "h264-480p", Priority: p, Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, name+".mp4")}}}
		id, err := e.client.Submit(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	blocker := submit(long, "blocker", job.PriorityNormal)
	e.events.waitFor(t, waitLong, "blocker started", func(ev job.Event) bool { return ev.JobID == blocker && ev.Type == job.EventStarted })
	low := submit(short, "low", job.PriorityLow)
	normal := submit(short, "normal", job.PriorityNormal)
	var highs []string
	for i := range 6 {
		highs = append(highs, submit(short, fmt.Sprintf("high-%d", i), job.PriorityHigh))
	}
	all := append([]string{low, normal}, highs...)
	for _, id := range all {
		e.events.terminal(t, id)
	}
	// The order in which they started after the blocker.
	var order []string
	for _, ev := range e.events.snapshot() {
		if ev.Type == job.EventStarted && ev.JobID != blocker {
			order = append(order, ev.JobID)
		}
	}
	pos := func(id string) int { return slices.Index(order, id) }
	t.Logf("start order: low at %d, normal at %d, highs at %d..", pos(low), pos(normal), pos(highs[0]))
	if pos(highs[0]) != 0 || pos(highs[1]) != 1 || pos(highs[2]) != 2 {
		t.Errorf("high jobs did not go first: %v", order)
	}
	if p := pos(low); p < 0 || p > 3 {
		t.Errorf("low job started at position %d behind the high ones; want within the first four pulls after the blocker", p)
	}
	if pos(normal) < pos(highs[5]) {
		t.Errorf("normal job started before a queued high one: %v", order)
	}
}
