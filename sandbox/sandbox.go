package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Mode says how much sandbox the worker insists on.
type Mode string

// Modes. The default is ModeOn.
const (
	ModeOff    Mode = "off"    // children run unconfined, as before
	ModeOn     Mode = "on"     // every layer the kernel offers; missing ones are reported
	ModeStrict Mode = "strict" // like on, but New fails unless every layer is available
)

// Config configures a Sandbox. Zero values take the documented defaults.
type Config struct {
	// Mode is off, on or strict; "" = on.
	Mode Mode
	// User is the unprivileged user ffmpeg runs as when the worker runs as root (a name or a
	// numeric uid); "" = nobody. Its primary group is used, with no supplementary groups. A
	// dedicated user is better than nobody: another service's nobody could then not signal
	// or read a running ffmpeg. Ignored when the worker is not root.
	User string
	// SpoolDir is the directory whose files the worker makes for ffmpeg (spooled inputs,
	// faststart outputs, split GOP directories): those are handed to User (chown, mode kept)
	// before a run. Files elsewhere must already be readable by User. "" = os.TempDir().
	SpoolDir string
	// ReadOnly are more paths a child may read and execute besides the system ones (/usr,
	// /lib*, /etc, ...) and the directory of the binary it runs: an ffmpeg whose libraries live
	// elsewhere (/opt/ffmpeg), or a test's fake ffmpeg.
	ReadOnly []string
}

// Layer names, as Status lists them.
const (
	LayerNetNS    = "netns"
	LayerNoNewPri = "no_new_privs"
	LayerSeccomp  = "seccomp"
	LayerLandlock = "landlock"
	LayerUser     = "user"
)

// Status is what a Sandbox applies: shown in the worker registry and /readyz.
type Status struct {
	Mode Mode `json:"mode"`
	// Layers in effect, e.g. netns, no_new_privs, seccomp, landlock (abi 7), user (nobody 65534).
	Layers []string `json:"layers"`
	// Missing are the layers left out, each with the reason.
	Missing []string `json:"missing,omitempty"`
}

// String is a one-line summary for logs and /readyz.
func (s Status) String() string {
	if s.Mode == ModeOff {
		return "sandbox off"
	}
	out := "sandbox " + string(s.Mode) + ": " + strings.Join(s.Layers, ", ")
	if len(s.Missing) > 0 {
		out += "; missing: " + strings.Join(s.Missing, "; ")
	}
	return out
}

// Sandbox wraps child commands. A nil *Sandbox, or one with ModeOff, wraps nothing.
type Sandbox struct {
	cfg      Config
	status   Status
	netFlags uintptr // Cloneflags for the launcher; 0 = no namespace
	userns   bool    // netFlags include CLONE_NEWUSER (worker not root)
	landlock int     // ABI in use; 0 = none
	seccomp  bool
	uid, gid int // -1 = keep the worker's
}

// New validates cfg, finds out which layers the kernel offers and, with ModeStrict, fails
// naming the missing ones.
func New(cfg Config) (*Sandbox, error) {
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeOn
	case ModeOff, ModeOn, ModeStrict:
	default:
		return nil, fmt.Errorf("sandbox: Config.Mode must be off, on or strict, got %q", cfg.Mode)
	}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = os.TempDir()
	}
	if cfg.User == "" {
		cfg.User = "nobody"
	}
	s := &Sandbox{cfg: cfg, uid: -1, gid: -1, status: Status{Mode: cfg.Mode}}
	if cfg.Mode == ModeOff {
		return s, nil
	}
	if err := s.probe(); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeStrict && len(s.status.Missing) > 0 {
		return nil, fmt.Errorf("sandbox: strict, but layers are missing: %s", strings.Join(s.status.Missing, "; "))
	}
	return s, nil
}

// Status reports the layers in effect; a nil Sandbox is off.
func (s *Sandbox) Status() Status {
	if s == nil {
		return Status{Mode: ModeOff}
	}
	return s.status
}

// Enabled reports whether Wrap confines children.
func (s *Sandbox) Enabled() bool { return s != nil && s.cfg.Mode != ModeOff }

func (s *Sandbox) have(layer string) { s.status.Layers = append(s.status.Layers, layer) }
func (s *Sandbox) lack(layer string, why error) {
	s.status.Missing = append(s.status.Missing, layer+": "+why.Error())
}

// probe finds the layers this kernel and this worker's privileges allow.
func (s *Sandbox) probe() error {
	root := os.Geteuid() == 0
	if root {
		uid, gid, err := lookupUser(s.cfg.User)
		if err != nil {
			return fmt.Errorf("sandbox: Config.User: %w", err)
		}
		if uid == 0 {
			return fmt.Errorf("sandbox: Config.User %q is root", s.cfg.User)
		}
		if err := searchable(s.cfg.SpoolDir, uid, gid); err != nil {
			// ffmpeg could not reach the job's files as that user: it keeps the worker's,
			// confined by the other layers (strict refuses to start; the warning says what to
			// change).
			s.lack(LayerUser, fmt.Errorf("spool_dir %w", err))
		} else {
			s.uid, s.gid = uid, gid
			s.have(fmt.Sprintf("%s (%s %d)", LayerUser, s.cfg.User, uid))
		}
	} else {
		s.have(fmt.Sprintf("%s (worker's uid %d)", LayerUser, os.Geteuid()))
	}
	s.probeNetNS(root)
	s.have(LayerNoNewPri)
	if err := seccompAvailable(); err != nil {
		s.lack(LayerSeccomp, err)
	} else {
		s.seccomp = true
		s.have(LayerSeccomp)
	}
	if abi, err := landlockABI(); err != nil {
		s.lack(LayerLandlock, err)
	} else {
		s.landlock = abi
		s.have(fmt.Sprintf("%s (abi %d)", LayerLandlock, abi))
	}
	return nil
}

// probeNetNS starts a launcher that exits at once in a new network namespace: the only sure
// test of what this kernel, its sysctls and LSMs allow.
func (s *Sandbox) probeNetNS(root bool) {
	flags := uintptr(unix.CLONE_NEWNET)
	if !root {
		flags |= unix.CLONE_NEWUSER
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{envExec + "=" + stageProbe}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if !root {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
	}
	if err := cmd.Run(); err != nil {
		why := fmt.Errorf("cannot create a network namespace (%w)", err)
		if !root {
			why = fmt.Errorf("the worker is not root and cannot create a user namespace (%w)", err)
		}
		s.lack(LayerNetNS, why)
		return
	}
	s.netFlags, s.userns = flags, !root
	s.have(LayerNetNS)
}

// lookupUser resolves a name or a numeric uid to its uid and primary gid.
func lookupUser(name string) (int, int, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr != nil {
			return 0, 0, err
		}
		if u, err = user.LookupId(name); err != nil {
			return 0, 0, err
		}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, err
	}
	return uid, gid, nil
}

// searchable checks that uid:gid may search (traverse) dir and each directory above it.
func searchable(dir string, uid, gid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if !permits(d, uid, gid, 0o1) {
			return fmt.Errorf("%s: the sandbox user (uid %d) cannot search %s: give it search permission (chmod o+x, or chgrp to its group and chmod g+x) or choose another spool_dir or sandbox_user", dir, uid, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// permits reports whether uid:gid has the permission bits want (r=4, w=2, x=1) on path.
func permits(path string, uid, gid int, want uint32) bool {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return false
	}
	switch {
	case int(st.Uid) == uid:
		return st.Mode>>6&want == want
	case int(st.Gid) == gid:
		return st.Mode>>3&want == want
	}
	return st.Mode&want == want
}

var errNoSeccomp = errors.New("the kernel has no seccomp filters")

func seccompAvailable() error {
	if auditArch == 0 {
		return errors.New("no seccomp filter for this architecture")
	}
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return errNoSeccomp
	}
	action := uint32(unix.SECCOMP_RET_ERRNO)
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptrOf(&action)); e != 0 {
		return fmt.Errorf("%w (%w)", errNoSeccomp, e)
	}
	return nil
}
