package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// probeArg makes the test binary the sandboxed program: it tries what a compromised decoder
// would and prints what happened as JSON.
const probeArg = "sandbox-probe"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == probeArg {
		os.Exit(runProbe(os.Args[2:]))
	}
	goleak.VerifyTestMain(cleanup{m})
}

// cleanup removes the probe binary's copy after the tests.
type cleanup struct{ m *testing.M }

func (c cleanup) Run() int {
	code := c.m.Run()
	if exePath != "" {
		_ = os.RemoveAll(filepath.Dir(exePath))
	}
	return code
}

// probeResult is what the probe found; an error string is "" when the call succeeded.
type probeResult struct {
	TCP, UDP, TCP6, Unix, PairInet string
	Ptrace, Mount, Unshare         string
	ReadInput, WriteOutput         string
	ReadOutside, WriteOutside      string
	Signal                         string
	NetNS                          string
	UID                            int
	NoNewPrivs, Seccomp            string
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// runProbe: args are the input it may read, the output it may write, a file it may not read,
// a directory it may not write, and the pid it may not signal.
func runProbe(args []string) int {
	var r probeResult
	sock := func(domain, typ int) string {
		fd, err := unix.Socket(domain, typ, 0)
		if err == nil {
			_ = unix.Close(fd)
		}
		return errString(err)
	}
	r.TCP, r.UDP = sock(unix.AF_INET, unix.SOCK_STREAM), sock(unix.AF_INET, unix.SOCK_DGRAM)
	r.TCP6, r.Unix = sock(unix.AF_INET6, unix.SOCK_STREAM), sock(unix.AF_UNIX, unix.SOCK_STREAM)
	_, err := unix.Socketpair(unix.AF_INET, unix.SOCK_STREAM, 0)
	r.PairInet = errString(err)
	_, _, e := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
	if e != 0 {
		r.Ptrace = e.Error()
	}
	// An unknown filesystem type: ENODEV unconfined (nothing is mounted even as root), EPERM
	// from the filter before the kernel looks.
	r.Mount = errString(unix.Mount("none", args[3], "sandbox-no-such-fs", 0, ""))
	r.Unshare = errString(unix.Unshare(unix.CLONE_NEWUSER))
	_, err = os.ReadFile(args[0])
	r.ReadInput = errString(err)
	r.WriteOutput = errString(os.WriteFile(args[1], []byte("out"), 0o600))
	_, err = os.ReadFile(args[2])
	r.ReadOutside = errString(err)
	r.WriteOutside = errString(os.WriteFile(filepath.Join(args[3], "escaped"), []byte("x"), 0o600))
	pid, _ := strconv.Atoi(args[4])
	r.Signal = errString(unix.Kill(pid, 0))
	r.NetNS, _ = os.Readlink("/proc/self/ns/net")
	r.UID = os.Getuid()
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "NoNewPrivs":
			r.NoNewPrivs = strings.TrimSpace(v)
		case "Seccomp":
			r.Seccomp = strings.TrimSpace(v)
		}
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return 0
}

var (
	exeOnce sync.Once
	exePath string
	exeErr  error
)

// probeBinary is a copy of the test binary that the sandbox user may execute: go test keeps
// its binaries in a directory only the user running it may enter.
func probeBinary(t *testing.T) string {
	t.Helper()
	exeOnce.Do(func() {
		var self string
		if self, exeErr = os.Executable(); exeErr != nil {
			return
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("sandbox-test-%d", os.Getpid()))
		if exeErr = os.MkdirAll(dir, 0o755); exeErr != nil {
			return
		}
		exePath = filepath.Join(dir, "probe")
		var b []byte
		if b, exeErr = os.ReadFile(self); exeErr == nil {
			exeErr = os.WriteFile(exePath, b, 0o755)
		}
	})
	if exeErr != nil {
		t.Fatal(exeErr)
	}
	return exePath
}

// openDir is a temporary directory the sandbox user may enter.
func openDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// run starts cmd through s like the ffmpeg package does and waits for it.
func run(t *testing.T, s *Sandbox, cmd *exec.Cmd, paths Paths) (Report, error) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c, err := s.Wrap(cmd, paths, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Started()
	waitExited(cmd.Process.Pid)
	r := c.Report()
	return r, cmd.Wait()
}

// probeIn runs the probe through s (nil: unconfined) and returns what it found.
func probeIn(t *testing.T, s *Sandbox) probeResult {
	t.Helper()
	// The probe's own files are spool files by name (transcoder-...); "outside" is not.
	dir, err := os.MkdirTemp(os.TempDir(), "transcoder-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := openDir(t)
	in, out, secret := filepath.Join(dir, "in"), filepath.Join(dir, "out"), filepath.Join(outside, "secret")
	// The input as the worker spools it (only the worker may read it, until it is handed
	// over); the secret readable by anyone: only Landlock keeps the probe out.
	for f, mode := range map[string]os.FileMode{in: 0o600, secret: 0o644} {
		if err := os.WriteFile(f, []byte("data"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(outside, 0o777); err != nil { // only Landlock keeps the probe out
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd := exec.Command(probeBinary(t), probeArg, in, out, secret, outside, strconv.Itoa(os.Getpid()))
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if s == nil {
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	} else if rep, err := run(t, s, cmd, Paths{Read: []string{in}, Write: []string{out}}); err != nil || rep.Error != "" {
		t.Fatalf("probe: %v, report %+v", err, rep)
	}
	var r probeResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("probe output %q: %v", stdout.String(), err)
	}
	return r
}

func newSandbox(t *testing.T, cfg Config) *Sandbox {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", s.Status())
	return s
}

// TestLayers runs the probe confined and unconfined: each layer refuses what it must, and the
// same calls succeed without the sandbox (the probe can tell).
func TestLayers(t *testing.T) {
	s := newSandbox(t, Config{SpoolDir: os.TempDir()})
	free := probeIn(t, nil)
	got := probeIn(t, s)
	ownNS, _ := os.Readlink("/proc/self/ns/net")
	refused := func(t *testing.T, what, confined, unconfined string) {
		t.Helper()
		if !strings.Contains(confined, "not permitted") && !strings.Contains(confined, "permission denied") {
			t.Errorf("%s: sandboxed %q, want refused", what, confined)
		}
		if unconfined != "" && what != "mount" && what != "ptrace" && what != "unshare" {
			t.Errorf("%s fails unconfined too (%q): the check proves nothing", what, unconfined)
		}
	}
	t.Run("netns", func(t *testing.T) {
		need(t, s, LayerNetNS)
		if got.NetNS == ownNS || free.NetNS != ownNS {
			t.Errorf("network namespace %s, the worker's %s (unconfined %s)", got.NetNS, ownNS, free.NetNS)
		}
	})
	t.Run("no_new_privs", func(t *testing.T) {
		if got.NoNewPrivs != "1" || free.NoNewPrivs != "0" {
			t.Errorf("NoNewPrivs %q (unconfined %q)", got.NoNewPrivs, free.NoNewPrivs)
		}
	})
	t.Run("seccomp", func(t *testing.T) {
		need(t, s, LayerSeccomp)
		if got.Seccomp != "2" {
			t.Errorf("Seccomp %q, want 2 (filter)", got.Seccomp)
		}
		refused(t, "tcp socket", got.TCP, free.TCP)
		refused(t, "udp socket", got.UDP, free.UDP)
		refused(t, "tcp6 socket", got.TCP6, free.TCP6)
		refused(t, "ptrace", got.Ptrace, "")
		refused(t, "mount", got.Mount, "")
		refused(t, "unshare", got.Unshare, "")
		if got.Unix != "" {
			t.Errorf("AF_UNIX socket refused: %s", got.Unix)
		}
		if !strings.Contains(got.PairInet, "not permitted") {
			t.Errorf("AF_INET socketpair: %q, want EPERM", got.PairInet)
		}
	})
	t.Run("landlock", func(t *testing.T) {
		need(t, s, LayerLandlock)
		if got.ReadInput != "" || got.WriteOutput != "" {
			t.Errorf("own files: read %q, write %q", got.ReadInput, got.WriteOutput)
		}
		refused(t, "read outside", got.ReadOutside, free.ReadOutside)
		refused(t, "write outside", got.WriteOutside, free.WriteOutside)
		if s.landlock >= 6 {
			refused(t, "signal the worker", got.Signal, free.Signal)
		}
	})
	t.Run("user", func(t *testing.T) {
		if os.Geteuid() == 0 && got.UID == 0 {
			t.Errorf("runs as root")
		}
	})
}

func need(t *testing.T, s *Sandbox, layer string) {
	t.Helper()
	for _, l := range s.Status().Layers {
		if strings.HasPrefix(l, layer) {
			return
		}
	}
	t.Skipf("this kernel lacks %s: %v", layer, s.Status().Missing)
}

// TestExitStatus: the launcher exits as ffmpeg did, code or signal.
func TestExitStatus(t *testing.T) {
	s := newSandbox(t, Config{})
	for _, c := range []struct {
		script string
		code   int
		sig    syscall.Signal
	}{{"exit 0", 0, 0}, {"exit 3", 3, 0}, {"kill -SEGV $$", 0, syscall.SIGSEGV}, {"kill -KILL $$", 0, syscall.SIGKILL}} {
		cmd := exec.Command("/bin/sh", "-c", c.script)
		_, err := run(t, s, cmd, Paths{})
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if ws.Signaled() != (c.sig != 0) || (c.sig != 0 && ws.Signal() != c.sig) || (c.sig == 0 && ws.ExitStatus() != c.code) {
			t.Errorf("%q: launcher ended with %v (%v)", c.script, ws, err)
		}
	}
}

// TestWorkerGone: when the worker's end of the control socket closes (the worker died), the
// launcher kills ffmpeg, reaps it and exits: nothing of the run is left.
func TestWorkerGone(t *testing.T) {
	s := newSandbox(t, Config{})
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	cmd := exec.Command("/bin/sh", "-c", "echo $$; exec sleep 60")
	cmd.Stdout = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c, err := s.Wrap(cmd, Paths{}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.Started()
	_ = w.Close()
	line := make([]byte, 32)
	n, _ := r.Read(line)
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:n])))
	if err != nil {
		t.Fatalf("child pid %q: %v", line[:n], err)
	}
	if ppid := parentOf(pid); ppid != cmd.Process.Pid {
		t.Errorf("ffmpeg's parent is %d, want the launcher %d", ppid, cmd.Process.Pid)
	}
	c.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Logf("launcher: %v", err) // killed with ffmpeg: its status is SIGKILL's
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("launcher still running 10 s after the worker went")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("ffmpeg %d still exists after its launcher exited (kill: %v)", pid, err)
	}
}

func parentOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// TestSetupFailure: a sandbox that cannot start its program reports why, as the launcher's
// report and exit status.
func TestSetupFailure(t *testing.T) {
	s := newSandbox(t, Config{})
	cmd := exec.Command("/nonexistent/ffmpeg", "-version")
	rep, _ := run(t, s, cmd, Paths{})
	if !strings.Contains(rep.Error, "exec /nonexistent/ffmpeg") || cmd.ProcessState.ExitCode() != exitSetup {
		t.Errorf("report %+v, exit %v", rep, cmd.ProcessState)
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{Mode: "maybe"}); err == nil || !strings.Contains(err.Error(), "Config.Mode") {
		t.Errorf("bad mode: %v", err)
	}
	if os.Geteuid() == 0 {
		if _, err := New(Config{User: "no-such-user-here"}); err == nil || !strings.Contains(err.Error(), "Config.User") {
			t.Errorf("bad user: %v", err)
		}
		if _, err := New(Config{User: "root"}); err == nil {
			t.Error("root accepted as the sandbox user")
		}
		// A spool directory the sandbox user cannot reach (under a 0700 directory): ffmpeg
		// keeps the worker's user, the layer is reported missing, and strict refuses.
		spool := filepath.Join(t.TempDir(), "private", "spool")
		if err := os.MkdirAll(spool, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Dir(spool), 0o700); err != nil {
			t.Fatal(err)
		}
		s := newSandbox(t, Config{SpoolDir: spool})
		if s.uid >= 0 || !strings.Contains(strings.Join(s.Status().Missing, ";"), LayerUser+": spool_dir") {
			t.Errorf("unreachable spool: uid %d, %v", s.uid, s.Status())
		}
		if _, err := New(Config{SpoolDir: spool, Mode: ModeStrict}); err == nil || !strings.Contains(err.Error(), "cannot search") {
			t.Errorf("strict with an unreachable spool: %v", err)
		}
	}
	off := newSandbox(t, Config{Mode: ModeOff})
	if off.Enabled() || off.Status().String() != "sandbox off" {
		t.Errorf("off: %v", off.Status())
	}
	if (*Sandbox)(nil).Status().Mode != ModeOff {
		t.Error("nil sandbox not off")
	}
}
