package sandbox

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }

// landlockABI is the kernel's Landlock ABI version.
func landlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch {
	case e == unix.ENOSYS:
		return 0, errors.New("the kernel has no Landlock")
	case e == unix.EOPNOTSUPP:
		return 0, errors.New("the kernel has Landlock disabled (boot with lsm=...,landlock)")
	case e != 0:
		return 0, fmt.Errorf("landlock: %w", e)
	}
	return int(v), nil
}

// File access rights (files and directories) and those only a directory takes.
const (
	fsRead  = unix.LANDLOCK_ACCESS_FS_READ_FILE
	fsExec  = unix.LANDLOCK_ACCESS_FS_EXECUTE
	fsWrite = unix.LANDLOCK_ACCESS_FS_WRITE_FILE
	fsDir   = unix.LANDLOCK_ACCESS_FS_READ_DIR
	fsMake  = unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE
	fsFile  = fsRead | fsExec | fsWrite | unix.LANDLOCK_ACCESS_FS_TRUNCATE | unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
)

// handledFS is every filesystem right the ABI knows: all of them are refused unless a rule
// grants them.
func handledFS(abi int) uint64 {
	h := uint64(unix.LANDLOCK_ACCESS_FS_MAKE_SYM<<1 - 1) // ABI 1: EXECUTE .. MAKE_SYM
	if abi >= 2 {
		h |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		h |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		h |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return h
}

// rulesetAttr is struct landlock_ruleset_attr up to scoped (ABI 6); the size passed tells the
// kernel which fields this ABI has.
type rulesetAttr struct {
	fs, net, scoped uint64
}

// pathRule is a path and the rights granted beneath it.
type pathRule struct {
	path   string
	access uint64
}

// landlockRuleset builds a ruleset that refuses every file access but rules, and TCP bind and
// connect (ABI 4+), and keeps ffmpeg from signalling or reaching abstract sockets outside its
// domain (ABI 6+). It returns the ruleset's fd for restrict; the paths are opened now, while
// the process may still reach them.
func landlockRuleset(abi int, rules []pathRule) (int, error) {
	attr := rulesetAttr{fs: handledFS(abi)}
	size := unsafe.Sizeof(attr.fs)
	if abi >= 4 {
		attr.net = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size += unsafe.Sizeof(attr.net)
	}
	if abi >= 6 {
		attr.scoped = unix.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | unix.LANDLOCK_SCOPE_SIGNAL
		size += unsafe.Sizeof(attr.scoped)
	}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptrOf(&attr), size, 0)
	if e != 0 {
		return -1, fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	for _, r := range rules {
		if err := addPathRule(int(fd), r, attr.fs); err != nil {
			_ = unix.Close(int(fd))
			return -1, err
		}
	}
	return int(fd), nil
}

// addPathRule grants r beneath r.path; a path that does not exist is skipped (/lib32 on most
// systems). A file takes only the rights a file has.
func addPathRule(ruleset int, r pathRule, handled uint64) error {
	fd, err := unix.Open(r.path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("landlock: open %s: %w", r.path, err)
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("landlock: stat %s: %w", r.path, err)
	}
	access := r.access & handled
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		access &= fsFile
	}
	attr := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
	if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH, uintptrOf(&attr), 0, 0, 0); e != 0 {
		return fmt.Errorf("landlock_add_rule %s: %w", r.path, e)
	}
	return nil
}

// landlockRestrict puts the calling thread (and what it execs) under the ruleset. It needs
// no_new_privs first.
func landlockRestrict(ruleset int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); e != 0 {
		return fmt.Errorf("landlock_restrict_self: %w", e)
	}
	return nil
}

// selfRule is ffmpeg's own /proc entries: the apply stage's pid, which exec keeps.
func selfRule() pathRule {
	return pathRule{fmt.Sprintf("/proc/%d", os.Getpid()), fsRead | fsDir}
}

// systemRules are what every ffmpeg may read and execute: its libraries, its configuration
// (fonts, locales, the dynamic loader's cache), its own /proc entries, the CPU topology it
// counts threads from, and the harmless devices.
func systemRules(bin string, extra []string) []pathRule {
	rx := uint64(fsRead | fsExec | fsDir)
	var rules []pathRule
	for _, p := range []string{"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc",
		"/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/meminfo", "/dev/urandom", "/dev/random", "/dev/zero",
		"/var/cache/fontconfig"} { // fontconfig's cache: the subtitles filter (libass) finds fonts through it
		rules = append(rules, pathRule{p, rx})
	}
	rules = append(rules, pathRule{"/dev/null", fsRead | fsWrite})
	rules = append(rules, pathRule{dirOf(bin), rx})
	for _, p := range extra {
		rules = append(rules, pathRule{p, rx})
	}
	return rules
}
