package ffmpeg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a Runner. Zero values take the documented defaults.
type Config struct {
	FFmpeg, FFprobe string        // binaries; default "ffmpeg", "ffprobe", resolved with exec.LookPath
	KillDelay       time.Duration // SIGTERM to the group, then SIGKILL after this; default 3s
	StderrTail      int           // bytes of stderr kept (the last N); default 16 KiB
	PipeSize        int           // F_SETPIPE_SZ for every pipe; default 1 MiB, best effort
	Threads         int           // -threads for encoders; 0 = ffmpeg default
}

// Defaults for zero Config fields.
const (
	DefaultKillDelay  = 3 * time.Second
	DefaultStderrTail = 16 << 10
	DefaultPipeSize   = 1 << 20
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

// command builds a short-lived child (ffprobe, -version) in its own
// process group with a parent-death signal; run it with runGroup.
func (r *Runner) command(ctx context.Context, bin string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = r.cfg.KillDelay
	return cmd
}

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
	return cmd.Wait()
}

// runError turns a failed short-lived run into an *Error.
func (r *Runner) runError(ctx context.Context, op string, args []string, cmd *exec.Cmd, err error, tail string) error {
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
