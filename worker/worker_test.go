package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

const waitLong = 90 * time.Second

type env struct {
	t       *testing.T
	ns      *natsembed.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	runner  *ffmpeg.Runner
	presets job.Presets
	client  *worker.Client
	events  *eventLog
	dir     string
}

// setup starts a NATS server, an event log and a client; workers are started by the test.
func setup(t *testing.T) *env {
	t.Helper()
	ns, nc := testenv.NATS(t)
	return setupWith(t, ns, nc)
}

// setupWith is setup on a server and connection the test made itself.
func setupWith(t *testing.T, ns *natsembed.Server, nc *nats.Conn) *env {
	t.Helper()
	runner, err := ffmpeg.New(ffmpeg.Config{KillDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	presets, err := job.ParsePresets(configs.Presets)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl, err := worker.NewClient(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	e := &env{t: t, ns: ns, nc: nc, js: js, runner: runner, presets: presets, client: cl, dir: t.TempDir()}
	e.events = newEventLog(t, nc)
	return e
}

// startWorker starts an in-process worker with the test configuration, changed by tweaks; it
// is shut down (and checked) when the test ends.
func (e *env) startWorker(id string, tweaks ...func(*worker.Config)) *worker.Worker {
	e.t.Helper()
	cfg := testConfig(e.nc, e.runner, e.presets, id, e.t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.Default()
	}
	for _, tweak := range tweaks {
		tweak(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.stopWorker(w) })
	return w
}

// stopWorker shuts w down and checks that the ring is whole again: every buffer released,
// every reservation closed.
func (e *env) stopWorker(w *worker.Worker) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	if st := w.Ring(); st.InUse != 0 || st.Reserved != 0 || st.Misuse != 0 {
		e.t.Errorf("ring not whole after shutdown: %+v", st)
	}
}

func (e *env) submit(in, preset string, outs ...string) string {
	e.t.Helper()
	j := &job.Job{Input: "file://" + in, Preset: preset, Metadata: map[string]string{"test": e.t.Name()}}
	for _, o := range outs {
		j.Outputs = append(j.Outputs, job.Output{URL: "file://" + o})
	}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// eventLog records every event published, from a subscription made before any job.
type eventLog struct {
	mu     sync.Mutex
	all    []job.Event
	notify chan struct{}
}

func newEventLog(t *testing.T, nc *nats.Conn) *eventLog {
	l := &eventLog{notify: make(chan struct{})}
	sub, err := nc.Subscribe(worker.EventsSubjects, func(m *nats.Msg) {
		var ev job.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Errorf("event is not JSON: %q", m.Data)
			return
		}
		l.mu.Lock()
		l.all = append(l.all, ev)
		close(l.notify)
		l.notify = make(chan struct{})
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return l
}

// waitFor returns the first event that matches, waiting up to d for it.
func (l *eventLog) waitFor(t *testing.T, d time.Duration, what string, match func(job.Event) bool) job.Event {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for _, ev := range l.all {
			if match(ev) {
				l.mu.Unlock()
				return ev
			}
		}
		ch := l.notify
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no %s event within %s; events: %s", what, d, l.dump())
		}
	}
}

func (l *eventLog) terminal(t *testing.T, id string) job.Event {
	t.Helper()
	return l.waitFor(t, waitLong, id+" terminal", func(ev job.Event) bool { return ev.JobID == id && ev.Type.Terminal() })
}

func (l *eventLog) of(id string) []job.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []job.Event
	for _, ev := range l.all {
		if ev.JobID == id {
			out = append(out, ev)
		}
	}
	return out
}

// count is how many events of type typ the job has had.
func (l *eventLog) count(id string, typ job.EventType) int {
	n := 0
	for _, ev := range l.of(id) {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func (l *eventLog) snapshot() []job.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]job.Event(nil), l.all...)
}

func (l *eventLog) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, ev := range l.all {
		fmt.Fprintf(&b, "\n  %s %s attempt=%d worker=%s", ev.JobID, ev.Type, ev.Attempt, ev.WorkerID)
		if ev.Error != nil {
			fmt.Fprintf(&b, " %s: %s", ev.Error.Class, ev.Error.Reason)
		}
	}
	return b.String()
}

func durationOf(t *testing.T, path string) float64 {
	t.Helper()
	d, err := strconv.ParseFloat(testenv.Probe(t, path, "format=duration", ""), 64)
	if err != nil {
		t.Fatalf("duration of %s: %v", path, err)
	}
	return d
}

func sha(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// noParts asserts that dir holds no temporary output.
func noParts(t *testing.T, dir string) {
	t.Helper()
	parts, _ := filepath.Glob(filepath.Join(dir, ".*.part"))
	if len(parts) > 0 {
		t.Errorf("temporary outputs left: %v", parts)
	}
}

// waitExit fails the test unless the process (not necessarily our child) exits within d.
func waitExit(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	if !processGone(pid, d) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		t.Fatalf("process %d still running after %s: %q", pid, d, cmdline)
	}
}

// processGone waits up to d for a process to exit: its pidfd becomes readable, or it is a
// zombie (in a container whose init does not reap orphans it stays one).
func processGone(pid int, d time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer func() { _ = unix.Close(fd) }()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if zombie(pid) {
			return true
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 50); err == nil && n > 0 {
			return true
		}
	}
	return zombie(pid)
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// TestEndToEnd: a 10 s lavfi clip through NATS, the ring and ffmpeg to a playable file.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.startWorker("e2e")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 10, Size: "1280x720"})
	out := filepath.Join(e.dir, "out", "480p.mp4")
	id := e.submit(in, "h264-480p", out)

	final := e.events.terminal(t, id)
	if final.Type != job.EventSucceeded {
		t.Fatalf("job ended %s: %+v", final.Type, final.Error)
	}
	if got := testenv.Probe(t, out, "stream=codec_type", ""); got != "video\naudio" {
		t.Errorf("streams = %q, want video and audio", got)
	}
	if got := testenv.Probe(t, out, "stream=width,height", "v:0"); got != "854,480" {
		t.Errorf("dimensions = %s, want 854,480 (720p input fit into the 480p box)", got)
	}
	if din, dout := durationOf(t, in), durationOf(t, out); dout < din-0.1 || dout > din+0.1 {
		t.Errorf("duration %.3f, input %.3f: want within 0.1 s", dout, din)
	}
	var types []string
	for _, ev := range e.events.of(id) {
		if ev.Type != job.EventProgress {
			types = append(types, string(ev.Type))
		}
		if ev.Metadata["test"] != t.Name() {
			t.Errorf("%s event lost the job metadata: %v", ev.Type, ev.Metadata)
		}
	}
	if strings.Join(types, ",") != "queued,started,succeeded" {
		t.Errorf("events = %v, want queued, started, succeeded", types)
	}
	if len(final.Outputs) != 1 || final.Outputs[0].SHA256 != sha(t, out) || final.Outputs[0].Width != 854 {
		t.Errorf("succeeded event outputs = %+v", final.Outputs)
	}
	st, err := e.client.Status(context.Background(), id)
	if err != nil || st.State != job.StateSucceeded {
		t.Errorf("state = %+v, %v; want succeeded", st, err)
	}
	noParts(t, filepath.Dir(out))
	e.stopWorker(w) // checks the ring is whole
}

// TestRawPublish: the job as any NATS client in any language would publish it. The JSON below
// is the wire contract; changing it breaks publishers.
func TestRawPublish(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("raw")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	out := filepath.Join(e.dir, "raw.m4a")
	raw := fmt.Sprintf(`{"id": "raw-job-1", "input": "file://%s", "preset": "aac-audio",
		"outputs": [{"url": "file://%s"}], "priority": "normal", "metadata": {"from": "nats pub"}}`, in, out)
	// A plain core publish, as `nats pub transcode.jobs.normal '...'` does.
	if err := e.nc.Publish("transcode.jobs.normal", []byte(raw)); err != nil {
		t.Fatal(err)
	}
	final := e.events.terminal(t, "raw-job-1")
	if final.Type != job.EventSucceeded || final.Metadata["from"] != "nats pub" {
		t.Fatalf("final event %+v", final)
	}
	if got := testenv.Probe(t, out, "stream=codec_type", ""); got != "audio" {
		t.Errorf("streams = %q, want audio only", got)
	}
	if evs := e.events.of("raw-job-1"); evs[0].Type != job.EventQueued {
		t.Errorf("first event %s, want queued (the worker reports it for raw publishes)", evs[0].Type)
	}
}

// TestBadInput: every kind of bad job gets a failed event with its class, is not retried, and
// the worker then serves a good job.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.startWorker("bad")
	good := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	random := filepath.Join(e.dir, "random.mp4")
	b := make([]byte, 300_000)
	for i := range b {
		b[i] = byte(i*7919 + i/13)
	}
	writeFile(t, random, b)
	full, err := os.ReadFile(testenv.MakeClip(t, testenv.Clip{Seconds: 6}))
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(e.dir, "trunc.mp4")
	writeFile(t, trunc, full[:len(full)/3])
	text := filepath.Join(e.dir, "notes.mp4")
	writeFile(t, text, []byte(strings.Repeat("this is not a video\n", 100)))

	jobJSON := func(id, in, preset string) string {
		return fmt.Sprintf(`{"id":%q,"input":%q,"preset":%q,"outputs":[{"url":%q}]}`, id, "file://"+in, preset, "file://"+filepath.Join(e.dir, id+".mp4"))
	}
	cases := []struct {
		id, payload string
		class       job.Class
		reason      string
	}{
		{"", `{"input": "file:///x.mp4", "outputs": [`, job.ClassInvalidJob, "json"},
		{"bad-field", `{"id":"bad-field","input":"file:///x.mp4","ouputs":[]}`, job.ClassInvalidJob, "ouputs"},
		{"bad-preset", jobJSON("bad-preset", good, "nope"), job.ClassInvalidJob, "unknown preset"},
		{"bad-concat", `{"id":"bad-concat","input":"concat:/etc/passwd|/etc/hosts","preset":"h264-480p","outputs":[{"url":"file:///tmp/x.mp4"}]}`, job.ClassInvalidJob, "input"},
		{"bad-missing", jobJSON("bad-missing", filepath.Join(e.dir, "nope.mp4"), "h264-480p"), job.ClassInvalidInput, "no such file"},
		{"bad-random", jobJSON("bad-random", random, "h264-480p"), job.ClassInvalidInput, "invalid"},
		{"bad-text", jobJSON("bad-text", text, "h264-480p"), job.ClassInvalidInput, ""},
		{"bad-trunc", jobJSON("bad-trunc", trunc, "h264-480p"), job.ClassInvalidInput, "truncated"},
	}
	for _, c := range cases {
		if err := e.nc.Publish("transcode.jobs.normal", []byte(c.payload)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		match := func(ev job.Event) bool { return ev.JobID == c.id && ev.Type.Terminal() }
		if c.id == "" {
			match = func(ev job.Event) bool { return strings.HasPrefix(ev.JobID, "seq-") && ev.Type.Terminal() }
		}
		ev := e.events.waitFor(t, waitLong, c.payload, match)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != c.class {
			t.Errorf("%s: got %s %+v, want failed %s", c.id, ev.Type, ev.Error, c.class)
			continue
		}
		if !strings.Contains(strings.ToLower(ev.Error.Reason), c.reason) {
			t.Errorf("%s: reason %q does not say %q", c.id, ev.Error.Reason, c.reason)
		}
		if _, err := os.Stat(filepath.Join(e.dir, c.id+".mp4")); err == nil {
			t.Errorf("%s: output left behind", c.id)
		}
	}
	out := filepath.Join(e.dir, "good.mp4")
	id := e.submit(good, "h264-480p", out)
	if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded {
		t.Fatalf("good job after bad ones: %s %+v", ev.Type, ev.Error)
	}
	// Nothing was retried, and nothing is left in the work queue once the worker has settled
	// every delivery.
	e.stopWorker(w)
	for _, c := range cases {
		for _, ev := range e.events.of(c.id) {
			if ev.Attempt > 1 || ev.Type == job.EventRetrying {
				t.Errorf("%s was retried: %+v", c.id, ev)
			}
		}
	}
	s, err := e.js.Stream(context.Background(), worker.JobsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Errorf("jobs still in the work queue: %+v, %v", info.State, err)
	}
	noParts(t, e.dir)
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCancel: a running job is canceled; ffmpeg is gone within 2 s, and no output is left.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.startWorker("cancel")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 60, Size: "640x360"})
	out := filepath.Join(e.dir, "canceled.mp4")
	id := e.submit(in, "h264-720p", out)
	e.events.waitFor(t, waitLong, "progress", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.OutTime > 0
	})
	var pid int
	for _, j := range w.Jobs() {
		if j.ID == id {
			pid = j.Pid
		}
	}
	if pid == 0 {
		t.Fatal("running job has no ffmpeg pid")
	}
	start := time.Now()
	if err := e.client.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid, 2*time.Second)
	t.Logf("ffmpeg gone %s after cancel", time.Since(start).Round(time.Millisecond))
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventCanceled {
		t.Fatalf("final event %s %+v, want canceled", ev.Type, ev.Error)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output exists after cancel: %v", err)
	}
	noParts(t, e.dir)
	if st, _ := e.client.Status(context.Background(), id); st == nil || st.State != job.StateCanceled {
		t.Errorf("state %+v, want canceled", st)
	}
}

// TestKilledWorker: a worker process killed with SIGKILL mid-job leaves no ffmpeg behind, and
// the job is redelivered to another worker and succeeds.
func TestKilledWorker(t *testing.T) {
	t.Parallel()
	e := setup(t)
	doomed := e.startWorkerProc("doomed")

	in := testenv.MakeClip(t, testenv.Clip{Seconds: 30, Size: "640x360"})
	out := filepath.Join(e.dir, "survived.mp4")
	id := e.submit(in, "h264-480p", out)
	e.events.waitFor(t, waitLong, "progress on the doomed worker", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.WorkerID == "doomed" && ev.Progress.OutTime > 0
	})
	ff := childFFmpeg(t, doomed.cmd.Process.Pid)
	if err := doomed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, ff, 5*time.Second) // the parent-death signal took ffmpeg down with its worker

	e.startWorker("survivor")
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.WorkerID != "survivor" || ev.Attempt < 2 {
		t.Fatalf("final event %s by %s attempt %d %+v; want succeeded by survivor on a redelivery", ev.Type, ev.WorkerID, ev.Attempt, ev.Error)
	}
	if d := durationOf(t, out); d < 29.5 {
		t.Errorf("output duration %.2f, want 30", d)
	}
	noParts(t, e.dir)
}

// childFFmpeg finds the ffmpeg process whose parent is pid.
func childFFmpeg(t *testing.T, pid int) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(ffmpeg") {
			continue
		}
		f := strings.Fields(s[i+2:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(strings.Fields(s)[0])
			return n
		}
	}
	t.Fatalf("no ffmpeg child of %d", pid)
	return 0
}

// TestMoovAtEnd: an mp4 with its index after the media cannot stream from a pipe; it is
// spooled to a file, transcoded, and the spool removed.
func TestMoovAtEnd(t *testing.T) {
	t.Parallel()
	e := setup(t)
	spoolDir := t.TempDir()
	w := e.startWorker("spool", func(c *worker.Config) { c.SpoolDir = spoolDir })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 4, MoovAtEnd: true})
	ex, err := w.Explain(context.Background(), &job.Job{ID: "explain-spool", Input: "file://" + in, Preset: "h264-480p", Outputs: []job.Output{{URL: "file:///tmp/x.mp4"}}})
	if err != nil || !ex.Spooled {
		t.Fatalf("explain: spooled=%v err=%v; want spooled", ex != nil && ex.Spooled, err)
	}
	out := filepath.Join(e.dir, "from-spool.mp4")
	id := e.submit(in, "h264-480p", out)
	if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded {
		t.Fatalf("final %s %+v", ev.Type, ev.Error)
	}
	if d := durationOf(t, out); d < 3.9 {
		t.Errorf("duration %.2f, want 4", d)
	}
	left, _ := filepath.Glob(filepath.Join(spoolDir, "*"))
	if len(left) > 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestShutdownHandsBack: a worker told to stop with a running job stops pulling, waits out the
// grace period, then stops ffmpeg and hands the job back at once; another worker finishes it.
func TestShutdownHandsBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := e.startWorker("leaving")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 30, Size: "640x360"})
	out := filepath.Join(e.dir, "handed-back.mp4")
	id := e.submit(in, "h264-480p", out)
	e.events.waitFor(t, waitLong, "progress", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.OutTime > 0
	})
	pid := w.Jobs()[0].Pid
	grace, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := w.Shutdown(grace); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with a running job past its grace period: %v", err)
	}
	waitExit(t, pid, 2*time.Second)
	if st := w.Ring(); st.InUse != 0 || st.Reserved != 0 {
		t.Errorf("ring after shutdown: %+v", st)
	}
	ev := e.events.waitFor(t, waitLong, "retrying", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventRetrying })
	if ev.Error.Class != job.ClassTransient || ev.RetryIn != 0 {
		t.Errorf("handed back as %+v, retry in %s; want transient, at once", ev.Error, time.Duration(ev.RetryIn))
	}
	noParts(t, e.dir)
	e.startWorker("staying")
	if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded || ev.WorkerID != "staying" {
		t.Fatalf("final %s by %s %+v", ev.Type, ev.WorkerID, ev.Error)
	}
}

// TestTimeout: a job that runs past its timeout fails with class timeout and is not retried.
func TestTimeout(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("slowpoke")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 30, Size: "640x360"})
	out := filepath.Join(e.dir, "late.mp4")
	j := &job.Job{Input: "file://" + in, Preset: "h264-480p", Timeout: job.Duration(500 * time.Millisecond), Outputs: []job.Output{{URL: "file://" + out}}}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventFailed || ev.Error.Class != job.ClassTimeout {
		t.Fatalf("final %s %+v, want failed timeout", ev.Type, ev.Error)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output of a timed-out job exists")
	}
}

// TestRawIntermediate: uncompressed frames and PCM in nut, the heavy case for the ring (every
// decoded frame crosses it).
func TestRawIntermediate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("raw-nut")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	out := filepath.Join(e.dir, "frames.nut")
	j := &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Container: "nut",
		Video: &job.Video{Codec: "raw"}, Audio: &job.Audio{Codec: "pcm"}}}}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded {
		t.Fatalf("final %s %+v", ev.Type, ev.Error)
	}
	if got := testenv.Probe(t, out, "stream=codec_name", ""); got != "rawvideo\npcm_s16le" {
		t.Errorf("codecs %q", got)
	}
	if want := int64(320 * 240 * 3 / 2 * 50); ev.Outputs[0].Size < want {
		t.Errorf("size %d, want at least %d bytes of frames", ev.Outputs[0].Size, want)
	}
}

// TestMissingStreams: a video preset on an input without audio gives a silent video, and on an
// input without video an audio-only file; neither is a failure.
func TestMissingStreams(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("streams")
	for _, c := range []struct {
		name string
		clip testenv.Clip
		want string
	}{
		{"video-only", testenv.Clip{Seconds: 2, NoAudio: true}, "video"},
		{"audio-only", testenv.Clip{Seconds: 2, NoVideo: true, Container: "m4a"}, "audio"},
	} {
		in := testenv.MakeClip(t, c.clip)
		out := filepath.Join(e.dir, c.name+".mp4")
		id := e.submit(in, "h264-480p", out)
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventSucceeded {
			t.Errorf("%s: %s %+v", c.name, ev.Type, ev.Error)
			continue
		}
		if got := testenv.Probe(t, out, "stream=codec_type", ""); got != c.want {
			t.Errorf("%s: streams %q, want %s", c.name, got, c.want)
		}
	}
}
