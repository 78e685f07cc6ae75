package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// deniedSyscalls are refused with EPERM: what a demuxer, decoder, filter or encoder never
// calls, and what an exploit reaches for first (other processes' memory, the kernel's module,
// keyring, BPF and perf interfaces, mounts and namespaces, the clock, swap, reboot). The
// architecture's own extras are in deniedArch.
var deniedSyscalls = []uintptr{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_PROCESS_MADVISE,
	unix.SYS_KCMP, unix.SYS_PIDFD_GETFD,
	unix.SYS_MOUNT, unix.SYS_UMOUNT2, unix.SYS_PIVOT_ROOT, unix.SYS_CHROOT, unix.SYS_MOUNT_SETATTR,
	unix.SYS_MOVE_MOUNT, unix.SYS_OPEN_TREE, unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK,
	unix.SYS_UNSHARE, unix.SYS_SETNS,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME, unix.SYS_ADJTIMEX,
	unix.SYS_SETHOSTNAME, unix.SYS_SETDOMAINNAME, unix.SYS_SYSLOG, unix.SYS_VHANGUP,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT, unix.SYS_FANOTIFY_INIT,
	unix.SYS_PERSONALITY, unix.SYS_NFSSERVCTL,
}

// nsFlags are the clone flags that make namespaces: a child in a new user namespace would
// regain every capability there.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWPID |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUTS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low 32 bits of args[0] (both architectures are little-endian)
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }
func jeq(k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: jt, Jf: jf, K: k}
}

const (
	ldAbs  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	ret    = unix.BPF_RET | unix.BPF_K
	retOK  = unix.SECCOMP_RET_ALLOW
	retErr = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	// clone3 passes its flags in memory a filter cannot read: ENOSYS makes the C library fall
	// back to clone, whose flags it can.
	retNoSys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// seccompFilter is the program: a foreign architecture (or x32) kills the process; sockets and
// socket pairs only of AF_UNIX; clone without namespace flags; the denied calls fail EPERM;
// the rest is allowed.
func seccompFilter() []unix.SockFilter {
	p := []unix.SockFilter{
		stmt(ldAbs, offArch),
		jeq(auditArch, 1, 0),
		stmt(ret, unix.SECCOMP_RET_KILL_PROCESS),
		stmt(ldAbs, offNr),
	}
	p = append(p, archPrologue...)
	for _, nr := range []uintptr{unix.SYS_SOCKET, unix.SYS_SOCKETPAIR} {
		p = append(p, jeq(uint32(nr), 0, 4),
			stmt(ldAbs, offArg0),
			jeq(unix.AF_UNIX, 0, 1),
			stmt(ret, retOK),
			stmt(ret, retErr))
	}
	p = append(p, jeq(unix.SYS_CLONE, 0, 4),
		stmt(ldAbs, offArg0),
		unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K, Jt: 1, Jf: 0, K: nsFlags},
		stmt(ret, retOK),
		stmt(ret, retErr),
		jeq(unix.SYS_CLONE3, 0, 1),
		stmt(ret, retNoSys))
	for _, nr := range append(deniedSyscalls, deniedArch...) {
		p = append(p, jeq(uint32(nr), 0, 1), stmt(ret, retErr))
	}
	return append(p, stmt(ret, retOK))
}

// installSeccomp sets no_new_privs and loads the filter on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC): the Go runtime's threads die at exec, but until then none of
// them may stay unfiltered.
func installSeccomp(prog []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: unsafe.SliceData(prog)}
	r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptrOf(&fprog))
	if e != 0 {
		return fmt.Errorf("seccomp: %w", e)
	}
	if r != 0 {
		return fmt.Errorf("seccomp: thread %d could not be synchronised", r)
	}
	return nil
}
