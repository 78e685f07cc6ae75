package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// workerProc is a worker in a process of its own (the test binary in helper mode), so it can
// be killed as production workers are.
type workerProc struct {
	id  string
	cmd *exec.Cmd
}

func (e *env) startWorkerProc(id string, extraEnv ...string) *workerProc {
	e.t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+e.ns.URL(), "TRANSCODER_TEST_WORKER_ID="+id), extraEnv...)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			e.t.Fatalf("worker process %s said %q", id, line)
		}
	case <-time.After(30 * time.Second):
		e.t.Fatalf("worker process %s did not start", id)
	}
	return &workerProc{id: id, cmd: cmd}
}

// liveFFmpegChildren lists running (not zombie) ffmpeg processes whose parent is pid.
func liveFFmpegChildren(pid int) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(ffmpeg") || i+2 >= len(s) {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 1 && f[0] != "Z" && f[1] == fmt.Sprint(pid) {
			var n int
			_, _ = fmt.Sscan(strings.Fields(s)[0], &n)
			out = append(out, n)
		}
	}
	return out
}

// TestKillWorkersAtRandom: two worker processes, 20 jobs, workers SIGKILLed at random points
// and restarted. Every job succeeds exactly once (events and state), no output is partial or
// duplicated, and no ffmpeg outlives its worker.
func TestKillWorkersAtRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("kills worker processes for a while")
	}
	t.Parallel()
	e := setup(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3, Size: "320x240"})
	var mu sync.Mutex
	procs := map[string]*workerProc{}
	gen := 0
	start := func() {
		gen++
		// Enough deliveries that bad luck (one job killed five times) cannot fail it: this
		// test is about losing and duplicating nothing, the limit has tests of its own.
		p := e.startWorkerProc(fmt.Sprintf("k%d", gen), "TRANSCODER_TEST_MAX_DELIVER=50")
		mu.Lock()
		procs[p.id] = p
		mu.Unlock()
	}
	start()
	start()

	const jobs = 20
	ids := make([]string, jobs)
	outs := make([]string, jobs)
	for i := range jobs {
		outs[i] = filepath.Join(e.dir, fmt.Sprintf("out-%02d.mp4", i))
		ids[i] = e.submit(in, "h264-480p", outs[i])
	}

	// The killer: while jobs remain, wait a random 0.5-2 s, SIGKILL a random worker, check
	// its ffmpeg went with it, start a new one.
	stop := make(chan struct{})
	killerDone := make(chan struct{})
	kills, orphans := 0, 0
	go func() {
		defer close(killerDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(500+rng.IntN(1500)) * time.Millisecond):
			}
			mu.Lock()
			var victim *workerProc
			for _, p := range procs {
				if victim == nil || rng.IntN(2) == 0 {
					victim = p
				}
			}
			delete(procs, victim.id)
			mu.Unlock()
			children := liveFFmpegChildren(victim.cmd.Process.Pid)
			_ = victim.cmd.Process.Signal(syscall.SIGKILL)
			_ = victim.cmd.Wait()
			kills++
			for _, c := range children {
				if !exitsWithin(c, 5*time.Second) {
					orphans++
				}
			}
			start()
		}
	}()
	for _, id := range ids {
		e.events.terminal(t, id)
	}
	close(stop)
	<-killerDone
	t.Logf("%d jobs, %d kills, %d orphans", jobs, kills, orphans)
	if kills < 3 {
		t.Errorf("only %d kills: the test did not test much", kills)
	}
	if orphans > 0 {
		t.Errorf("%d ffmpeg processes outlived their killed worker", orphans)
	}
	for i, id := range ids {
		succeeded := 0
		var sum string
		for _, ev := range e.events.of(id) {
			switch ev.Type {
			case job.EventSucceeded:
				succeeded++
				sum = ev.Outputs[0].SHA256
			case job.EventFailed, job.EventCanceled:
				t.Errorf("%s ended %s: %+v", id, ev.Type, ev.Error)
			}
		}
		if succeeded != 1 {
			t.Errorf("%s: %d succeeded events, want exactly 1", id, succeeded)
		}
		if got := sha(t, outs[i]); got != sum {
			t.Errorf("%s: output sha %s, event says %s (partial or overwritten output)", id, got, sum)
		}
		if st, err := e.client.Status(context.Background(), id); err != nil || st.State != job.StateSucceeded {
			t.Errorf("%s: state %+v %v", id, st, err)
		}
	}
	noParts(t, e.dir)
}

func exitsWithin(pid int, d time.Duration) bool { return processGone(pid, d) }

// TestRedeliveryAfterCommit: a worker dies after committing a job's outputs, between the steps
// that report it: after the state and the succeeded event but before the ack, or after the state
// but before the event. The redelivery is acknowledged without running ffmpeg again, and the job
// has exactly one succeeded event either way (a watcher never hangs).
func TestRedeliveryAfterCommit(t *testing.T) {
	t.Parallel()
	for _, point := range []string{"before-ack", "before-event"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			doomed := e.startWorkerProc("dies-"+point, "TRANSCODER_TEST_DIE="+point)
			in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
			out := filepath.Join(e.dir, "once.mp4")
			id := e.submit(in, "h264-480p", out)
			_ = doomed.cmd.Wait() // it killed itself once the output was committed
			before, err := os.Stat(out)
			if err != nil {
				t.Fatalf("output not committed before the crash: %v", err)
			}
			w := e.startWorker("second")
			final := e.events.terminal(t, id)
			e.waitQueueEmpty(t)
			e.stopWorker(w)
			if final.Type != job.EventSucceeded {
				t.Fatalf("final %s %+v", final.Type, final.Error)
			}
			n := 0
			for _, ev := range e.events.of(id) {
				if ev.Type == job.EventStarted && ev.Attempt > 1 {
					t.Errorf("the redelivery ran again (started, attempt %d)", ev.Attempt)
				}
				if ev.Type == job.EventSucceeded {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d succeeded events, want 1", n)
			}
			after, err := os.Stat(out)
			if err != nil || !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("output rewritten on redelivery: %v", err)
			}
		})
	}
}

// waitQueueEmpty waits until every job has been acknowledged (the work queue is empty).
func (e *env) waitQueueEmpty(t *testing.T) {
	t.Helper()
	s, err := e.js.Stream(context.Background(), worker.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitLong)
	for {
		info, err := s.Info(context.Background())
		if err == nil && info.State.Msgs == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("work queue not empty: %+v %v", info.State, err)
		}
	}
}

// TestDeadLetterAndRetry: a job that fails for good leaves a dead letter with its diagnostics;
// once its input exists, `dlq retry` runs it again and it succeeds.
func TestDeadLetterAndRetry(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("dlq")
	in := filepath.Join(e.dir, "late.mp4")
	out := filepath.Join(e.dir, "late-out.mp4")
	id := e.submit(in, "h264-480p", out)
	if ev := e.events.terminal(t, id); ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput {
		t.Fatalf("first run: %s %+v", ev.Type, ev.Error)
	}
	ctx := context.Background()
	dls, err := e.client.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].ID != id || dls[0].Class != job.ClassInvalidInput || dls[0].Attempts != 1 ||
		!strings.Contains(string(dls[0].Job), "late.mp4") || !strings.HasPrefix(dls[0].FFmpegVersion, "ffmpeg version") {
		t.Fatalf("dead letters %+v", dls)
	}
	// Bad JSON is kept verbatim.
	if err := e.nc.Publish("transcode.jobs.low", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	e.events.waitFor(t, waitLong, "failed bad json", func(ev job.Event) bool { return strings.HasPrefix(ev.JobID, "seq-") && ev.Type == job.EventFailed })

	data, err := os.ReadFile(testenv.MakeClip(t, testenv.Clip{Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, in, data)
	if err := e.client.RetryDeadLetter(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.events.waitFor(t, waitLong, "succeeded after retry", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventSucceeded })
	dls, err = e.client.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Payload != "{not json" {
		t.Errorf("after retry, dead letters = %+v; want only the bad JSON one", dls)
	}
}
