package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/job"
)

// fileSink writes an output to a hidden temporary file beside its final name; Commit renames it
// into place, so a half-written output is never visible under the final name, and a redelivered
// job overwrites rather than duplicates.
type fileSink struct {
	final string
	tmp   string
	f     *os.File
	h     hash.Hash
	n     int64
	out   *atomic.Int64
	first func() // called once, at the first byte; may be nil

	fd       int   // for sync_file_range
	synced   int64 // bytes handed to writeback so far
	unsynced int64
}

// writebackChunk is how much is written before writeback of it is started, so the fsync at the
// end finds little left to do: a large output commits in milliseconds, not in the time it takes
// to flush all of it.
const writebackChunk = 8 << 20

func partName(final, jobID string, attempt int) string {
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+"."+jobID+"."+strconv.Itoa(attempt)+".part")
}

func newFileSink(loc job.Location, jobID string, attempt int, out *atomic.Int64) (*fileSink, error) {
	dir := filepath.Dir(loc.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output dir: %w", err)
	}
	// Parts left by earlier attempts of this job (a killed worker) are garbage now.
	old, _ := filepath.Glob(filepath.Join(dir, "."+filepath.Base(loc.Path)+"."+jobID+".*.part"))
	for _, p := range old {
		_ = os.Remove(p)
	}
	tmp := partName(loc.Path, jobID, attempt)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	return &fileSink{final: loc.Path, tmp: tmp, f: f, h: sha256.New(), out: out, fd: int(f.Fd())}, nil
}

// Write writes to the file and the checksum; it allocates nothing.
func (s *fileSink) Write(p []byte) (int, error) {
	if s.n == 0 && s.first != nil && len(p) > 0 {
		s.first()
		s.first = nil
	}
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	s.out.Add(int64(n))
	if s.unsynced += int64(n); s.unsynced >= writebackChunk {
		// Start writeback without waiting for it; best effort (the fsync in Close is the guarantee).
		_ = unix.SyncFileRange(s.fd, s.synced, s.unsynced, unix.SYNC_FILE_RANGE_WRITE)
		s.synced += s.unsynced
		s.unsynced = 0
	}
	return n, err
}

// Close flushes the file to disk; the temporary name stays.
func (s *fileSink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

// Abort closes and removes the temporary file.
func (s *fileSink) Abort() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
	_ = os.Remove(s.tmp)
}

// Commit publishes the output under its final name.
func (s *fileSink) Commit() error {
	if err := os.Rename(s.tmp, s.final); err != nil {
		return fmt.Errorf("commit output: %w", err)
	}
	if d, err := os.Open(filepath.Dir(s.final)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

func (s *fileSink) Sum() string { return hex.EncodeToString(s.h.Sum(nil)) }
