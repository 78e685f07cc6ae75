package ffmpeg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/sandbox"
)

// group tracks a child that leads its own process group. Signals to the
// group are sent only while the leader is unreaped: a zombie leader keeps
// the group id reserved, so a signal can never hit a stranger that reused
// the id.
type group struct {
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited bool
	lim    rlimits // as set on ffmpeg
	cpuHit bool    // ffmpeg was signalled for its CPU limit
	sbx    *sandbox.Child
	sbxErr string // the sandbox's launcher could not start ffmpeg
}

// start starts cmd as the group's leader and applies what Runner.command registered for
// it. Unsandboxed, the resource limits (RLIMIT_AS, RLIMIT_CPU) are set with prlimit(2) right
// after the child exists: Go has no hook between fork and exec, and limiting the worker itself
// is not an option. The window is small and harmless: cmd.Start returns once the exec
// succeeded, and the limits are in place microseconds later, while the dynamic loader is still
// mapping ffmpeg's libraries (tens of milliseconds) and before main() has parsed an option.
// For pipe input (the normal case) no byte of the input exists for the child before the limits
// do, because the caller writes stdin only after Start returned. A child whose limits cannot
// be set is killed: the limits fail closed. Sandboxed, the leader is the sandbox's launcher and
// ffmpeg sets the limits on itself before it execs (no window at all).
func (g *group) start(cmd *exec.Cmd) error {
	g.mu.Lock()
	v, _ := pendingSetup.LoadAndDelete(cmd)
	setup, _ := v.(childSetup)
	if setup.sbx != nil {
		child, err := setup.sbx.Wrap(cmd, setup.paths, setup.lim.sandbox())
		if err != nil {
			g.mu.Unlock()
			return err
		}
		g.sbx, g.lim = child, setup.lim
	}
	// Holding mu across Start makes an early Cancel (ctx done while
	// starting) wait until cmd.Process is set.
	if err := cmd.Start(); err != nil {
		g.closeSandbox()
		g.mu.Unlock()
		return err
	}
	if g.sbx != nil {
		g.sbx.Started()
	} else if setup.lim.set() {
		set, err := setup.lim.apply(cmd.Process.Pid)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			g.mu.Unlock()
			_ = cmd.Wait() // outside mu: a concurrent Cancel takes it
			return fmt.Errorf("set resource limits: %w", err)
		}
		g.lim = set
	}
	preferOOMKill(cmd.Process.Pid)
	g.cmd = cmd
	g.mu.Unlock()
	return nil
}

func (g *group) closeSandbox() {
	if g.sbx != nil {
		g.sbx.Close()
	}
}

// sandboxFailure is the error of a child whose sandbox could not be set up (ffmpeg never
// ran), nil otherwise; valid after awaitExit.
func (g *group) sandboxFailure(op string, args []string, tail string) error {
	if g.sbxErr == "" {
		return nil
	}
	return &Error{Op: op, Args: args, Kind: ErrInternal, Reason: "sandbox: " + g.sbxErr, StderrTail: tail}
}

// preferOOMKill makes the kernel's OOM killer take ffmpeg before anything else, the worker
// above all: a bomb costs its own job, never the worker and the jobs beside it. Raising one's
// child's score needs no privilege; best effort.
func preferOOMKill(pid int) {
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte("1000"), 0)
}

// signal sends sig to the whole group unless the leader already exited;
// it reports whether the signal was sent.
func (g *group) signal(sig syscall.Signal) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd == nil || g.exited {
		return false
	}
	_ = syscall.Kill(-g.cmd.Process.Pid, sig)
	return true
}

// awaitExit blocks until the leader has exited without reaping it, then
// SIGKILLs whatever else is still in its group: no helper ffmpeg may have
// started outlives it. cmd.Wait reaps afterwards.
func (g *group) awaitExit() {
	pid := g.cmd.Process.Pid
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	g.mu.Lock()
	g.exited = true
	if g.sbx != nil {
		// The launcher read ffmpeg's record before it reaped ffmpeg and exited.
		r := g.sbx.Report()
		g.cpuHit, g.sbxErr = r.CPUHit, r.Error
		g.sbx.Close()
	} else {
		g.cpuHit = cpuLimitHit(pid, g.lim.cpu) // readable until the leader is reaped
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	g.mu.Unlock()
}

// Process is a running ffmpeg. The caller writes the input into Stdin
// (closing it at EOF), reads every Output to EOF, then calls Wait once.
// Close releases the parent's pipe ends after that.
type Process struct {
	args      []string
	cmd       *exec.Cmd
	g         group
	killDelay time.Duration
	lim       rlimits
	tolerate  bool // Config.TolerateInputErrors

	stdin    *os.File
	outputs  []*os.File
	stderrR  *os.File
	progR    *os.File
	progress chan Progress
	tail     *tailBuffer

	stopOnce sync.Once
	stopped  bool          // under g.mu: we signalled a live process
	stopCh   chan struct{} // closed by Stop
	exitCh   chan struct{} // closed when the leader exited (not yet reaped)
	waitDone chan struct{} // closed after cmd.Wait
	waitErr  error
	readers  sync.WaitGroup // stderr and progress readers
	bg       sync.WaitGroup // waiter and supervisor

	waitOnce sync.Once
	err      error
}

// progressBuffer is the capacity of the Progress channel; when it is full
// the oldest value is dropped, never the parser blocked.
const progressBuffer = 16

// Start runs ffmpeg for s. The argv is Runner.Args(s). Canceling ctx
// stops the process like Stop; Wait then returns an ErrStopped error.
//
// The process runs in its own process group with SIGKILL as its
// parent-death signal, stdin is a pipe (none for file input), output i is
// a pipe on fd 3+i and -progress goes to the pipe after the last output.
func (r *Runner) Start(ctx context.Context, s Spec) (*Process, error) {
	args, err := r.Args(s)
	if err != nil {
		return nil, err
	}
	p := &Process{
		args:      args,
		killDelay: r.cfg.KillDelay,
		lim:       r.limits(),
		tolerate:  r.cfg.TolerateInputErrors,
		progress:  make(chan Progress, progressBuffer),
		stopCh:    make(chan struct{}),
		exitCh:    make(chan struct{}),
		waitDone:  make(chan struct{}),
	}
	var parent, child []*os.File // closed on failure / after start
	fail := func(err error) (*Process, error) {
		closeAll(parent)
		closeAll(child)
		return nil, err
	}
	pipe := func() (*os.File, *os.File, error) { return newPipe(r.cfg.PipeSize) }

	var stdinR *os.File
	if s.Input.Path == "" {
		if stdinR, p.stdin, err = pipe(); err != nil {
			return fail(startErr(ctx, "transcode", args, err))
		}
		parent, child = append(parent, p.stdin), append(child, stdinR)
	}
	extra := make([]*os.File, 0, len(s.Outputs)+1)
	for range s.Outputs {
		or, ow, err := pipe()
		if err != nil {
			return fail(startErr(ctx, "transcode", args, err))
		}
		p.outputs = append(p.outputs, or)
		parent, child = append(parent, or), append(child, ow)
		extra = append(extra, ow)
	}
	progW := (*os.File)(nil)
	if p.progR, progW, err = pipe(); err != nil {
		return fail(startErr(ctx, "transcode", args, err))
	}
	parent, child = append(parent, p.progR), append(child, progW)
	extra = append(extra, progW)
	stderrW := (*os.File)(nil)
	if p.stderrR, stderrW, err = pipe(); err != nil {
		return fail(startErr(ctx, "transcode", args, err))
	}
	parent, child = append(parent, p.stderrR), append(child, stderrW)

	cmd := r.command(ctx, r.cfg.FFmpeg, args)
	if stdinR != nil {
		cmd.Stdin = stdinR
	}
	cmd.Stderr = stderrW
	cmd.ExtraFiles = extra
	cmd.Cancel = func() error { p.Stop(); return nil }
	// exec kills only the leader after WaitDelay (r.command set it to
	// KillDelay); the supervisor below kills the whole group at the same
	// deadline.
	p.cmd = cmd
	if err := p.g.start(cmd); err != nil {
		return fail(startErr(ctx, "transcode", args, err))
	}
	// The child has its copies; ours would keep pipes from reaching EOF.
	closeAll(child)
	p.tail = newTailBuffer(r.cfg.StderrTail)

	p.readers.Add(2)
	go p.readStderr()
	go p.readProgress()
	p.bg.Add(2)
	go p.waiter()
	go p.supervise()
	return p, nil
}

// startErr is a failure before the child ran.
func startErr(ctx context.Context, op string, args []string, err error) error {
	e := &Error{Op: op, Args: args, Kind: ErrInternal, Reason: err.Error()}
	if ctx.Err() != nil {
		e.Kind, e.Reason = ErrStopped, ctx.Err().Error()
	}
	return e
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			_ = f.Close()
		}
	}
}

func (p *Process) readStderr() {
	defer p.readers.Done()
	defer func() { _ = p.stderrR.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := p.stderrR.Read(buf)
		if n > 0 {
			_, _ = p.tail.Write(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

func (p *Process) readProgress() {
	defer p.readers.Done()
	defer close(p.progress)
	defer func() { _ = p.progR.Close() }()
	_ = ParseProgress(p.progR, p.publish)
}

// publish never blocks: when the consumer is slow, the oldest value goes.
func (p *Process) publish(pr Progress) {
	for {
		select {
		case p.progress <- pr:
			return
		default:
		}
		select {
		case <-p.progress:
		default:
		}
	}
}

func (p *Process) waiter() {
	defer p.bg.Done()
	p.g.awaitExit()
	close(p.exitCh)
	p.waitErr = p.cmd.Wait()
	close(p.waitDone)
}

// supervise turns a stop request into SIGKILL for the group once
// KillDelay has passed without the leader exiting.
func (p *Process) supervise() {
	defer p.bg.Done()
	select {
	case <-p.stopCh:
	case <-p.exitCh:
		return
	}
	t := time.NewTimer(p.killDelay)
	defer t.Stop()
	select {
	case <-t.C:
		p.g.signal(syscall.SIGKILL)
	case <-p.exitCh:
	}
}

// Stdin is the write end of ffmpeg's input pipe: write the input into it
// and close it at EOF. Nil for file input. Stop closes it too, so a
// writer may see os.ErrClosed after a stop.
func (p *Process) Stdin() *os.File { return p.stdin }

// Output is the read end of output i's pipe. Read it to EOF: ffmpeg
// blocks when a pipe is full.
func (p *Process) Output(i int) *os.File { return p.outputs[i] }

// Progress delivers parsed -progress blocks, latest wins when the
// consumer is slow; the channel is closed when ffmpeg exits.
func (p *Process) Progress() <-chan Progress { return p.progress }

// Pid is the process group id of ffmpeg: its pid, or sandboxed, its launcher's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Args is the argv ffmpeg runs with, without the program name.
func (p *Process) Args() []string { return p.args }

// Stop stops ffmpeg gracefully now: SIGTERM to its group and stdin closed
// (ffmpeg blocked reading a pipe does not notice SIGTERM until the read
// returns), then SIGKILL to the group after KillDelay. Idempotent; a
// no-op once ffmpeg has exited.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		p.g.mu.Lock()
		if p.g.cmd != nil && !p.g.exited {
			p.stopped = true
			_ = syscall.Kill(-p.g.cmd.Process.Pid, syscall.SIGTERM)
		}
		p.g.mu.Unlock()
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		close(p.stopCh)
	})
}

// Wait waits for ffmpeg to exit and for the stderr and progress readers
// to finish. It returns nil on exit status 0 and a classified *Error
// otherwise (ErrStopped if we stopped it). Later calls return the same
// result.
func (p *Process) Wait() error {
	p.waitOnce.Do(func() {
		<-p.waitDone
		p.bg.Wait()
		// The group is dead, so the readers see EOF; a process that left
		// the group could still hold the pipes, hence the deadline.
		done := make(chan struct{})
		go func() { p.readers.Wait(); close(done) }()
		t := time.NewTimer(p.killDelay)
		select {
		case <-done:
		case <-t.C:
			_ = p.stderrR.Close()
			_ = p.progR.Close()
			<-done
		}
		t.Stop()
		p.err = p.result(p.tail.release())
	})
	return p.err
}

func (p *Process) result(tail string) error {
	if err := p.g.sandboxFailure("transcode", p.args, tail); err != nil {
		return err
	}
	ps := p.cmd.ProcessState
	if ps == nil {
		reason := "wait failed"
		if p.waitErr != nil {
			reason = p.waitErr.Error()
		}
		return &Error{Op: "transcode", Args: p.args, Reason: reason, StderrTail: tail, Kind: ErrInternal}
	}
	code, signaled := exitStatus(ps)
	p.g.mu.Lock()
	stopped, cpuHit := p.stopped, p.g.cpuHit
	p.g.mu.Unlock()
	if code == 0 && !signaled {
		// ffmpeg 5.1 exits 0 after a truncated input or corrupt packets it skipped or
		// concealed: the output would silently miss or garble part of the input.
		if !stopped && !p.tolerate {
			if reason, damaged := DamagedInput(tail); damaged {
				return &Error{Op: "transcode", Args: p.args, Reason: reason, StderrTail: tail, Kind: ErrInvalidInput}
			}
		}
		return nil
	}
	e := &Error{Op: "transcode", Args: p.args, ExitCode: code, StderrTail: tail}
	if signaled {
		e.Signal = unix.SignalName(syscall.Signal(code - 128))
	}
	e.Kind, e.Reason = Classify(code, signaled, stopped, tail)
	if !stopped {
		if reason, ok := p.lim.exceeded(ps, tail, cpuHit); ok {
			e.Kind, e.Reason = ErrResourceLimit, reason
		}
	}
	return e
}

// StderrTail is the last Config.StderrTail bytes of ffmpeg's stderr so far
// (all of it once Wait returned).
func (p *Process) StderrTail() string { return p.tail.String() }

// Close closes the parent's ends of the stdin and output pipes. Call it
// after Wait and after the outputs were read; closing an output early
// makes ffmpeg fail with a broken pipe. Idempotent.
func (p *Process) Close() error {
	var errs []error
	for _, f := range append([]*os.File{p.stdin}, p.outputs...) {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
