package ffmpeg

import (
	"bufio"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spec1 is a minimal valid spec for fakes, which ignore their argv.
var spec1 = Spec{Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}}}}

func TestStopHangingProcessKillsGroup(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const killDelay = 300 * time.Millisecond
	r := f.fakeFFmpeg(t, "hang", Config{KillDelay: killDelay})
	p, err := r.Start(ctxT(t), spec1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()

	// The fake reports its pid and its grandchild's on output 0.
	_ = p.Output(0).SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(p.Output(0)).ReadString('\n')
	if err != nil {
		t.Fatalf("reading ready line: %v (stderr %q)", err, p.StderrTail())
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "ready" {
		t.Fatalf("ready line = %q", line)
	}
	leader, _ := strconv.Atoi(fields[1])
	child, _ := strconv.Atoi(fields[2])
	if leader != p.Pid() || !alive(leader) || !alive(child) {
		t.Fatalf("pids %d (Pid %d) and %d not running", leader, p.Pid(), child)
	}

	start := time.Now()
	p.Stop()
	p.Stop() // idempotent
	waited := make(chan error, 1)
	go func() { waited <- p.Wait() }()
	err = waitFor(t, "Wait after Stop", waited, killDelay+5*time.Second)
	elapsed := time.Since(start)
	if !errors.Is(err, ErrStopped) {
		t.Errorf("Wait = %v, want ErrStopped", err)
	}
	if elapsed < killDelay {
		t.Errorf("stopped after %v: SIGTERM should have been ignored for KillDelay %v", elapsed, killDelay)
	}
	var fe *Error
	if errors.As(err, &fe) && fe.Signal != "SIGKILL" {
		t.Errorf("Signal = %q, want SIGKILL", fe.Signal)
	}
	assertGone(t, leader)
	if alive(child) {
		t.Errorf("grandchild %d survived the group kill", child)
	}
	p.Stop() // after Wait: still fine
	if err2 := p.Wait(); !errors.Is(err2, err) {
		t.Errorf("second Wait = %v, want the first result %v", err2, err)
	}
}

func TestCrashIsClassified(t *testing.T) {
	t.Parallel()
	f := setup(t)
	r := f.fakeFFmpeg(t, "crash", Config{})
	p, err := r.Start(ctxT(t), spec1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	out := drain(p.Output(0), "")
	err = p.Wait()
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrInternal) {
		t.Fatalf("Wait = %v, want *Error with ErrInternal", err)
	}
	if fe.Signal != "SIGSEGV" || fe.ExitCode != 139 || !strings.Contains(fe.Reason, "SIGSEGV") {
		t.Errorf("error = %+v, want SIGSEGV / 139", fe)
	}
	_ = waitFor(t, "output", out, 5*time.Second)
}

// TestStderrFlood is not parallel: it measures allocation while 50 MB of
// stderr stream through the tail.
func TestStderrFlood(t *testing.T) {
	f := setup(t)
	const tail = 4096
	r := f.fakeFFmpeg(t, "flood", Config{StderrTail: tail})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := r.Start(ctxT(t), spec1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	out := drain(p.Output(0), "")
	waited := make(chan error, 1)
	go func() { waited <- p.Wait() }()
	err = waitFor(t, "Wait during flood", waited, 20*time.Second)
	runtime.ReadMemStats(&after)
	_ = waitFor(t, "output", out, 5*time.Second)

	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Wait = %v, want ErrInvalidInput from the last line", err)
	}
	got := p.StderrTail()
	if len(got) > tail || !strings.HasSuffix(got, "Invalid data found when processing input\n") {
		t.Errorf("tail: %d bytes (limit %d), ends %q", len(got), tail, got[max(0, len(got)-80):])
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8<<20 {
		t.Errorf("allocated %d MiB while reading a 50 MB flood", grew>>20)
	}
}
