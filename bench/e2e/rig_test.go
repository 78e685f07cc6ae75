package e2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rig is one NATS server, one worker and a client, with every job's milestones timed.
type rig struct {
	ns      *natsembed.Server
	nc      *nats.Conn
	w       *worker.Worker
	client  *worker.Client
	runner  *ffmpeg.Runner
	presets job.Presets

	mu        sync.Mutex
	firstByte map[string]time.Time
	started   map[string]time.Time
	done      map[string]chan job.Event
}

// newRig starts a rig; slots 0 starts no worker (a worker process joins instead).
func newRig(b testing.TB, runner *ffmpeg.Runner, slots int) *rig {
	b.Helper()
	ns, nc := testenv.NATS(b)
	presets, err := job.ParsePresets(configs.Presets)
	if err != nil {
		b.Fatal(err)
	}
	if runner == nil {
		if runner, err = ffmpeg.New(ffmpeg.Config{}); err != nil {
			b.Fatal(err)
		}
	}
	r := &rig{ns: ns, nc: nc, runner: runner, presets: presets,
		firstByte: map[string]time.Time{}, started: map[string]time.Time{}, done: map[string]chan job.Event{}}
	sub, err := nc.Subscribe(worker.EventsSubjects, r.onEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	if r.client, err = worker.NewClient(context.Background(), nc); err != nil {
		b.Fatal(err)
	}
	if slots == 0 {
		return r
	}
	w, err := worker.New(worker.Config{
		Conn: nc, FFmpeg: runner, Presets: presets, ID: "bench", Slots: slots, Logger: benchLogger(),
		SpoolDir: b.TempDir(), FetchWait: time.Second,
		Hooks: worker.Hooks{FirstOutputByte: func(id string) {
			now := time.Now()
			r.mu.Lock()
			r.firstByte[id] = now
			r.mu.Unlock()
		}},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	})
	r.w = w
	return r
}

func (r *rig) onEvent(m *nats.Msg) {
	var ev job.Event
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ev.Type == job.EventStarted:
		r.started[ev.JobID] = now
	case ev.Type.Terminal():
		if ch := r.done[ev.JobID]; ch != nil {
			ch <- ev
		}
	}
}

// submit publishes j and returns a channel that receives its terminal event.
func (r *rig) submit(b testing.TB, j *job.Job) (string, <-chan job.Event) {
	b.Helper()
	worker.Prepare(j)
	ch := make(chan job.Event, 1)
	r.mu.Lock()
	r.done[j.ID] = ch
	r.mu.Unlock()
	if _, err := r.client.Submit(context.Background(), j); err != nil {
		b.Fatal(err)
	}
	return j.ID, ch
}

func wait(b testing.TB, ch <-chan job.Event) job.Event {
	b.Helper()
	select {
	case ev := <-ch:
		if ev.Type != job.EventSucceeded {
			b.Fatalf("job %s %s: %+v", ev.JobID, ev.Type, ev.Error)
		}
		return ev
	case <-time.After(5 * time.Minute):
		b.Fatal("job did not finish within 5 minutes")
	}
	return job.Event{}
}

func (r *rig) milestones(id string) (started, firstByte time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started[id], r.firstByte[id]
}

// percentile of sorted samples, p in [0,100].
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

func sortDurations(d []time.Duration) []time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

func median(d []time.Duration) time.Duration { return percentile(sortDurations(d), 50) }

// benchOut is where benchmarks leave CSVs for the plots (BENCH_OUT), or "".
func benchOut(b testing.TB) string {
	dir := os.Getenv("BENCH_OUT")
	if dir == "" {
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

func fileURL(p string) string { return "file://" + filepath.Clean(p) }

// benchLogger logs the worker's job lines (with their phase timings) when BENCH_LOG is set.
func benchLogger() *slog.Logger {
	if os.Getenv("BENCH_LOG") != "" {
		return slog.Default()
	}
	return quietLogger()
}

// explain is the argv and plan the rig's worker runs for j (id "explain" unless set).
func explain(b testing.TB, r *rig, j *job.Job) (*media.Explanation, error) {
	if j.ID == "" {
		j.ID = "explain"
	}
	return r.w.Explain(context.Background(), j)
}
