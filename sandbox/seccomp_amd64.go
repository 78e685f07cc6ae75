package sandbox

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_X86_64

// archPrologue kills a process that calls the x32 ABI (syscall numbers with bit 30 set): its
// numbers are not the ones the filter checks.
var archPrologue = []unix.SockFilter{
	{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 0, Jf: 1, K: 0x40000000},
	{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_KILL_PROCESS},
}

// deniedArch are x86-64's own: port I/O, LDT changes, the legacy module and sysctl calls.
var deniedArch = []uintptr{
	unix.SYS_IOPL, unix.SYS_IOPERM, unix.SYS_MODIFY_LDT, unix.SYS_USELIB, unix.SYS__SYSCTL,
	unix.SYS_CREATE_MODULE, unix.SYS_GET_KERNEL_SYMS, unix.SYS_QUERY_MODULE, unix.SYS_LOOKUP_DCOOKIE,
	unix.SYS_USTAT, unix.SYS_SYSFS,
}
