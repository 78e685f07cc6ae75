package worker_test

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

// TestStallWatchdog: an ffmpeg that hangs (here a fake that sleeps in a child process, reading
// nothing and writing nothing) makes no progress; the watchdog stops it, its whole process group
// dies, the job is retried with backoff and fails for good at the delivery limit.
func TestStallWatchdog(t *testing.T) {
	t.Parallel()
	e := setup(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "ffmpeg")
	// A sleep length unique to this test process marks the fake's child so the test can find it.
	marker := fmt.Sprintf("4321.%d", os.Getpid())
	// It answers the worker's -version and -encoders queries, and hangs on a transcode.
	script := "#!/bin/sh\ncase \"$*\" in *-version*|*-encoders*) echo 'ffmpeg version fake'; exit 0;; esac\n" +
		"sleep " + marker + " &\nwait\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runner, err := ffmpeg.New(ffmpeg.Config{FFmpeg: fake, KillDelay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.startWorker("stall", func(c *worker.Config) {
		c.FFmpeg = runner
		c.StallTimeout, c.Heartbeat, c.MaxDeliver = 1500*time.Millisecond, 300*time.Millisecond, 2
	})
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "never.mp4"))
	retry := e.events.waitFor(t, waitLong, "retrying", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventRetrying })
	if retry.Error.Class != job.ClassTransient || !strings.Contains(retry.Error.Reason, "no progress") {
		t.Errorf("stall reported as %+v", retry.Error)
	}
	final := e.events.terminal(t, id)
	if final.Type != job.EventFailed || final.Attempt != 2 || !strings.Contains(final.Error.Reason, "giving up") {
		t.Errorf("final %s attempt %d %+v; want failed on attempt 2", final.Type, final.Attempt, final.Error)
	}
	if pids := pidsWithArg(marker); len(pids) > 0 {
		t.Errorf("the hung ffmpeg's child survived: %v", pids)
	}
}

// pidsWithArg lists live (non-zombie) processes with arg on their command line.
func pidsWithArg(arg string) []string {
	var out []string
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b), arg) {
			continue
		}
		pid := filepath.Base(filepath.Dir(c))
		var n int
		_, _ = fmt.Sscan(pid, &n)
		if !zombie(n) {
			out = append(out, pid)
		}
	}
	return out
}

// TestDrainUnderLoad: SIGTERM to a worker process with jobs running and queued: it pulls nothing
// more, exits within its grace period (5 s in test workers) leaving no ffmpeg, and every job is
// finished by another worker or by it, exactly once.
func TestDrainUnderLoad(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := e.startWorkerProc("draining")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	var ids []string
	for i := range 5 {
		ids = append(ids, e.submit(in, "h264-480p", filepath.Join(e.dir, fmt.Sprintf("d%d.mp4", i))))
	}
	e.events.waitFor(t, waitLong, "progress", func(ev job.Event) bool {
		return ev.WorkerID == "draining" && ev.Type == job.EventProgress && ev.Progress.OutTime > 0
	})
	children := liveFFmpegChildren(p.cmd.Process.Pid)
	sigterm := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		t.Logf("worker exited %s after SIGTERM: %v", time.Since(sigterm).Round(time.Millisecond), err)
	case <-time.After(10 * time.Second):
		t.Fatal("worker still running 10 s after SIGTERM (grace 5 s)")
	}
	for _, c := range children {
		if !processGone(c, 2*time.Second) {
			t.Errorf("ffmpeg %d outlived the drained worker", c)
		}
	}
	e.startWorker("after")
	for _, id := range ids {
		if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded {
			t.Errorf("%s: %s %+v", id, ev.Type, ev.Error)
		}
		n := 0
		for _, ev := range e.events.of(id) {
			if ev.Type == job.EventStarted && ev.WorkerID == "draining" && ev.Time.After(sigterm) {
				t.Errorf("%s was started by the draining worker after SIGTERM", id)
			}
			if ev.Type == job.EventSucceeded {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s succeeded %d times", id, n)
		}
	}
}

// TestNATSRestart: the embedded server is stopped mid-job and started again on the same data
// directory. The worker reconnects by itself and the job finishes exactly once.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ns, err := natsembed.Start(natsembed.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(ns.URL())
	restarted := make(chan *natsembed.Server, 1)
	t.Cleanup(func() {
		select {
		case s := <-restarted:
			s.Close()
		default:
			ns.Close()
		}
	})
	nc, err := nats.Connect(ns.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := setupWith(t, ns, nc)
	e.startWorker("survives-restart")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	out := filepath.Join(e.dir, "through-restart.mp4")
	id := e.submit(in, "h264-480p", out)
	e.events.waitFor(t, waitLong, "progress", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.OutTime > 0
	})
	ns.Close()
	ns2, err := natsembed.Start(natsembed.Config{Listen: u.Host, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	restarted <- ns2
	ev := e.events.waitFor(t, waitLong, "succeeded", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventSucceeded })
	if d := durationOf(t, out); d < 19.5 {
		t.Errorf("output %.2f s", d)
	}
	e.waitQueueEmpty(t)
	if n := e.events.count(id, job.EventSucceeded); n != 1 {
		t.Errorf("%d succeeded events", n)
	}
	t.Logf("succeeded on attempt %d", ev.Attempt)
}

// TestScaledTimeout: a job without a timeout of its own may run timeout_factor times its input's
// duration (here 0.02 x 30 s = 0.6 s, above a 100 ms floor); past that it fails with class timeout
// and is not retried.
func TestScaledTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("scaled", func(c *worker.Config) { c.TimeoutFloor, c.TimeoutFactor = 100*time.Millisecond, 0.02 })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 30, Size: "640x360"})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "scaled.mp4"))
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventFailed || ev.Error.Class != job.ClassTimeout || ev.Attempt != 1 {
		t.Fatalf("final %s attempt %d %+v; want failed timeout on attempt 1", ev.Type, ev.Attempt, ev.Error)
	}
	started := e.events.waitFor(t, time.Second, "started", func(x job.Event) bool { return x.JobID == id && x.Type == job.EventStarted })
	if took := ev.Time.Sub(started.Time); took > 10*time.Second {
		t.Errorf("timed out after %s; the scaled limit was 0.6 s", took)
	}
}
