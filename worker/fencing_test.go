package worker_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// TestFencingPartition: worker A reaches NATS through a proxy that stops forwarding without
// closing anything; its job's lease cannot be renewed, so A stops the job's ffmpeg before NATS
// redelivers the job to worker B, and reports nothing of it. B's encode is the job's one
// success; once the partition heals, A still says nothing about the job, and serves the next.
func TestFencingPartition(t *testing.T) {
	t.Parallel()
	testFencing(t, (*testenv.Proxy).Pause)
}

// TestFencingConnectionClosed: the same with A's connection closed and every reconnect refused
// (the server gone, as seen from A).
func TestFencingConnectionClosed(t *testing.T) {
	t.Parallel()
	testFencing(t, (*testenv.Proxy).Cut)
}

// proxied is a test env and a connection to its server through a proxy that can partition,
// made as cmd/transcoder makes the worker's: nothing is buffered while it reconnects, so
// nothing stale goes out once it has.
func proxied(t *testing.T) (*env, *testenv.Proxy, *nats.Conn) {
	t.Helper()
	e := setup(t)
	u, err := url.Parse(e.ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, u.Host)
	nc, err := nats.Connect(proxy.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return e, proxy, nc
}

func testFencing(t *testing.T, partition func(*testenv.Proxy)) {
	e, proxy, ncA := proxied(t)
	const ackWait = 5 * time.Second
	pidA := make(chan int, 1)
	abandoned := &logSignal{match: "job abandoned", ch: make(chan struct{})}
	a := e.startWorker("fenced-a", func(c *worker.Config) {
		c.Conn, c.FFmpeg, c.Slots, c.AckWait = ncA, realtimeFFmpeg(t), 1, ackWait
		c.Logger = slog.New(abandoned.wrap(c.Logger.Handler()))
		c.Hooks.FFmpegStarted = func(_ string, _ []string, pid int) {
			select {
			case pidA <- pid:
			default:
			}
		}
	})
	// 20 s of media at its own pace: A is still encoding when its lease runs out.
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "fenced.mp4"))
	var pid int
	select {
	case pid = <-pidA:
	case <-time.After(waitLong):
		t.Fatalf("A's ffmpeg did not start; events: %s", e.events.dump())
	}
	partition(proxy)
	cut := time.Now()
	var overlap atomic.Bool // B's ffmpeg started while A's still ran
	b := e.startWorker("fenced-b", func(c *worker.Config) {
		c.AckWait = ackWait
		c.Hooks.FFmpegStarted = func(string, []string, int) {
			if !processGone(pid, 0) {
				overlap.Store(true)
			}
		}
	})
	final := e.events.terminal(t, id)
	if final.Type != job.EventSucceeded || final.WorkerID != b.ID() {
		t.Fatalf("final event %s by %s; want succeeded by B; events: %s", final.Type, final.WorkerID, e.events.dump())
	}
	t.Logf("B succeeded %s after the partition", time.Since(cut).Round(time.Millisecond))
	waitExit(t, pid, 0) // gone by now: B ran only after it
	if overlap.Load() {
		t.Error("B's ffmpeg started while A's was still running: two workers encoded the job at once")
	}
	select {
	case <-abandoned.ch:
	case <-time.After(waitLong):
		t.Fatal("A did not abandon the job")
	}

	proxy.Resume()
	flushed := time.Now().Add(waitLong)
	for ncA.FlushTimeout(time.Second) != nil {
		if time.Now().After(flushed) {
			t.Fatal("A's connection did not come back after the partition healed")
		}
	}
	for _, ev := range e.events.of(id) {
		if ev.WorkerID == a.ID() && ev.Type != job.EventQueued && ev.Type != job.EventStarted && ev.Type != job.EventProgress {
			t.Errorf("A reported %s for a job it had lost", ev.Type)
		}
	}
	if n := e.events.count(id, job.EventSucceeded); n != 1 {
		t.Errorf("%d succeeded events; want 1: %s", n, e.events.dump())
	}
	st, err := e.client.Status(context.Background(), id)
	if err != nil || st.State != job.StateSucceeded || st.WorkerID != b.ID() {
		t.Errorf("state %+v (%v); want succeeded by B", st, err)
	}
	noParts(t, e.dir)

	// A serves the next job once B is gone.
	e.stopWorker(b)
	next := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	id2 := e.submit(next, "h264-480p", filepath.Join(e.dir, "next.mp4"))
	if ev := e.events.terminal(t, id2); ev.Type != job.EventSucceeded || ev.WorkerID != a.ID() {
		t.Errorf("next job: %s by %s; want succeeded by A: %s", ev.Type, ev.WorkerID, e.events.dump())
	}
}

// realtimeFFmpeg is ffmpeg reading its input at the media's own pace (-re): a job takes as
// long as its media, whatever the machine.
func realtimeFFmpeg(t *testing.T) *ffmpeg.Runner {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ffmpeg")
	script := "#!/bin/sh\ncase \"$*\" in *-version*|*-encoders*) exec ffmpeg \"$@\";; esac\nexec ffmpeg -re \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := ffmpeg.New(ffmpeg.Config{FFmpeg: path, KillDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// logSignal closes ch when a log message starting with match is handled.
type logSignal struct {
	match string
	ch    chan struct{}
	once  sync.Once
}

func (s *logSignal) wrap(h slog.Handler) slog.Handler {
	if h == nil {
		h = slog.NewTextHandler(io.Discard, nil)
	}
	return signalHandler{Handler: h, s: s}
}

type signalHandler struct {
	slog.Handler
	s *logSignal
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.s.match) {
		h.s.once.Do(func() { close(h.s.ch) })
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{Handler: h.Handler.WithAttrs(as), s: h.s}
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	return signalHandler{Handler: h.Handler.WithGroup(name), s: h.s}
}

// TestFencingShortPartition: a partition shorter than the lease costs the job nothing: a
// renewal fails, the next one is answered, and the job succeeds on its first attempt.
func TestFencingShortPartition(t *testing.T) {
	t.Parallel()
	e, proxy, ncA := proxied(t)
	started := make(chan struct{}, 1)
	missed := &logSignal{match: "lease not renewed", ch: make(chan struct{})}
	a := e.startWorker("short-partition", func(c *worker.Config) {
		c.Conn, c.FFmpeg, c.Slots, c.AckWait = ncA, realtimeFFmpeg(t), 1, 10*time.Second
		c.Logger = slog.New(missed.wrap(c.Logger.Handler()))
		c.Hooks.FFmpegStarted = func(string, []string, int) {
			select {
			case started <- struct{}{}:
			default:
			}
		}
	})
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 4})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "short.mp4"))
	select {
	case <-started:
	case <-time.After(waitLong):
		t.Fatalf("ffmpeg did not start; events: %s", e.events.dump())
	}
	proxy.Pause()
	select {
	case <-missed.ch:
	case <-time.After(waitLong):
		t.Fatal("no renewal failed during the partition")
	}
	proxy.Resume()
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.Attempt != 1 || ev.WorkerID != a.ID() {
		t.Errorf("%s on attempt %d by %s; want succeeded on attempt 1 by A: %s", ev.Type, ev.Attempt, ev.WorkerID, e.events.dump())
	}
}
