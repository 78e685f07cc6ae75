package ffmpeg

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transcoder/transcoder/sandbox"
)

var (
	selfOnce sync.Once
	selfCopy string
	selfErr  error
)

// sandboxSelf is a copy of the test binary the sandbox user may execute (go test keeps its
// binaries where only the user running it may enter), for the fakes.
func sandboxSelf(t testing.TB) string {
	t.Helper()
	selfOnce.Do(func() {
		self, err := os.Executable()
		if err != nil {
			selfErr = err
			return
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("ffmpeg-sandbox-test-%d", os.Getpid()))
		b, err := os.ReadFile(self)
		if err == nil {
			err = os.MkdirAll(dir, 0o755)
		}
		if err == nil {
			selfCopy = filepath.Join(dir, "ffmpeg.test")
			err = os.WriteFile(selfCopy, b, 0o755)
		}
		selfErr = err
	})
	if selfErr != nil {
		t.Fatal(selfErr)
	}
	return selfCopy
}

// sandboxed is a fixture whose Runner confines every child, with f.dir as its spool directory.
func sandboxed(t testing.TB, cfg Config) *fixture {
	t.Helper()
	f := setup(t)
	for p := f.dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil { // the sandbox user must reach the spool
			t.Fatal(err)
		}
	}
	sb, err := sandbox.New(sandbox.Config{SpoolDir: f.dir, ReadOnly: []string{filepath.Dir(sandboxSelf(t))}})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sandbox = sb
	cfg.KillDelay = time.Second
	if f.r, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestSandboxedJobs: real ffmpeg and ffprobe work confined: stdin to pipes, a spooled input,
// a faststart output file, a GOP directory, probes of files and pipes.
func TestSandboxedJobs(t *testing.T) {
	t.Parallel()
	f := sandboxed(t, Config{})
	if st := f.r.SandboxStatus(); st.Mode != sandbox.ModeOn || len(st.Layers) == 0 {
		t.Fatalf("status %+v", st)
	}
	if _, err := f.r.Version(ctxT(t)); err != nil {
		t.Fatalf("Version: %v", err)
	}
	in := f.media(t, "transcoder-moov-at-end.mp4") // a spool file, by its name
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(in, 0o600); err != nil { // as the worker spools it
		t.Fatal(err)
	}
	fast := filepath.Join(f.dir, "transcoder-fast.mp4")
	s := Spec{Input: Input{Path: in}, Outputs: []Output{
		{Container: "mpegts", Video: &Video{Codec: "copy"}, Audio: &Audio{Codec: "copy"}},
		{Container: "mp4", Video: &Video{Codec: "libx264", Preset: "ultrafast", Width: 160, Height: 120}, Path: fast},
	}}
	if _, _, _, err := f.run(t, f.r, s, nil); err != nil {
		t.Fatalf("spooled input, faststart output: %v", err)
	}
	if res, err := f.r.ProbeFile(ctxT(t), fast); err != nil || res.FormatName == "" {
		t.Fatalf("ProbeFile(faststart output) = %+v, %v", res, err)
	}
	if res, err := f.r.ProbeChunks(ctxT(t), [][]byte{data}); err != nil || res.FormatName == "" {
		t.Fatalf("ProbeChunks = %+v, %v", res, err)
	}
	gops := filepath.Join(f.dir, "transcoder-gops")
	if err := os.Mkdir(gops, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := f.r.CutGOPs(ctxT(t), in, "h264", gops)
	if err != nil || len(files) == 0 {
		t.Fatalf("CutGOPs = %v, %v", files, err)
	}
}

// TestSandboxedPipes: a stdin transcode with ffmpeg's pid, process name and parent as the
// acceptance scripts see them.
func TestSandboxedPipes(t *testing.T) {
	t.Parallel()
	f := sandboxed(t, Config{})
	in, err := os.ReadFile(f.media(t, "in.mp4", "-movflags", "+faststart"))
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Outputs: []Output{{Container: "webm", Video: &Video{Codec: "libvpx", Width: 160, Height: 120}, Audio: &Audio{Codec: "libopus"}}}}
	outs, prog, p, err := f.run(t, f.r, s, in)
	if err != nil {
		t.Fatalf("Wait: %v\n%s", err, p.StderrTail())
	}
	if len(prog) == 0 {
		t.Error("no progress from the sandboxed ffmpeg")
	}
	if st, err := os.Stat(outs[0]); err != nil || st.Size() == 0 {
		t.Errorf("output: %v", err)
	}
}

// TestSandboxedTree: ffmpeg keeps its name, is the launcher's child and in the launcher's
// process group (the worker's group signals reach it), and goes with the group.
func TestSandboxedTree(t *testing.T) {
	t.Parallel()
	f := sandboxed(t, Config{})
	r := f.fakeFFmpegAt(t, sandboxSelf(t), "hang", f.r.Config())
	p, err := r.Start(ctxT(t), spec1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	line, _ := bufio.NewReader(p.Output(0)).ReadString('\n')
	var fake, child int
	if _, err := fmt.Sscanf(line, "ready %d %d", &fake, &child); err != nil {
		t.Fatalf("fake said %q: %v", line, err)
	}
	if ppid := statusField(t, fake, "PPid"); ppid != strconv.Itoa(p.Pid()) {
		t.Errorf("ffmpeg's parent %s, want the launcher %d", ppid, p.Pid())
	}
	if uid := strings.Fields(statusField(t, fake, "Uid")); os.Geteuid() == 0 && uid[0] == "0" {
		t.Error("ffmpeg runs as root")
	}
	if g := groupMembers(t, p.Pid()); len(g) != 3 { // launcher, fake, its child
		t.Errorf("launcher's group %v, want 3 members", g)
	}
	p.Stop()
	go func() { _, _ = io.Copy(io.Discard, p.Output(0)) }()
	if err := p.Wait(); !errors.Is(err, ErrStopped) {
		t.Errorf("Wait = %v, want ErrStopped", err)
	}
	assertGone(t, p.Pid())
	assertGone(t, fake)
}

func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestSandboxedLimits: the resource limits hold in the sandbox (ffmpeg sets them on itself
// before exec), and a CPU limit hit is still told from other failures.
func TestSandboxedLimits(t *testing.T) {
	t.Parallel()
	t.Run("applied", func(t *testing.T) {
		t.Parallel()
		f := sandboxed(t, Config{MaxMemory: 3 << 30, MaxCPUTime: 1500 * time.Millisecond})
		p, line := startFakeWith(t, f.fakeFFmpegAt(t, sandboxSelf(t), "limits", f.r.Config()))
		got := waitFor(t, "limits line", line, 10*time.Second)
		if err := p.Wait(); err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if want := "as=3221225472/3221225472 cpu=2/3"; got != want {
			t.Errorf("ffmpeg's limits %q, want %q", got, want)
		}
	})
	for _, mode := range []string{"cpu", "cpu-ignore"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			f := sandboxed(t, Config{MaxCPUTime: time.Second})
			p, _ := startFakeWith(t, f.fakeFFmpegAt(t, sandboxSelf(t), mode, f.r.Config()))
			err := p.Wait()
			var fe *Error
			if !errors.As(err, &fe) || !errors.Is(err, ErrResourceLimit) || !strings.Contains(fe.Reason, "CPU time limit of 1s") {
				t.Fatalf("Wait = %v; want ErrResourceLimit for the CPU", err)
			}
		})
	}
}

// TestSandboxFailureIsInternal: a child whose sandbox cannot be set up is the worker's
// failure, never the input's.
func TestSandboxFailureIsInternal(t *testing.T) {
	t.Parallel()
	f := sandboxed(t, Config{})
	outside := filepath.Join(t.TempDir(), "private.mp4") // not the spool, and not the user's
	if err := os.WriteFile(outside, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("only a root worker hands files to a sandbox user")
	}
	_, err := f.r.ProbeFile(ctxT(t), outside)
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrInternal) || !strings.Contains(fe.Reason, "sandbox") {
		t.Fatalf("ProbeFile(unreachable) = %v; want an internal sandbox error", err)
	}
}

// startFakeWith is startFake for a ready Runner.
func startFakeWith(t *testing.T, r *Runner) (*Process, <-chan string) {
	t.Helper()
	p, err := r.Start(ctxT(t), spec1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(p.Output(0)).ReadString('\n')
		line <- strings.TrimSpace(l)
		_, _ = io.Copy(io.Discard, p.Output(0))
	}()
	if _, err := p.Stdin().Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	return p, line
}
