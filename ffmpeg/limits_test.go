package ffmpeg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// moreFakes are fake ffmpeg/ffprobe modes for the resource limit tests. Each first reads one
// byte of stdin: the test writes it after Start returned, when the limits are in place.
var moreFakes = map[string]func() int{
	// alloc maps address space in 64 MiB steps until the kernel refuses, reports how much it
	// got on output 0 and fails the way ffmpeg does when av_malloc returns NULL.
	"alloc": func() int {
		waitStdin()
		const step = 64 << 20
		var maps [][]byte
		for len(maps) < 1<<16 { // 4 TiB: far past any limit a test sets
			m, err := unix.Mmap(-1, 0, step, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
			if err != nil {
				break
			}
			maps = append(maps, m)
		}
		n := len(maps)
		for _, m := range maps { // room for the Go runtime to report
			_ = unix.Munmap(m)
		}
		fmt.Fprintf(os.NewFile(3, "out0"), "mapped %d\n", n*step)
		fmt.Fprintln(os.Stderr, "[error] Error while decoding stream #0:0: Cannot allocate memory")
		return 1
	},
	// cpu burns CPU and handles SIGXCPU as ffmpeg does (like SIGTERM: a graceful exit 255).
	"cpu": func() int {
		xcpu := make(chan os.Signal, 1)
		signal.Notify(xcpu, syscall.SIGXCPU)
		waitStdin()
		go burn()
		go burn()
		<-xcpu
		return 255
	},
	// cpu-ignore burns CPU and ignores SIGXCPU: the hard limit's SIGKILL ends it.
	"cpu-ignore": func() int {
		signal.Ignore(syscall.SIGXCPU)
		waitStdin()
		go burn()
		burn()
		return 0
	},
	// limits reports its own RLIMIT_AS and RLIMIT_CPU: on output 0 as a fake ffmpeg, as the
	// format name of ffprobe's JSON as a fake ffprobe.
	"limits": func() int {
		waitStdin()
		var as, cpu unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_AS, &as)
		_ = unix.Getrlimit(unix.RLIMIT_CPU, &cpu)
		line := fmt.Sprintf("as=%s/%s cpu=%s/%s", rlim(as.Cur), rlim(as.Max), rlim(cpu.Cur), rlim(cpu.Max))
		if strings.HasSuffix(os.Args[0], "ffprobe-limits") || os.Getenv("FAKE_PROBE") != "" {
			b, _ := json.Marshal(map[string]any{
				"format":  map[string]string{"format_name": line},
				"streams": []map[string]string{{"codec_type": "audio", "codec_name": "aac"}},
			})
			fmt.Println(string(b))
			return 0
		}
		fmt.Fprintln(os.NewFile(3, "out0"), line)
		return 0
	},
}

func waitStdin() {
	var b [1]byte
	_, _ = os.Stdin.Read(b[:])
}

func burn() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1442695040888963407
		if x == 0 {
			fmt.Print("") // never: keeps the loop from being optimized away
		}
	}
}

func rlim(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "inf"
	}
	return fmt.Sprint(v)
}

// startFake starts a fake in mode with cfg, releases it (one byte on stdin) and returns it
// with a channel that gets output 0's first line.
func startFake(t *testing.T, f *fixture, mode string, cfg Config) (*Process, <-chan string) {
	t.Helper()
	return startFakeWith(t, f.fakeFFmpeg(t, mode, cfg))
}

func ownLimits(t *testing.T) (as, cpu unix.Rlimit) {
	t.Helper()
	if err := unix.Getrlimit(unix.RLIMIT_AS, &as); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_CPU, &cpu); err != nil {
		t.Fatal(err)
	}
	return as, cpu
}

// TestLimitsApplied: every child gets the configured limits, the worker keeps its own.
func TestLimitsApplied(t *testing.T) {
	t.Parallel()
	as0, cpu0 := ownLimits(t)
	inherit := fmt.Sprintf("as=%s/%s", rlim(as0.Cur), rlim(as0.Max))
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, "as=17179869184/17179869184 cpu=" + rlim(cpu0.Cur) + "/" + rlim(cpu0.Max)},
		{"configured", Config{MaxMemory: 3 << 30, MaxCPUTime: 1500 * time.Millisecond}, "as=3221225472/3221225472 cpu=2/3"},
		{"unlimited memory", Config{MaxMemory: -1}, inherit},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, line := startFake(t, setup(t), "limits", c.cfg)
			got := waitFor(t, "limits line", line, 10*time.Second)
			if err := p.Wait(); err != nil {
				t.Fatalf("Wait = %v", err)
			}
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("ffmpeg's limits %q, want %q", got, c.want)
			}
		})
	}
	t.Run("ffprobe", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		script := filepath.Join(f.dir, "ffprobe-limits")
		body := fmt.Sprintf("#!/bin/sh\nexec env %s=limits FAKE_PROBE=1 %s \"$@\"\n", fakeEnv, Quote([]string{self}))
		if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := New(Config{FFprobe: script, MaxMemory: 3 << 30, MaxCPUTime: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.ProbeChunks(ctxT(t), [][]byte{{1}})
		if err != nil {
			t.Fatal(err)
		}
		if want := "as=3221225472/3221225472 cpu=3/4"; res.FormatName != want {
			t.Errorf("ffprobe's limits %q, want %q", res.FormatName, want)
		}
	})
	if as, cpu := ownLimits(t); as != as0 || cpu != cpu0 {
		t.Errorf("the test process's own limits changed: AS %+v -> %+v, CPU %+v -> %+v", as0, as, cpu0, cpu)
	}
	if _, err := New(Config{MaxCPUTime: -time.Second}); err == nil {
		t.Error("New accepted a negative MaxCPUTime")
	}
}

// TestMemoryLimit: an ffmpeg that allocates past MaxMemory fails its allocations, and the
// failure is classified as the job's (ErrResourceLimit, which is ErrInvalidInput): never
// retried.
func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const limit = 2 << 30 // the fake is a Go test binary: it needs about 1 GiB to start
	p, line := startFake(t, f, "alloc", Config{MaxMemory: limit})
	got := waitFor(t, "mapped line", line, 10*time.Second)
	err := p.Wait()
	var mapped int64
	if _, serr := fmt.Sscanf(got, "mapped %d", &mapped); serr != nil || mapped > limit {
		t.Errorf("fake mapped %q: want at most %d bytes", got, int64(limit))
	}
	t.Logf("fake mapped %d MiB under a %d MiB limit", mapped>>20, limit>>20)
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrResourceLimit) || !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("Wait = %v; want ErrResourceLimit (and ErrInvalidInput)", err)
	}
	if !strings.Contains(fe.Reason, "memory limit") || !strings.Contains(fe.Reason, "Cannot allocate memory") {
		t.Errorf("reason %q", fe.Reason)
	}
	// Without a limit the same message is the system's shortage: transient.
	if kind, _ := Classify(1, false, false, "[error] Error while decoding stream #0:0: Cannot allocate memory\n"); !errors.Is(kind, ErrTransient) {
		t.Errorf("Classify without a limit = %v, want ErrTransient", kind)
	}
}

// TestCPULimit: an ffmpeg that burns CPU past MaxCPUTime is stopped by the kernel, whether it
// handles SIGXCPU like ffmpeg (exit 255) or ignores it (SIGKILL at the hard limit), and the
// failure is ErrResourceLimit.
func TestCPULimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, c := range []struct{ mode, signal string }{{"cpu", ""}, {"cpu-ignore", "SIGKILL"}} {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			p, _ := startFake(t, f, c.mode, Config{MaxCPUTime: time.Second})
			waited := make(chan error, 1)
			go func() { waited <- p.Wait() }()
			err := waitFor(t, "Wait", waited, 20*time.Second)
			t.Logf("%s: ended after %s: %v", c.mode, time.Since(start).Round(time.Millisecond), err)
			var fe *Error
			if !errors.As(err, &fe) || !errors.Is(err, ErrResourceLimit) || !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Wait = %v; want ErrResourceLimit", err)
			}
			if fe.Signal != c.signal || !strings.Contains(fe.Reason, "CPU time limit of 1s") {
				t.Errorf("error %+v; want signal %q and a CPU reason", fe, c.signal)
			}
		})
	}
}

// TestLimitVerdict: how a failed run is attributed to the limits.
func TestLimitVerdict(t *testing.T) {
	t.Parallel()
	l := rlimits{as: 1 << 30}
	if _, ok := l.exceeded(nil, "Cannot allocate memory", true); ok {
		t.Error("no process state: attributed")
	}
	if _, ok := (rlimits{}).exceeded(&os.ProcessState{}, "Cannot allocate memory", true); ok {
		t.Error("no limits: attributed")
	}
	for _, s := range []string{"[error] Cannot allocate memory", "x264 [error]: malloc of size 3 failed: out of memory", "[h264 @ 0x1] Failed to allocate frame"} {
		if r, ok := l.exceeded(&os.ProcessState{}, s, false); !ok || !strings.Contains(r, "1024 MiB") {
			t.Errorf("%q: %q, %v", s, r, ok)
		}
	}
	if _, ok := l.exceeded(&os.ProcessState{}, "[error] pipe:0: Invalid data found when processing input", true); ok {
		t.Error("bad media attributed to the memory limit")
	}
}

// TestDamagedInput: a run that exits 0 but logged damage in its input fails as invalid input.
func TestDamagedInput(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		stderr, want string
	}{
		{"", ""},
		{"[aac @ 0x1] [warning] Queue input is backward in time\n", ""},
		{"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] stream 0, offset 0x1801e: partial file\n", "input is truncated: stream 0, offset 0x1801e: partial file"},
		{"[NULL @ 0x1] [error] Invalid NAL unit size (3040 > 2229).\n[mov @ 0x2] [error] stream 1, offset 0x9: partial file\n", "input is truncated: stream 1, offset 0x9: partial file"},
		{"[NULL @ 0x55] [error] Invalid NAL unit size (-1051365949 > 3893).\n", "input is damaged: Invalid NAL unit size (-1051365949 > 3893)."},
		{"[h264 @ 0x1] [error] concealing 396 DC, 396 AC, 396 MV errors in P frame\n", "input is damaged: concealing 396 DC, 396 AC, 396 MV errors in P frame"},
		{"[matroska,webm @ 0x1] [error] File ended prematurely\n", "input is truncated: File ended prematurely"},
		// The last box declares 8 bytes more than the file holds, every sample is there
		// (mp4_sample_mdat_too_long.mp4 on a pipe): from a file, ffmpeg says nothing.
		{strings.Repeat("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] root atom offset 0x18ce5: partial file\n[error] pipe:0: Invalid data found when processing input\n", 5), ""},
		// The same line, but the last sample is cut short: the decoder says so.
		{"[NULL @ 0x5] [error] Invalid NAL unit size (1089 > 1085).\n[error] Error while decoding stream #0:0: Invalid data found when processing input\n" +
			"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] root atom offset 0x25a78: partial file\n[error] pipe:0: Invalid data found when processing input\n", "input is damaged: Invalid NAL unit size (1089 > 1085)."},
		{"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] stream 1, offset 0x455cf: partial file\n[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5] [error] root atom offset 0x455d4: partial file\n[error] pipe:0: Invalid data found when processing input\n", "input is truncated: stream 1, offset 0x455cf: partial file"},
		// A pipe:0 line that follows no root atom line still counts.
		{"[error] pipe:0: Invalid data found when processing input\n", "input is damaged: pipe:0: Invalid data found when processing input"},
	} {
		reason, damaged := DamagedInput(c.stderr)
		if reason != c.want || damaged != (c.want != "") {
			t.Errorf("DamagedInput(%q) = %q, %v; want %q", c.stderr, reason, damaged, c.want)
		}
	}
}

// TestDamagedInputFailsRun: real ffmpeg on a truncated mp4 exits 0; Wait reports it, unless
// Config.TolerateInputErrors.
func TestDamagedInputFailsRun(t *testing.T) {
	t.Parallel()
	f := setup(t)
	full, err := os.ReadFile(f.mediaOf(t, "six.mp4", "160x120", "6", "-movflags", "+faststart"))
	if err != nil {
		t.Fatal(err)
	}
	trunc := full[:len(full)/2]
	spec := Spec{Outputs: []Output{{Container: "mkv", Video: &Video{Codec: "copy"}, Audio: &Audio{Codec: "copy"}}}}
	for _, tolerate := range []bool{false, true} {
		r, err := New(Config{TolerateInputErrors: tolerate})
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Start(ctxT(t), spec)
		if err != nil {
			t.Fatal(err)
		}
		out := drain(p.Output(0), "")
		in := feed(p.Stdin(), trunc, true)
		err = p.Wait()
		_ = waitFor(t, "output", out, 10*time.Second)
		_ = waitFor(t, "input", in, 10*time.Second)
		_ = p.Close()
		switch {
		case tolerate && err != nil:
			t.Errorf("tolerant: Wait = %v, want nil", err)
		case !tolerate && (!errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "input is truncated")):
			t.Errorf("Wait = %v; want ErrInvalidInput: input is truncated", err)
		}
	}
}

func TestOutputMaxBytes(t *testing.T) {
	t.Parallel()
	s := Spec{Outputs: []Output{{Container: "mkv", Audio: &Audio{Codec: "copy"}, Duration: 12 * time.Hour, MaxBytes: 64 << 30}}}
	args, err := s.Args()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(afterInput(t, args), " "); got != "-map 0:a:0? -vn -c:a copy -t 43200 -fs 68719476736 -f matroska -live 1 pipe:3" {
		t.Errorf("output args %q", got)
	}
	s.Outputs[0].MaxBytes = -1
	if _, err := s.Args(); !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), "MaxBytes") {
		t.Errorf("negative MaxBytes: %v", err)
	}
}

// TestOOMScore: every child gets the highest OOM score, so under memory pressure the kernel
// kills an ffmpeg, not the worker.
func TestOOMScore(t *testing.T) {
	t.Parallel()
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.StartProbe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = p.Wait() }()
	// The probe's pid is not exported; its process group is the only child group we started.
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Skip("no /proc oom_score_adj")
	}
	if strings.TrimSpace(string(b)) == "1000" {
		t.Skip("the test process itself already has the highest score")
	}
	found := false
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || !strings.Contains(string(stat), "(ffprobe)") {
			continue
		}
		f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+2:])
		if len(f) < 2 || f[1] != strconv.Itoa(os.Getpid()) {
			continue
		}
		adj, _ := os.ReadFile("/proc/" + e.Name() + "/oom_score_adj")
		if strings.TrimSpace(string(adj)) != "1000" {
			t.Errorf("ffprobe %s has oom_score_adj %q", e.Name(), adj)
		}
		found = true
	}
	if !found {
		t.Fatal("no ffprobe child found")
	}
}
