package storage

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNoSpace: a write found its disk full (ENOSPC) or its quota used up (EDQUOT). It also
// matches ErrUnavailable: another worker, or this one once files are gone, may have room.
var ErrNoSpace error = &childError{msg: "storage: no space left on device", parent: ErrUnavailable}

// DiskFullError is a write that found its disk full: which disk (what it holds, and the
// directory written to), and the file system's size and free space when the write failed.
// It matches ErrNoSpace, and its cause.
type DiskFullError struct {
	Disk string // what the disk holds for the worker: "spool", "output", "multipart spool"
	Dir  string // the directory written to
	// Size and Free are the file system's, in bytes (as an unprivileged writer sees them);
	// Known is false when they could not be read.
	Size, Free uint64
	Known      bool
	Quota      bool  // EDQUOT: the quota, not the disk, is full
	Err        error // ENOSPC or EDQUOT, or the error of a program that met it (ffmpeg)
}

func (e *DiskFullError) Error() string {
	what := "no space left on device"
	if e.Quota {
		what = "no space left on device (disk quota exceeded)"
	}
	if !e.Known {
		return fmt.Sprintf("%s: %s %s", what, e.Disk, e.Dir)
	}
	return fmt.Sprintf("%s: %s %s (%s disk, %s free)", what, e.Disk, e.Dir, Bytes(e.Size), Bytes(e.Free))
}

func (e *DiskFullError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrNoSpace}
	}
	return []error{ErrNoSpace, e.Err}
}

// NoSpace returns err as a *DiskFullError naming the disk of dir (disk: what it holds) when it
// is ENOSPC or EDQUOT, and err itself otherwise (nil included).
func NoSpace(err error, disk, dir string) error {
	var df *DiskFullError
	if err == nil || errors.As(err, &df) || (!errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EDQUOT)) {
		return err
	}
	e := DiskFull(disk, dir, err)
	e.Quota = errors.Is(err, syscall.EDQUOT)
	return e
}

// DiskFull describes dir's disk as full; cause is what said so.
func DiskFull(disk, dir string, cause error) *DiskFullError {
	e := &DiskFullError{Disk: disk, Dir: dir, Err: cause}
	e.Size, e.Free, e.Known = FreeSpace(dir)
	return e
}

// FreeSpace is the size of dir's file system and the space free on it for an unprivileged
// writer, in bytes; ok is false when it cannot be read.
func FreeSpace(dir string) (size, free uint64, ok bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0, 0, false
	}
	bs := uint64(st.Bsize)
	return st.Blocks * bs, st.Bavail * bs, true
}

// Bytes formats a size for people: "0 B", "512 B", "8.0 MiB", "1.5 GiB".
func Bytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := "KMGTPE"
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}
