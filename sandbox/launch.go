package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// exitSetup is the launcher's exit status when the sandbox could not be set up (the report
// says why): ffmpeg never ran.
const exitSetup = 125

// The stages run from this init, before any other package's init that imports this one and
// before main or TestMain: a re-executed worker or test binary does nothing else.
func init() {
	switch os.Getenv(envExec) {
	case "":
		return
	case stageProbe:
		os.Exit(0)
	case stageLaunch:
		os.Exit(launch())
	case stageApply:
		apply() // never returns
	}
	fmt.Fprintln(os.Stderr, "sandbox: unknown stage", os.Getenv(envExec))
	os.Exit(exitSetup)
}

func readPolicy() (policy, error) {
	var p policy
	if err := json.Unmarshal([]byte(os.Getenv(envPolicy)), &p); err != nil {
		return p, fmt.Errorf("sandbox: policy: %w", err)
	}
	return p, nil
}

// launch is the launcher: it starts the apply stage (which becomes ffmpeg), stays its parent,
// kills and reaps it when the worker goes, and exits as it did.
func launch() int {
	// ffmpeg's parent-death signal follows the thread that forked it: this one, for good.
	runtime.LockOSThread()
	pol, err := readPolicy()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitSetup
	}
	ctl := os.NewFile(uintptr(3+pol.Files), "sandbox-ctl")
	syscall.CloseOnExec(3 + pol.Files)
	_ = unix.Prctl(unix.PR_SET_NAME, uintptrOf(&[]byte(launcherName + "\x00")[0]), 0, 0, 0)
	sigs := make(chan os.Signal, 8)
	// Caught, not ignored: an ignored signal would stay ignored in ffmpeg across exec. The
	// worker signals the whole group, so ffmpeg has its own copy of each.
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, parentDeathSignal)
	if os.Getppid() != pol.Parent {
		return exitSetup // the worker died before the signal was caught
	}
	pid, err := startApply(pol)
	if err != nil {
		report(ctl, Report{Error: err.Error()})
		fmt.Fprintln(os.Stderr, err)
		return exitSetup
	}
	detachStdio(pol.Files)
	if err := dropToUser(pol); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	k := &killer{pid: pid}
	go k.onEOF(ctl)
	exited := make(chan struct{})
	go func() { waitExited(pid); close(exited) }()
	for done := false; !done; {
		select {
		case s := <-sigs:
			if s == parentDeathSignal && os.Getppid() != pol.Parent {
				k.kill()
			}
		case <-exited:
			done = true
		}
	}
	r := Report{CPUHit: cpuHit(pid, pol.Limits.CPU)}
	ws := k.reap()
	report(ctl, r)
	return exitAs(ws)
}

// startApply forks the apply stage with ffmpeg's stdio and pipes, and an error pipe in the
// control socket's place; it returns once ffmpeg runs, or with why the stage failed.
func startApply(pol policy) (int, error) {
	errR, errW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	defer func() { _ = errR.Close() }()
	files := make([]uintptr, 0, 4+pol.Files)
	for fd := range 3 + pol.Files {
		files = append(files, uintptr(fd))
	}
	files = append(files, errW.Fd())
	env := []string{envExec + "=" + stageApply, envPolicy + "=" + os.Getenv(envPolicy)}
	pid, err := syscall.ForkExec("/proc/self/exe", os.Args, &syscall.ProcAttr{
		Env: env, Files: files, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
	_ = errW.Close()
	if err != nil {
		return 0, fmt.Errorf("sandbox: start: %w", err)
	}
	// EOF: the stage exec'd ffmpeg (the pipe is close-on-exec); a message: it failed.
	msg := make([]byte, 4096)
	n, _ := errR.Read(msg)
	if n > 0 {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
		return 0, errors.New(string(msg[:n]))
	}
	return pid, nil
}

// dropToUser makes the launcher ffmpeg's user too, once ffmpeg runs: it then needs no
// privilege to read ffmpeg's limits (prlimit(2) on another user's process takes
// CAP_SYS_RESOURCE, which containers drop) and keeps none it does not need. The credential
// change clears the parent-death signal: it is armed again.
func dropToUser(pol policy) error {
	if pol.UID < 0 {
		return nil
	}
	if err := setUser(pol.UID, pol.GID); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(parentDeathSignal), 0, 0, 0); err != nil {
		return err
	}
	if os.Getppid() != pol.Parent {
		return errors.New("the worker died")
	}
	return nil
}

// setUser sets the real, effective and saved ids of every thread, with no supplementary groups.
func setUser(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}

// detachStdio closes the launcher's copies of ffmpeg's stdio and pipes: the worker must see
// EOF and EPIPE when ffmpeg, not the launcher, closes them.
func detachStdio(files int) {
	null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		return
	}
	for fd := range 3 {
		_ = unix.Dup2(null, fd)
	}
	_ = unix.Close(null)
	for fd := 3; fd < 3+files; fd++ {
		_ = unix.Close(fd)
	}
}

// killer kills ffmpeg at most until it is reaped: a reaped pid may belong to a stranger.
type killer struct {
	mu     sync.Mutex
	pid    int
	reaped bool
}

func (k *killer) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.reaped {
		_ = unix.Kill(k.pid, unix.SIGKILL)
	}
}

// onEOF kills ffmpeg when the worker's end of the control socket closes: the worker died
// (the backstop for a parent-death signal tied to a worker thread that exited) or gave up.
func (k *killer) onEOF(ctl *os.File) {
	var b [1]byte
	for {
		if _, err := ctl.Read(b[:]); err != nil {
			k.kill()
			return
		}
	}
}

func (k *killer) reap() unix.WaitStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(k.pid, &ws, 0, nil)
		if err != unix.EINTR {
			break
		}
	}
	k.reaped = true
	return ws
}

// waitExited blocks until pid has exited, leaving it unreaped (its rlimits still readable).
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			return
		}
	}
}

// cpuHit reports whether the kernel signalled pid (exited, unreaped) for its CPU limit: each
// SIGXCPU raises the soft limit by a second, so a soft limit above the one set is its record.
func cpuHit(pid int, soft uint64) bool {
	if soft == 0 {
		return false
	}
	var own, rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_CPU, &own) != nil || unix.Prlimit(pid, unix.RLIMIT_CPU, nil, &rl) != nil {
		return false
	}
	return rl.Cur > min(soft, own.Max)
}

func report(ctl *os.File, r Report) {
	b, _ := json.Marshal(r)
	_, _ = ctl.Write(append(b, '\n'))
}

// exitAs returns ffmpeg's exit code, or dies of the signal that killed ffmpeg.
func exitAs(ws unix.WaitStatus) int {
	if !ws.Signaled() {
		return ws.ExitStatus()
	}
	sig := ws.Signal()
	// No core of the launcher; the default action, not the Go runtime's handler; unblocked.
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	signal.Reset(sig)
	var dfl [4]uint64 // struct sigaction with SIG_DFL, on amd64 and arm64
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptrOf(&dfl), 0, 8, 0, 0)
	set := uint64(1) << (uint(sig) - 1)
	_, _, _ = unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, uintptrOf(&set), 0, 8, 0, 0)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	return 128 + int(sig) // not reached for a fatal signal
}
