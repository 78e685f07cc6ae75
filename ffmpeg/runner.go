package ffmpeg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/sandbox"
)

// Config configures a Runner. Zero values take the documented defaults.
type Config struct {
	FFmpeg, FFprobe string        // binaries; default "ffmpeg", "ffprobe", resolved with exec.LookPath
	KillDelay       time.Duration // SIGTERM to the group, then SIGKILL after this; default 3s
	StderrTail      int           // bytes of stderr kept (the last N); default 16 KiB
	PipeSize        int           // F_SETPIPE_SZ for every pipe; default 1 MiB, best effort
	Threads         int           // -threads for encoders; 0 = ffmpeg default

	// MaxMemory is the address-space limit (RLIMIT_AS, bytes) of every ffmpeg and ffprobe
	// process: a decompression bomb that gets past the probe and -max_pixels fails its
	// allocations instead of taking the machine's memory. 0 = DefaultMaxMemory; negative = no
	// limit. It counts reserved address space (thread stacks, malloc arenas), not resident
	// memory, so it needs headroom: see DefaultMaxMemory.
	MaxMemory int64
	// MaxCPUTime is the CPU time limit (RLIMIT_CPU, user+system, all threads) of every ffmpeg
	// and ffprobe process, rounded up to whole seconds. At the limit the kernel sends SIGXCPU
	// (ffmpeg stops gracefully), one second later SIGKILL. 0 = no limit.
	MaxCPUTime time.Duration
	// TolerateInputErrors accepts a run that exits 0 although ffmpeg logged damage in the input
	// (a truncated file, corrupt packets it concealed). By default such a run fails with
	// ErrInvalidInput: its output would silently miss or garble part of the input. Broadcast
	// captures that start mid-GOP log a few decode errors at the start; set this to accept them.
	TolerateInputErrors bool
	// Sandbox, when set and not off, confines every ffmpeg and ffprobe (see package sandbox):
	// a network namespace of its own, no_new_privs, seccomp, Landlock on the paths its argv
	// names, an unprivileged user. Nil runs them unconfined.
	Sandbox *sandbox.Sandbox
}

// Defaults for zero Config fields.
const (
	DefaultKillDelay  = 3 * time.Second
	DefaultStderrTail = 16 << 10
	DefaultPipeSize   = 1 << 20
	// DefaultMaxMemory is the RLIMIT_AS given to ffmpeg and ffprobe when Config.MaxMemory is 0.
	// Address space, not RSS: ffmpeg 5.1 peaked at 0.6 GB of address space for a 320x240 x264
	// transcode, 1.5 GB for 4K with automatic threads on 2 CPUs, 4.0 GB with 16 threads and
	// 6.3 GB with 32 (x264 frame threads, thread stacks, malloc arenas). 16 GiB leaves room for
	// 4K on a 32-CPU machine and still stops a bomb long before it takes a large machine down.
	DefaultMaxMemory = 16 << 30
)

// Runner runs ffmpeg and ffprobe. It is safe for concurrent use.
type Runner struct {
	cfg Config
}

// New validates cfg, fills defaults and resolves the binaries.
func New(cfg Config) (*Runner, error) {
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.FFprobe == "" {
		cfg.FFprobe = "ffprobe"
	}
	var err error
	if cfg.FFmpeg, err = exec.LookPath(cfg.FFmpeg); err != nil {
		return nil, fmt.Errorf("ffmpeg: Config.FFmpeg: %w", err)
	}
	if cfg.FFprobe, err = exec.LookPath(cfg.FFprobe); err != nil {
		return nil, fmt.Errorf("ffmpeg: Config.FFprobe: %w", err)
	}
	switch {
	case cfg.KillDelay < 0:
		return nil, fmt.Errorf("ffmpeg: Config.KillDelay must be >= 0, got %v", cfg.KillDelay)
	case cfg.StderrTail < 0:
		return nil, fmt.Errorf("ffmpeg: Config.StderrTail must be >= 0, got %d", cfg.StderrTail)
	case cfg.PipeSize < 0:
		return nil, fmt.Errorf("ffmpeg: Config.PipeSize must be >= 0, got %d", cfg.PipeSize)
	case cfg.Threads < 0:
		return nil, fmt.Errorf("ffmpeg: Config.Threads must be >= 0, got %d", cfg.Threads)
	case cfg.MaxCPUTime < 0:
		return nil, fmt.Errorf("ffmpeg: Config.MaxCPUTime must be >= 0, got %v", cfg.MaxCPUTime)
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = DefaultMaxMemory
	}
	if cfg.KillDelay == 0 {
		cfg.KillDelay = DefaultKillDelay
	}
	if cfg.StderrTail == 0 {
		cfg.StderrTail = DefaultStderrTail
	}
	if cfg.PipeSize == 0 {
		cfg.PipeSize = DefaultPipeSize
	}
	return &Runner{cfg: cfg}, nil
}

// Config returns the effective configuration (defaults filled, binaries
// resolved to paths).
func (r *Runner) Config() Config { return r.cfg }

// Args is Spec.Args plus the Runner's Config.Threads on every encoder;
// Start runs exactly this argv.
func (r *Runner) Args(s Spec) ([]string, error) { return s.args(r.cfg.Threads) }

// Version returns the first line of "ffmpeg -version".
func (r *Runner) Version(ctx context.Context) (string, error) {
	args := []string{"-version"}
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	out := limitedBuffer{max: 64 << 10}
	cmd := r.command(ctx, r.cfg.FFmpeg, args)
	cmd.Stdout, cmd.Stderr = &out, tail
	if err := runGroup(cmd); err != nil {
		return "", r.runError(ctx, "version", args, cmd, err, tail.release())
	}
	line, _, _ := bytes.Cut(out.b.Bytes(), []byte{'\n'})
	return string(bytes.TrimSpace(line)), nil
}

// SandboxStatus is the sandbox layers every child runs under.
func (r *Runner) SandboxStatus() sandbox.Status { return r.cfg.Sandbox.Status() }

// command builds a child (ffmpeg, ffprobe) in its own process group with
// a parent-death signal, the Runner's resource limits and its sandbox;
// start it with group.start (runGroup does) so that they are applied.
func (r *Runner) command(ctx context.Context, bin string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = r.cfg.KillDelay
	setup := childSetup{lim: r.limits()}
	if r.cfg.Sandbox.Enabled() {
		setup.sbx, setup.paths = r.cfg.Sandbox, argPaths(args)
	}
	if setup.lim.set() || setup.sbx != nil {
		pendingSetup.Store(cmd, setup)
	}
	return cmd
}

// argPaths are the local files an argv names ("file:" URLs, the only protocol the whitelists
// allow): after -i an input, otherwise an output; an output with a pattern (the segment
// muxer's gop%05d.ts) is its directory.
func argPaths(args []string) sandbox.Paths {
	var p sandbox.Paths
	for i, a := range args {
		if i > 0 && filterFlags[args[i-1]] {
			// A filter that reads a file (the subtitles filter of a burn-in) names it in the graph.
			for _, m := range filterFile.FindAllStringSubmatch(a, -1) {
				p.Read = append(p.Read, m[1])
			}
		}
		path, ok := strings.CutPrefix(a, "file:")
		if !ok || path == "" {
			continue
		}
		switch {
		case i > 0 && args[i-1] == "-i":
			p.Read = append(p.Read, path)
		case strings.Contains(filepath.Base(path), "%"):
			p.Dirs = append(p.Dirs, filepath.Dir(path))
		default:
			p.Write = append(p.Write, path)
		}
	}
	return p
}

// filterFlags take a filter graph; filterFile is a file a filter of it reads.
var (
	filterFlags = map[string]bool{"-filter_complex": true, "-lavfi": true, "-vf": true, "-filter:v": true, "-af": true}
	filterFile  = regexp.MustCompile(`(?:subtitles|ass)=filename=([^,;:\[\]'\\]+)`)
)

// runGroup starts cmd, kills its whole group with SIGKILL when the
// context ends, and after the leader exits kills whatever is left in the
// group before reaping it.
func runGroup(cmd *exec.Cmd) error {
	g := &group{}
	cmd.Cancel = func() error { g.signal(syscall.SIGKILL); return nil }
	if err := g.start(cmd); err != nil {
		return err
	}
	g.awaitExit()
	err := cmd.Wait()
	if serr := g.sandboxFailure("", nil, ""); serr != nil {
		return serr
	}
	return err
}

// streamProbe runs ffprobe with args, its stdout into out (a parser that folds lines as they
// stream by, so memory stays constant whatever the file's length), then gives out a newline
// for a last line without one. stopped, when set and true once ffprobe has exited, means the
// caller killed it on purpose: no error, and no flush.
func (r *Runner) streamProbe(ctx context.Context, args []string, stdin io.Reader, out io.Writer, stopped func() bool) error {
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	cmd := r.command(ctx, r.cfg.FFprobe, args)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, tail
	g := &group{}
	cmd.Cancel = func() error { g.signal(syscall.SIGKILL); return nil }
	if err := g.start(cmd); err != nil {
		return startErr(ctx, "probe", args, err)
	}
	g.awaitExit()
	err := cmd.Wait()
	if serr := g.sandboxFailure("probe", args, tail.String()); serr != nil {
		return serr
	}
	if stopped != nil && stopped() {
		return nil
	}
	if err != nil {
		return r.runError(ctx, "probe", args, cmd, err, tail.release())
	}
	_, _ = out.Write([]byte{'\n'})
	return nil
}

// runError turns a failed short-lived run into an *Error.
func (r *Runner) runError(ctx context.Context, op string, args []string, cmd *exec.Cmd, err error, tail string) error {
	if se := (*Error)(nil); errors.As(err, &se) { // runGroup's sandbox failure
		se.Op, se.Args, se.StderrTail = op, args, tail
		return se
	}
	e := &Error{Op: op, Args: args, StderrTail: tail}
	if cmd.ProcessState == nil {
		e.Kind, e.Reason = ErrInternal, err.Error()
		if ctx.Err() != nil {
			e.Kind, e.Reason = ErrStopped, ctx.Err().Error()
		}
		return e
	}
	code, signaled := exitStatus(cmd.ProcessState)
	if signaled {
		e.Signal = unix.SignalName(syscall.Signal(code - 128))
	}
	e.ExitCode = code
	v := classify(code, signaled, ctx.Err() != nil, tail)
	e.Kind, e.Reason = v.kind, v.reason
	if ctx.Err() == nil {
		if reason, ok := r.limits().exceeded(cmd.ProcessState, tail, false); ok {
			e.Kind, e.Reason = ErrResourceLimit, reason
			return e
		}
	}
	if e.Kind == nil {
		e.Kind, e.Reason = ErrInternal, err.Error()
	}
	// ffprobe only reads the input: unless our options were rejected or
	// it died of a signal, a failure means the media is bad.
	if op == "probe" && errors.Is(e.Kind, ErrInternal) && !signaled && v.cat != catInternal {
		e.Kind = ErrInvalidInput
	}
	return e
}

// exitStatus returns the exit code, or 128+signal when signaled.
func exitStatus(ps *os.ProcessState) (int, bool) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), true
	}
	return ps.ExitCode(), false
}

// setPipeSize grows the pipe behind f; best effort (the kernel caps it at
// /proc/sys/fs/pipe-max-size for unprivileged users).
func setPipeSize(f *os.File, size int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	})
}

// newPipe returns an os.Pipe with its size set.
func newPipe(size int) (r, w *os.File, err error) {
	r, w, err = os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	setPipeSize(r, size)
	return r, w, nil
}

// limitedBuffer collects output up to max bytes and discards the rest
// (never failing a write: the child must not block on a pipe nobody
// reads), so a runaway child cannot grow worker memory.
type limitedBuffer struct {
	b        bytes.Buffer
	max      int
	overflow bool
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); len(p) > room {
		l.overflow = true
		l.b.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return l.b.Write(p)
}

// rlimits are the resource limits a Runner puts on every child.
type rlimits struct {
	as  uint64 // RLIMIT_AS in bytes; 0 = none
	cpu uint64 // RLIMIT_CPU soft limit in whole seconds; 0 = none
}

// cpuGrace is how far past RLIMIT_CPU's soft limit (SIGXCPU, which ffmpeg handles like SIGTERM:
// it stops gracefully and exits 255) its hard limit (SIGKILL) lies, in seconds.
const cpuGrace = 1

func (r *Runner) limits() rlimits {
	var l rlimits
	if r.cfg.MaxMemory > 0 {
		l.as = uint64(r.cfg.MaxMemory)
	}
	if r.cfg.MaxCPUTime > 0 {
		l.cpu = uint64((r.cfg.MaxCPUTime + time.Second - 1) / time.Second)
	}
	return l
}

func (l rlimits) set() bool { return l.as > 0 || l.cpu > 0 }

// childSetup is what Runner.command decided for a child: its limits and its sandbox.
type childSetup struct {
	lim   rlimits
	sbx   *sandbox.Sandbox
	paths sandbox.Paths
}

// pendingSetup carries the setup of a command from Runner.command to group.start, which
// applies it as the child starts: every ffmpeg and ffprobe is built by one and started by the
// other.
var pendingSetup sync.Map // *exec.Cmd -> childSetup

// sandbox is l as the sandbox's apply stage sets it.
func (l rlimits) sandbox() sandbox.Limits {
	sl := sandbox.Limits{AS: l.as}
	if l.cpu > 0 {
		sl.CPU, sl.CPU2 = l.cpu, l.cpu+cpuGrace
	}
	return sl
}

// apply sets the limits on the child pid with prlimit(2) and returns the limits it set. Only
// the child is limited, never the worker: Go offers no hook between fork and exec, and
// setrlimit in the parent would limit the whole worker (rlimits are per process), so the limits
// are set from outside right after the child started. See group.start for the window this
// leaves.
func (l rlimits) apply(pid int) (rlimits, error) {
	var set rlimits
	if pid <= 0 || pid == os.Getpid() {
		return set, fmt.Errorf("ffmpeg: refusing to set resource limits on pid %d", pid)
	}
	apply := func(res int, cur, hard uint64) (uint64, error) {
		var old unix.Rlimit
		if err := unix.Prlimit(pid, res, nil, &old); err != nil {
			return 0, err
		}
		// Lowering a limit is always allowed, raising the hard one is not: stay within what
		// the child inherited.
		nl := unix.Rlimit{Cur: min(cur, old.Max), Max: min(hard, old.Max)}
		return nl.Cur, unix.Prlimit(pid, res, &nl, nil)
	}
	var err error
	if l.as > 0 {
		if set.as, err = apply(unix.RLIMIT_AS, l.as, l.as); err != nil {
			return set, fmt.Errorf("RLIMIT_AS: %w", err)
		}
	}
	if l.cpu > 0 {
		if set.cpu, err = apply(unix.RLIMIT_CPU, l.cpu, l.cpu+cpuGrace); err != nil {
			return set, fmt.Errorf("RLIMIT_CPU: %w", err)
		}
	}
	return set, nil
}

// cpuLimitHit reports whether the kernel signalled pid, an exited but unreaped child, for its
// CPU limit: each SIGXCPU at the soft limit raises the soft limit by a second, so a soft limit
// above the one set is the kernel's own record. (The CPU time in rusage cannot tell: the kernel
// checks tick-sampled time, which runs ahead of the precise time rusage reports on a busy
// machine.)
func cpuLimitHit(pid int, set uint64) bool {
	var rl unix.Rlimit
	return set > 0 && unix.Prlimit(pid, unix.RLIMIT_CPU, nil, &rl) == nil && rl.Cur > set
}

// memoryPatterns are how ffmpeg, ffprobe and their libraries report a failed allocation.
var memoryPatterns = []string{"cannot allocate memory", "out of memory", "failed to allocate", "bad_alloc"}

// exceeded says whether a failed child ended because of the limits: it used up its CPU time
// (cpuHit, from cpuLimitHit, or death by SIGXCPU: ffprobe does not handle it; ffmpeg stops
// gracefully and exits 255, or gets SIGKILL a second later), or an allocation failed while an
// address-space limit was set. Without a limit an allocation failure is the system's shortage
// (transient); with one it is the job's own demand: with overcommit, malloc fails for the limit
// long before it fails for the machine, whose shortage shows as the OOM killer's SIGKILL.
func (l rlimits) exceeded(ps *os.ProcessState, stderr string, cpuHit bool) (string, bool) {
	if ps == nil {
		return "", false
	}
	if l.cpu > 0 {
		ws, _ := ps.Sys().(syscall.WaitStatus)
		if cpuHit || (ws.Signaled() && ws.Signal() == syscall.SIGXCPU) {
			used := ps.UserTime() + ps.SystemTime()
			return fmt.Sprintf("used up its CPU time limit of %s (Config.MaxCPUTime): %.2fs of CPU", time.Duration(l.cpu)*time.Second, used.Seconds()), true
		}
	}
	if l.as > 0 {
		for _, raw := range strings.Split(stderr, "\n") {
			line := cleanLine(raw)
			lower := strings.ToLower(line)
			for _, p := range memoryPatterns {
				if strings.Contains(lower, p) {
					return fmt.Sprintf("ran out of its memory limit of %d MiB address space (Config.MaxMemory): %s", l.as>>20, line), true
				}
			}
		}
	}
	return "", false
}
