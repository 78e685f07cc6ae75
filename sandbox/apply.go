package sandbox

import (
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// apply is the apply stage: it restricts this process in place, then execs ffmpeg (same pid,
// so the launcher's child is ffmpeg). Landlock binds the calling thread only: the goroutine is
// locked to the thread that restricts itself and execs. On failure it writes why to the error
// pipe (the fd after ffmpeg's) and exits.
func apply() {
	runtime.LockOSThread()
	pol, err := readPolicy()
	errFd := 3 + pol.Files
	fail := func(err error) {
		_, _ = unix.Write(errFd, []byte(err.Error()))
		os.Exit(exitSetup)
	}
	if err != nil {
		fail(err)
	}
	syscall.CloseOnExec(errFd)
	if len(os.Args) < 2 {
		fail(fmt.Errorf("sandbox: no program"))
	}
	// Everything that allocates comes first: after the address-space limit only raw calls.
	bin, err := unix.BytePtrFromString(os.Args[1])
	if err != nil {
		fail(err)
	}
	argv, err := syscall.SlicePtrFromStrings(os.Args[1:])
	if err != nil {
		fail(err)
	}
	envv, err := syscall.SlicePtrFromStrings(pol.Env)
	if err != nil {
		fail(err)
	}
	ruleset := -1
	if pol.Landlock > 0 {
		rules := []pathRule{selfRule()}
		for _, r := range pol.Rules {
			rules = append(rules, pathRule{r.Path, r.Access})
		}
		if ruleset, err = landlockRuleset(pol.Landlock, rules); err != nil {
			fail(fmt.Errorf("sandbox: %w", err))
		}
	}
	prog := seccompFilter()
	if err := restrict(pol, ruleset, prog); err != nil {
		fail(fmt.Errorf("sandbox: %w", err))
	}
	lim := rlimits(pol.Limits)
	for _, l := range lim {
		if _, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, 0, uintptr(l.res), uintptrOf(&l.rl), 0, 0, 0); e != 0 {
			fail(fmt.Errorf("sandbox: setrlimit %d: %w", l.res, e))
		}
	}
	_, _, e := unix.RawSyscall(unix.SYS_EXECVE, uintptrOf(bin), uintptrOf(&argv[0]), uintptrOf(&envv[0]))
	fail(fmt.Errorf("sandbox: exec %s: %w", os.Args[1], e))
}

// restrict drops to the sandbox user, re-arms the parent-death signal (a credential change
// clears it), sets no_new_privs and applies Landlock and seccomp, in the order each needs.
func restrict(pol policy, ruleset int, prog []unix.SockFilter) error {
	launcher := os.Getppid()
	if pol.UID >= 0 {
		if err := setUser(pol.UID, pol.GID); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() != launcher {
		return fmt.Errorf("the launcher died")
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if ruleset >= 0 {
		if err := landlockRestrict(ruleset); err != nil {
			return err
		}
		_ = unix.Close(ruleset)
	}
	if pol.Seccomp {
		return installSeccomp(prog)
	}
	return nil
}

type rlimit struct {
	res int
	rl  unix.Rlimit
}

// rlimits are the limits to set, each within what this process inherited.
func rlimits(l Limits) []rlimit {
	var out []rlimit
	add := func(res int, cur, hard uint64) {
		var old unix.Rlimit
		if cur == 0 || unix.Getrlimit(res, &old) != nil {
			return
		}
		out = append(out, rlimit{res, unix.Rlimit{Cur: min(cur, old.Max), Max: min(hard, old.Max)}})
	}
	add(unix.RLIMIT_AS, l.AS, l.AS)
	add(unix.RLIMIT_CPU, l.CPU, l.CPU2)
	return out
}
