package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
	"github.com/transcoder/transcoder/storage"
)

// ErrInputTooLarge is returned when an input that must be spooled exceeds SpoolLimit.
var ErrInputTooLarge = errors.New("media: input larger than the spool limit")

// spool writes the head and the rest of r to the file path, through one ring buffer at a
// time. On error the file is removed; on success the caller removes it.
func spool(ctx context.Context, path string, head []*bufpool.Buffer, r io.Reader, acq pipeline.Acquirer, limit int64) error {
	f, err := createSpool(path)
	if err != nil {
		return spoolErr(err, path)
	}
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(path)
		return err
	}
	var n int64
	for _, b := range head {
		if _, err := f.Write(b.Bytes()); err != nil {
			return fail(spoolErr(err, path))
		}
		n += int64(b.Len())
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		b, err := acq.Acquire(ctx)
		if err != nil {
			return fail(err)
		}
		m, rerr := r.Read(b.Space())
		if m > 0 {
			n += int64(m)
			if n > limit {
				acq.Release(b)
				return fail(&job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("input must be spooled and is larger than the %d MiB spool limit", limit>>20), Err: ErrInputTooLarge})
			}
			_, werr := f.Write(b.Space()[:m])
			if werr != nil {
				acq.Release(b)
				return fail(spoolErr(werr, path))
			}
		}
		acq.Release(b)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fail(fmt.Errorf("read input: %w", rerr))
		}
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return spoolErr(err, path)
	}
	return nil
}

// spoolErr is the error of a failed write to the spool file path: a full disk (transient:
// another worker may have room) names the spool's disk.
func spoolErr(err error, path string) error {
	var df *storage.DiskFullError
	if nerr := storage.NoSpace(err, "spool", filepath.Dir(path)); errors.As(nerr, &df) {
		return nerr
	}
	return fmt.Errorf("spool: %w", err)
}

// createSpool creates a spool file of its own. The name is the task's (attempt included), so
// one found there is a leftover of a killed process's same attempt: it is replaced.
func createSpool(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		_ = os.Remove(path)
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	return f, err
}
