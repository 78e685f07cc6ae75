package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

// drainMaxDeliver is the delivery limit of the drain tests: well under the number of
// shutdowns, so that a shutdown counted as an attempt fails the job.
const drainMaxDeliver = 3

// realNATS starts a real nats-server process with JetStream and returns an env on it and its
// URL (for worker processes).
func realNATS(t *testing.T) (*env, string) {
	t.Helper()
	bin := testenv.NATSServerBin(t)
	addr := freeAddr(t)
	startNATSServer(t, bin, addr, t.TempDir())
	url := "nats://" + addr
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return setupWith(t, (*natsembed.Server)(nil), nc), url
}

// runningOn waits until delivery attempt of job id makes progress on worker wid (ffmpeg is
// running), failing at once if the job ends instead.
func (e *env) runningOn(t *testing.T, id, wid string, attempt int) {
	t.Helper()
	ev := e.events.waitFor(t, waitLong, fmt.Sprintf("progress of attempt %d on %s", attempt, wid), func(ev job.Event) bool {
		return ev.JobID == id && (ev.Type.Terminal() ||
			ev.Type == job.EventProgress && ev.Attempt == attempt && ev.WorkerID == wid && ev.Progress.OutTime > 0)
	})
	if ev.Type.Terminal() {
		t.Fatalf("job ended %s (%+v) before attempt %d ran; events: %s", ev.Type, ev.Error, attempt, e.events.dump())
	}
}

// drain stops w as SIGTERM does (cmd/transcoder: Shutdown with the grace period), with a grace
// period far shorter than the job, so the job is stopped and handed back.
func drain(t *testing.T, w *worker.Worker) {
	t.Helper()
	grace, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown of %s: %v; want the running job stopped at the end of the grace period", w.ID(), err)
	}
}

func drainLimit(c *worker.Config) { c.MaxDeliver = drainMaxDeliver }

// TestShutdownsDoNotSpendAttempts: a job whose worker is stopped gracefully (drained) six times
// while it runs, against a real nats-server, is handed back each time at once, and the seventh
// worker finishes it: a shutdown is not the job's fault and does not count against max_deliver.
func TestShutdownsDoNotSpendAttempts(t *testing.T) {
	t.Parallel()
	e, _ := realNATS(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	out := filepath.Join(e.dir, "drained.mp4")
	id := e.submit(in, "h264-480p", out)
	const stops = 6
	for n := 1; n <= stops; n++ {
		wid := fmt.Sprintf("drained-%d", n)
		w := e.startWorker(wid, drainLimit)
		e.runningOn(t, id, wid, n)
		drain(t, w)
		ev := e.events.waitFor(t, waitLong, wid+" hand-back", func(ev job.Event) bool {
			return ev.JobID == id && ev.Type == job.EventRetrying && ev.WorkerID == wid
		})
		if ev.Error == nil || ev.Error.Class != job.ClassTransient || ev.RetryIn != 0 {
			t.Fatalf("handed back by %s as %+v, retry in %s; want transient, at once", wid, ev.Error, time.Duration(ev.RetryIn))
		}
	}
	e.startWorker("finisher", drainLimit)
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.WorkerID != "finisher" || ev.Attempt != stops+1 {
		t.Fatalf("final %s by %s attempt %d %+v; want succeeded by finisher on delivery %d; events: %s",
			ev.Type, ev.WorkerID, ev.Attempt, ev.Error, stops+1, e.events.dump())
	}
	if st, err := e.client.Status(context.Background(), id); err != nil || st.Stopped != stops {
		t.Errorf("state %+v (%v); want %d stopped deliveries recorded", st, err, stops)
	}
	if d := durationOf(t, out); d < 19.5 {
		t.Errorf("output duration %.2f, want 20", d)
	}
	noParts(t, e.dir)
}

// TestCrashLoopStillReachesLimit: the control. Deliveries whose worker process is SIGKILLed
// record nothing and still count, alone or between graceful stops, so a job that keeps killing
// its workers fails for good at the delivery limit instead of looping.
func TestCrashLoopStillReachesLimit(t *testing.T) {
	t.Parallel()
	for name, plan := range map[string]string{"kills": "kkk", "kills between stops": "ksksk"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			crashLoop(t, plan)
		})
	}
}

// crashLoop runs one delivery of a job per letter of plan, each ended by a SIGKILL of its
// worker process (k) or a graceful stop of its in-process worker (s), then checks that the
// next worker fails the job at the delivery limit without running it.
func crashLoop(t *testing.T, plan string) {
	e, url := realNATS(t)
	logs := t.TempDir()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	id := e.submit(in, "h264-480p", filepath.Join(e.dir, "never.mp4"))
	for i, step := range plan {
		attempt := i + 1
		switch step {
		case 'k':
			wid := fmt.Sprintf("%s-killed-%d", plan, attempt)
			startWorkerAt(t, url, wid, logs, fmt.Sprintf("TRANSCODER_TEST_MAX_DELIVER=%d", drainMaxDeliver))
			e.runningOn(t, id, wid, attempt)
			pid := workerPid(t, wid)
			ff := childFFmpeg(t, pid)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			waitExit(t, pid, 5*time.Second)
			waitExit(t, ff, 5*time.Second)
		case 's':
			wid := fmt.Sprintf("stopped-%d", attempt)
			w := e.startWorker(wid, drainLimit)
			e.runningOn(t, id, wid, attempt)
			drain(t, w)
		}
	}
	e.startWorker("judge", drainLimit)
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventFailed || ev.Error == nil || !strings.Contains(ev.Error.Reason, "delivery limit reached") {
		t.Fatalf("final %s %+v; want failed at the delivery limit; events: %s", ev.Type, ev.Error, e.events.dump())
	}
	if ev.Attempt != len(plan)+1 || ev.WorkerID != "judge" {
		t.Errorf("failed on delivery %d by %s, want %d by judge", ev.Attempt, ev.WorkerID, len(plan)+1)
	}
	if n := e.events.count(id, job.EventStarted); n != len(plan) {
		t.Errorf("%d started events, want %d: the judge must not run the job", n, len(plan))
	}
}

// workerPid is the process id of worker process wid, a child of this test binary started by
// startWorkerAt: found by the worker id in its environment.
func workerPid(t *testing.T, wid string) int {
	t.Helper()
	want := []byte("\x00TRANSCODER_TEST_WORKER_ID=" + wid + "\x00")
	environs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range environs {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(append([]byte{0}, b...), want) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err == nil && parentOf(pid) == os.Getpid() && processAlive(pid) {
			return pid
		}
	}
	t.Fatalf("no worker process %s", wid)
	return 0
}
