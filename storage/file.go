package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// writebackChunk is how much of a local output is written before its writeback is started, so
// the fsync at Commit finds little left to do.
const writebackChunk = 8 << 20

// osKind classifies an error from the local file system.
func osKind(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return ErrNoSpace
	case errors.Is(err, fs.ErrNotExist), errors.As(err, &errno) && errno == syscall.ENOTDIR:
		return ErrNotFound
	case errors.Is(err, fs.ErrPermission):
		return ErrForbidden
	case errors.As(err, &errno) && errno == syscall.ELOOP:
		return ErrNotAllowedPath
	case errors.As(err, &errno) && (errno == syscall.EISDIR || errno == syscall.ENAMETOOLONG || errno == syscall.EINVAL || errno == syscall.EROFS || errno == syscall.EXDEV):
		return ErrRejected
	}
	return ErrUnavailable
}

// realPath resolves the symlinks of the part of p that exists and appends the rest.
func realPath(p string) (string, error) {
	rest := ""
	for dir := p; ; dir = filepath.Dir(dir) {
		r, err := filepath.EvalSymlinks(dir)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || dir == "/" {
			return "", err
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// inRoots checks a resolved path against the resolved roots.
func (s *Store) inRoots(op, raw, real string) error {
	for _, r := range s.roots {
		if within(r, real) {
			return nil
		}
	}
	return newErr(op, raw, ErrNotAllowedPath, fmt.Sprintf("resolves to %s, outside the allowed file roots (a symlink leads out of them)", real), nil)
}

// checkFD checks where an open file actually is (race-free, through /proc) against the roots.
// Without /proc the check made before opening stands.
func (s *Store) checkFD(op, raw string, fd int) error {
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err == nil && strings.HasPrefix(real, "/") {
		return s.inRoots(op, raw, real)
	}
	return nil
}

func (s *Store) openFile(loc location) (*Reader, error) {
	real, err := realPath(loc.path)
	if err != nil {
		return nil, newErr("open", loc.raw, osKind(err), "", err)
	}
	if err := s.inRoots("open", loc.raw, real); err != nil {
		return nil, err
	}
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, newErr("open", loc.raw, osKind(err), "", err)
	}
	fail := func(err error) (*Reader, error) {
		_ = f.Close()
		return nil, err
	}
	if err := s.checkFD("open", loc.raw, int(f.Fd())); err != nil {
		return fail(err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(newErr("open", loc.raw, osKind(err), "", err))
	}
	if !st.Mode().IsRegular() {
		return fail(newErr("open", loc.raw, ErrRejected, "not a regular file", nil))
	}
	return s.newReader(loc.raw, f, st.Size())
}

func (s *Store) statFile(loc location) (Info, error) {
	real, err := realPath(loc.path)
	if err != nil {
		return Info{}, newErr("stat", loc.raw, osKind(err), "", err)
	}
	if err := s.inRoots("stat", loc.raw, real); err != nil {
		return Info{}, err
	}
	st, err := os.Stat(real)
	if err != nil {
		return Info{}, newErr("stat", loc.raw, osKind(err), "", err)
	}
	return Info{Size: st.Size(), Dir: st.IsDir()}, nil
}

// deleteFile removes the directory entry (a symlink itself, not its target).
func (s *Store) deleteFile(loc location) error {
	dir, err := realPath(filepath.Dir(loc.path))
	if err != nil {
		return newErr("delete", loc.raw, osKind(err), "", err)
	}
	if err := s.inRoots("delete", loc.raw, dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, filepath.Base(loc.path))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return newErr("delete", loc.raw, osKind(err), "", err)
	}
	return nil
}

// fileWriter writes a local output to a hidden temporary file beside its final name,
// ".NAME.JOBID.ATTEMPT.part"; Commit syncs it, renames it into place and syncs the directory.
// Every operation is relative to the opened directory, whose real location was checked against
// the roots, so swapping a symlink in after the check cannot redirect the output.
type fileWriter struct {
	raw   string
	dir   *os.File
	base  string
	part  string
	f     *os.File
	fd    int
	state int // 0 writing, 1 committed, 2 aborted

	synced, unsynced int64
}

func partPrefix(base, jobID string) string { return "." + base + "." + jobID + "." }

func (s *Store) createFile(loc location, o CreateOptions) (Writer, error) {
	fail := func(err error) (Writer, error) { return nil, newErr("create", loc.raw, osKind(err), "", err) }
	dirPath, err := realPath(filepath.Dir(loc.path))
	if err != nil {
		return fail(err)
	}
	if err := s.inRoots("create", loc.raw, dirPath); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dirPath, 0o755); err != nil {
		return fail(err)
	}
	dfd, err := unix.Open(dirPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(&fs.PathError{Op: "open", Path: dirPath, Err: err})
	}
	dir := os.NewFile(uintptr(dfd), dirPath)
	if err := s.checkFD("create", loc.raw, dfd); err != nil {
		_ = dir.Close()
		return nil, err
	}
	base := filepath.Base(loc.path)
	// Parts left by earlier attempts of this job (a killed worker) are garbage now.
	prefix := partPrefix(base, o.JobID)
	if names, err := dir.Readdirnames(-1); err == nil {
		for _, n := range names {
			if mid, ok := strings.CutPrefix(n, prefix); ok && strings.HasSuffix(mid, ".part") {
				if _, err := strconv.Atoi(strings.TrimSuffix(mid, ".part")); err == nil {
					_ = unix.Unlinkat(dfd, n, 0)
				}
			}
		}
	}
	part := prefix + strconv.Itoa(o.Attempt) + ".part"
	fd, err := unix.Openat(dfd, part, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		_ = dir.Close()
		return fail(NoSpace(&fs.PathError{Op: "create", Path: filepath.Join(dirPath, part), Err: err}, "output", dirPath))
	}
	return &fileWriter{raw: loc.raw, dir: dir, base: base, part: part, fd: fd, f: os.NewFile(uintptr(fd), filepath.Join(dirPath, part))}, nil
}

// LocalPath is the temporary file being written (valid until Commit or Abort).
func (w *fileWriter) LocalPath() string { return filepath.Join(w.dir.Name(), w.part) }

func (w *fileWriter) Write(p []byte) (int, error) {
	if w.state != 0 || w.f == nil {
		return 0, newErr("write", w.raw, ErrRejected, "output already committed, aborted or failed", nil)
	}
	n, err := w.f.Write(p)
	if w.unsynced += int64(n); w.unsynced >= writebackChunk {
		// Start writeback without waiting for it; best effort (the fsync in Commit is the
		// guarantee).
		_ = unix.SyncFileRange(w.fd, w.synced, w.unsynced, unix.SYNC_FILE_RANGE_WRITE)
		w.synced += w.unsynced
		w.unsynced = 0
	}
	if err != nil {
		return n, w.fail("write", "", err)
	}
	return n, nil
}

// Sync flushes what was written so far to disk, ahead of Commit: a caller that verifies the
// file before committing it can flush meanwhile, and Commit then finds little left to do.
func (w *fileWriter) Sync() error {
	if w.state != 0 || w.f == nil {
		return newErr("sync", w.raw, ErrRejected, "output already committed, aborted or failed", nil)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail("sync", "", err)
	}
	return nil
}

// Commit syncs the file, renames it to its final name and syncs the directory.
func (w *fileWriter) Commit(ctx context.Context) error {
	if w.state == 1 {
		return nil
	}
	if w.state != 0 || w.f == nil {
		return newErr("commit", w.raw, ErrRejected, "output already aborted or failed", nil)
	}
	if err := ctxErr(ctx, "commit", w.raw); err != nil {
		return err
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return w.fail("commit", "", err)
	}
	dfd := int(w.dir.Fd())
	if err := unix.Renameat(dfd, w.part, dfd, w.base); err != nil {
		return newErr("commit", w.raw, osKind(err), "rename into place", err)
	}
	w.state = 1
	err = w.dir.Sync()
	_ = w.dir.Close()
	if err != nil {
		// The output is in place; only its durability across a crash is in doubt.
		return newErr("commit", w.raw, osKind(err), "sync directory", err)
	}
	return nil
}

// fail is the error of a failed operation on the output; a full disk is named.
func (w *fileWriter) fail(op, msg string, err error) error {
	return newErr(op, w.raw, osKind(err), msg, NoSpace(err, "output", w.dir.Name()))
}

// Abort closes and removes the temporary file; a no-op after a successful Commit.
func (w *fileWriter) Abort() {
	if w.state != 0 {
		return
	}
	w.state = 2
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	_ = unix.Unlinkat(int(w.dir.Fd()), w.part, 0)
	_ = w.dir.Close()
}
