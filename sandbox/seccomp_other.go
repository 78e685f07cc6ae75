//go:build !amd64 && !arm64

package sandbox

import "golang.org/x/sys/unix"

// auditArch 0 matches no architecture: seccompAvailable refuses such a build first.
const auditArch = 0

var (
	archPrologue []unix.SockFilter
	deniedArch   []uintptr
)
