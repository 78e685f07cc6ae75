package worker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

// leakSlack is how far above the baseline the open fds and goroutines may settle: the NATS
// client's reconnect and ping timers and the runtime's own background goroutines come and go on
// their own schedule. A leak per job would show as 200 (or 20 after the first phase), not 2.
const leakSlack = 2

// leakNATSEnv makes TestLeakNATSHelper, in a child process, serve NATS in DataDir.
const leakNATSEnv = "TRANSCODER_TEST_LEAK_NATS_DIR"

// TestNoLeaksOver200Jobs runs 200 tiny jobs (a tenth of them bad inputs, so the error paths run
// too) through one in-process worker with two slots and checks that nothing accumulates: open
// fds and goroutines return to what they were after a warm-up job, RSS after job 200 is within
// 10% of RSS after job 20, and the ring is whole after Shutdown.
//
// What the process holds besides the worker is kept out of the figures: nats-server runs in a
// child process (TestLeakNATSHelper), because JetStream keeps state per job id by design (an
// events subject and a state key for each job, retained for days), which is growth of the server,
// not of the worker; and jobs are followed by a tracker that keeps a few bytes per job, not every
// event. The GC runs at GOGC=10 during the test so the heap, and with -race the shadow memory the
// race detector keeps for every heap page ever used, follow the live heap (the ring's slab alone
// is 36 MiB of it) instead of GOGC=100's slack of the same size again. Under -race the memory
// check is on what the Go runtime holds instead of RSS (see below).
//
// It does not call t.Parallel: it measures the whole process, so no other test may run beside
// it (parallel tests wait until every sequential test is done).
func TestNoLeaksOver200Jobs(t *testing.T) {
	if testing.Short() {
		t.Skip("200 jobs: skipped with -short")
	}
	const total, firstPhase = 200, 20
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	nc := leakNATS(t)
	runner, err := ffmpeg.New(ffmpeg.Config{KillDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	presets, err := job.ParsePresets(configs.Presets)
	if err != nil {
		t.Fatal(err)
	}
	client, err := worker.NewClient(context.Background(), nc)
	if err != nil {
		t.Fatal(err)
	}
	track := newSoakTracker(t, nc)
	cfg := testConfig(nc, runner, presets, "leaks", t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)

	dir := t.TempDir()
	good := testenv.MakeClip(t, testenv.Clip{Seconds: 0.2, Size: "64x64"})
	bad := leakBadInputs(t, dir)
	// input returns the input of job i: every tenth job is a bad one, in turn each kind.
	input := func(i int) (string, bool) {
		if i%10 == 5 {
			return bad[(i/10)%len(bad)], false
		}
		return good, true
	}
	outDir := filepath.Join(dir, "out")
	runJobs := func(from, to int) {
		t.Helper()
		ids := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			in, _ := input(i)
			j := &job.Job{Input: "file://" + in, Preset: "h264-480p", Outputs: []job.Output{{URL: "file://" + filepath.Join(outDir, fmt.Sprintf("%03d.mp4", i+1))}}}
			id, err := client.Submit(context.Background(), j)
			if err != nil {
				t.Fatal(err)
			}
			track.submitted(id, "")
			ids = append(ids, id)
		}
		if lost := track.waitAll(waitLong); len(lost) > 0 {
			t.Fatalf("jobs without a terminal event after %s: %v", waitLong, lost)
		}
		for k, id := range ids {
			i := from + k
			ev := track.first(id)
			if _, ok := input(i); ok {
				if ev.Type != job.EventSucceeded {
					t.Fatalf("job %d (%s): %s %+v", i+1, id, ev.Type, ev.Error)
				}
			} else if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidInput {
				t.Fatalf("job %d (%s) on a bad input: %s %+v, want failed invalid_input", i+1, id, ev.Type, ev.Error)
			}
		}
	}

	// Warm up: the first job starts what is started once (the consumer, the runtime's threads
	// and timers, the first ffmpeg's pipes); then take the baseline.
	start := time.Now()
	runJobs(-1, 0)
	base := leakSample(t)
	t.Logf("baseline (after 1 warm-up job): %s", base)

	runJobs(0, firstPhase)
	at20 := leakSettle(t, base)
	t.Logf("after job %d: %s", firstPhase, at20)

	runJobs(firstPhase, total)
	at200 := leakSettle(t, base)
	t.Logf("after job %d: %s (%d jobs in %s)", total, at200, total+1, time.Since(start).Round(time.Millisecond))

	if leakRace() {
		// With -race, RSS also holds ThreadSanitizer's shadow and per-goroutine state, which
		// the race runtime allocates outside the Go heap and never returns (here about 75 KB
		// per job, the same with or without a leak in the worker), so RSS says nothing about
		// the worker. What the Go runtime holds is what RSS measures without -race; check that.
		if limit := at20.goHeld + at20.goHeld/10; at200.goHeld > limit {
			t.Errorf("memory held by the Go runtime grew from %d to %d bytes between job %d and job %d: more than 10%%", at20.goHeld, at200.goHeld, firstPhase, total)
		}
	} else if limit := at20.rssKB + at20.rssKB/10; at200.rssKB > limit {
		t.Errorf("RSS grew from %d kB after job %d to %d kB after job %d: more than 10%%", at20.rssKB, firstPhase, at200.rssKB, total)
	}

	stop()
	if st := w.Ring(); st.InUse != 0 || st.Reserved != 0 || st.Misuse != 0 || st.Acquires == 0 {
		t.Errorf("ring not whole after Shutdown (or never used): %+v", st)
	}
	noParts(t, outDir)
}

// leakNATS starts nats-server in a child process (the test binary running TestLeakNATSHelper)
// and connects to it; both are closed when the test ends.
func leakNATS(t *testing.T) *nats.Conn {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakNATSHelper$")
	cmd.Env = append(os.Environ(), leakNATSEnv+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	urlc := make(chan string, 1)
	go func() {
		defer close(exited)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		urlc <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close() // the helper stops when its stdin closes
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("nats-server helper did not stop")
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	var url string
	select {
	case url = <-urlc:
	case <-time.After(30 * time.Second):
		t.Fatal("nats-server helper did not start")
	}
	if !strings.HasPrefix(url, "nats://") {
		t.Fatalf("nats-server helper said %q", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestLeakNATSHelper is not a test: in the child process TestNoLeaksOver200Jobs starts, it
// serves NATS, prints the URL, and stops when its stdin is closed.
func TestLeakNATSHelper(t *testing.T) {
	dir := os.Getenv(leakNATSEnv)
	if dir == "" {
		t.Skip("the nats-server process of TestNoLeaksOver200Jobs")
	}
	ns, err := natsembed.Start(natsembed.Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	fmt.Println(ns.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// leakBadInputs writes the bad inputs the test mixes in: random bytes, a truncated mp4, a text
// file and a path that does not exist.
func leakBadInputs(t *testing.T, dir string) []string {
	t.Helper()
	random := filepath.Join(dir, "random.mp4")
	b := make([]byte, 200_000)
	for i := range b {
		b[i] = byte(i*7919 + i/13)
	}
	writeFile(t, random, b)
	full, err := os.ReadFile(testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "64x64"}))
	if err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(dir, "trunc.mp4")
	writeFile(t, trunc, full[:len(full)/3])
	text := filepath.Join(dir, "notes.mp4")
	writeFile(t, text, bytes.Repeat([]byte("this is not a video\n"), 100))
	return []string{random, trunc, text, filepath.Join(dir, "missing.mp4")}
}

// leakFigures is what the process holds at one moment.
type leakFigures struct {
	fds, goroutines int
	rssKB           int64
	threads         int
	heapInuse, sys  uint64 // bytes: the Go heap in use, and all the Go runtime has mapped
	goHeld          uint64 // bytes the Go runtime holds from the OS: sys less heap released
}

func (f leakFigures) String() string {
	return fmt.Sprintf("fds=%d goroutines=%d rss=%.1f MiB (threads %d, go heap in use %.1f MiB, held by the go runtime %.1f MiB)",
		f.fds, f.goroutines, float64(f.rssKB)/1024, f.threads, float64(f.heapInuse)/(1<<20), float64(f.goHeld)/(1<<20))
}

// leakSample reads the figures. runtime.GC and debug.FreeOSMemory come first so RSS counts the
// live heap (and the ring, which is live by design), not garbage that a later GC would return:
// without them the reading depends on where the GC cycle happens to be.
func leakSample(t *testing.T) leakFigures {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return leakFigures{fds: len(ents), goroutines: runtime.NumGoroutine(), rssKB: leakStatus(t, "VmRSS"), threads: int(leakStatus(t, "Threads")), heapInuse: ms.HeapInuse, sys: ms.Sys, goHeld: ms.Sys - ms.HeapReleased}
}

// leakSettle waits until fds and goroutines are back to base (plus leakSlack) and returns the
// figures then. There is no event for "a file was closed" or "a goroutine exited" (the job's
// terminal event is published before its last goroutines return and its ffmpeg is reaped), so
// this polls /proc and the runtime on a short ticker, with a deadline.
func leakSettle(t *testing.T, base leakFigures) leakFigures {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		now := leakSample(t)
		if now.fds <= base.fds+leakSlack && now.goroutines <= base.goroutines+leakSlack {
			return now
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			var stacks bytes.Buffer
			if now.goroutines > base.goroutines+leakSlack {
				buf := make([]byte, 1<<20)
				stacks.Write(buf[:runtime.Stack(buf, true)])
			}
			t.Fatalf("not back to the baseline after 15 s: now %s, baseline %s\nopen fds:\n%s\n%s", now, base, leakFDList(), stacks.String())
		}
	}
}

// leakStatus is a number from /proc/self/status (VmRSS in kB, Threads).
func leakStatus(t testing.TB, key string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", key, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return 0
}

// leakFDList describes the open fds, for a failure message.
func leakFDList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fmt.Fprintf(&b, "  %s -> %s\n", e.Name(), target)
	}
	return b.String()
}

// leakRace reports whether the test binary was built with -race.
func leakRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, st := range bi.Settings {
		if st.Key == "-race" {
			return st.Value == "true"
		}
	}
	return false
}
