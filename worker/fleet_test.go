package worker_test

import (
	"context"
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
