package sandbox

import "golang.org/x/sys/unix"

const auditArch = unix.AUDIT_ARCH_AARCH64

// archPrologue is empty: arm64 has one syscall table.
var archPrologue []unix.SockFilter

// deniedArch are arm64's own.
var deniedArch = []uintptr{unix.SYS_LOOKUP_DCOOKIE}
