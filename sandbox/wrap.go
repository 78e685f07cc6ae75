package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Paths are the files a child may use besides the system ones; every path is absolute.
type Paths struct {
	Read  []string // inputs: read only
	Write []string // output files: read and write (created empty if missing)
	Dirs  []string // output directories: files made, written, read and removed in them
}

// Limits are resource limits the child sets on itself right before it execs ffmpeg, so that
// they hold from ffmpeg's first instruction; 0 = none. A limit above the worker's own hard
// limit is lowered to it.
type Limits struct {
	AS        uint64 // RLIMIT_AS, bytes, soft and hard
	CPU, CPU2 uint64 // RLIMIT_CPU soft and hard, seconds
}

// policy is what the worker tells the launcher and the apply stage, in envPolicy.
type policy struct {
	Parent   int      `json:"parent"` // the worker's pid
	Files    int      `json:"files"`  // fds from 3 on that ffmpeg gets (the control socket follows)
	UID      int      `json:"uid"`    // -1 = keep
	GID      int      `json:"gid"`
	Seccomp  bool     `json:"seccomp"`
	Landlock int      `json:"landlock"` // ABI; 0 = none
	Rules    []rule   `json:"rules"`
	Limits   Limits   `json:"limits"`
	Env      []string `json:"env"` // ffmpeg's
}

type rule struct {
	Path   string `json:"path"`
	Access uint64 `json:"access"`
}

// Report is what the launcher tells the worker after ffmpeg exited.
type Report struct {
	CPUHit bool   `json:"cpu_hit,omitempty"` // ffmpeg was signalled for its CPU limit
	Error  string `json:"error,omitempty"`   // the sandbox could not be set up; ffmpeg never ran
}

const (
	envExec     = "TRANSCODER_SANDBOX_EXEC"
	envPolicy   = "TRANSCODER_SANDBOX_POLICY"
	stageLaunch = "launch"
	stageApply  = "apply"
	stageProbe  = "probe"
	// launcherName is the launcher's comm: never "ffmpeg", which acceptance scripts look for.
	launcherName = "ffmpeg-sandbox"
	// parentDeathSignal is the launcher's: catchable, so that it can kill and reap ffmpeg.
	parentDeathSignal = syscall.SIGUSR1
)

// envKept is the environment ffmpeg keeps from the worker's: none of the worker's secrets
// (NATS passwords, S3 keys) reach a decoder.
var envKept = []string{"PATH=", "LANG=", "LANGUAGE=", "LC_", "TZ=", "TERM=", "FONTCONFIG_", "AV_LOG_FORCE_"}

// Child is the worker's side of one sandboxed child: the control socket to its launcher.
type Child struct {
	ctl, peer *os.File
}

// Wrap turns cmd, an ffmpeg or ffprobe command with Path, Args, Stdin/Stdout/Stderr,
// ExtraFiles and SysProcAttr set, into its launcher. It hands paths to the sandbox user first.
// Call Child.Started after cmd.Start succeeded, Child.Report once the launcher exited, and
// Child.Close in every case.
func (s *Sandbox) Wrap(cmd *exec.Cmd, paths Paths, lim Limits) (*Child, error) {
	rules, err := s.prepare(cmd.Path, paths)
	if err != nil {
		return nil, err
	}
	pol := policy{Parent: os.Getpid(), Files: len(cmd.ExtraFiles), UID: s.uid, GID: s.gid,
		Seccomp: s.seccomp, Landlock: s.landlock, Rules: rules, Limits: lim, Env: keptEnv(cmd.Env)}
	enc, err := json.Marshal(pol)
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: control socket: %w", err)
	}
	c := &Child{ctl: os.NewFile(uintptr(fds[0]), "sandbox-ctl"), peer: os.NewFile(uintptr(fds[1]), "sandbox-ctl-peer")}
	cmd.Args = append([]string{launcherName, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = "/proc/self/exe"
	cmd.Env = []string{envExec + "=" + stageLaunch, envPolicy + "=" + string(enc)}
	cmd.ExtraFiles = append(cmd.ExtraFiles, c.peer)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = parentDeathSignal
	cmd.SysProcAttr.Cloneflags |= s.netFlags
	if s.userns {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Geteuid(), HostID: os.Geteuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getegid(), HostID: os.Getegid(), Size: 1}}
	}
	return c, nil
}

// keptEnv is env (the process's own when nil) without what ffmpeg has no use for.
func keptEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	var out []string
	for _, kv := range env {
		for _, p := range envKept {
			if strings.HasPrefix(kv, p) {
				out = append(out, kv)
				break
			}
		}
	}
	return out
}

// Started drops the worker's copy of the launcher's end of the control socket, which the
// launcher now has: the worker then reads EOF once the launcher is gone.
func (c *Child) Started() { _ = c.peer.Close() }

// Report reads what the launcher reported; call it once the launcher has exited.
func (c *Child) Report() Report {
	b, err := io.ReadAll(io.LimitReader(c.ctl, 64<<10))
	var r Report
	if line := bytes.TrimSpace(b); len(line) > 0 {
		if jerr := json.Unmarshal(line, &r); jerr != nil {
			r.Error = "unreadable launcher report: " + jerr.Error()
		}
	} else if err != nil {
		r.Error = "launcher report: " + err.Error()
	}
	return r
}

// Close releases the control socket; a launcher still running takes it as the worker gone
// and kills ffmpeg.
func (c *Child) Close() {
	_ = c.ctl.Close()
	_ = c.peer.Close()
}

// prepare makes paths usable by the sandbox user and returns the Landlock rules of a child
// that runs bin.
func (s *Sandbox) prepare(bin string, p Paths) ([]rule, error) {
	var rules []rule
	add := func(path string, access uint64) { rules = append(rules, rule{path, access}) }
	for _, r := range systemRules(bin, s.cfg.ReadOnly) {
		add(r.path, r.access)
	}
	for _, f := range p.Read {
		if err := s.handOver(f, false); err != nil {
			return nil, err
		}
		add(f, fsRead)
	}
	for _, f := range p.Write {
		if err := s.handOver(f, true); err != nil {
			return nil, err
		}
		add(f, fsRead|fsWrite|unix.LANDLOCK_ACCESS_FS_TRUNCATE)
	}
	for _, d := range p.Dirs {
		if err := s.handOver(d, false); err != nil {
			return nil, err
		}
		add(d, fsRead|fsWrite|fsDir|fsMake|unix.LANDLOCK_ACCESS_FS_TRUNCATE)
	}
	return rules, nil
}

// handOver makes path usable by the sandbox user: a missing output file is created empty
// (Landlock grants rights on files that exist), and one of the worker's own spool files or
// directories is given to the user (chown, its mode kept). Anything else must already be
// readable (and writable, for outputs) by the user: the worker does not change files it did
// not make.
func (s *Sandbox) handOver(path string, create bool) error {
	if create {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		_ = f.Close()
	}
	if s.uid < 0 {
		return nil
	}
	if ownSpool(path, s.cfg.SpoolDir) {
		if err := os.Lchown(path, s.uid, s.gid); err != nil {
			return fmt.Errorf("sandbox: hand %s to the sandbox user: %w", path, err)
		}
		return nil
	}
	want := uint32(0o4)
	if create {
		want |= 0o2
	}
	if err := searchable(filepath.Dir(path), s.uid, s.gid); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if !permits(path, s.uid, s.gid, want) {
		return fmt.Errorf("sandbox: the sandbox user (uid %d) may not read %s, which is outside the spool directory %s", s.uid, path, s.cfg.SpoolDir)
	}
	return nil
}

// ownSpool reports whether path is one of the worker's own spool files: in dir, under a name
// of the worker's (transcoder-spool-..., transcoder-split-.../gop00001.ts, ...). Another
// file there (a user's, when the spool is /tmp) is left as it is.
func ownSpool(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(path))
	if err != nil || filepath.IsAbs(rel) || strings.HasPrefix(rel, "..") {
		return false
	}
	first, _, _ := strings.Cut(rel, string(filepath.Separator))
	return strings.HasPrefix(first, "transcoder-")
}

func dirOf(bin string) string { return filepath.Dir(bin) }
