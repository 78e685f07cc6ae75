package worker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
)

// ErrInputTooLarge is returned when an input that must be spooled exceeds SpoolLimit.
var ErrInputTooLarge = errors.New("worker: input larger than the spool limit")

// countingReader counts bytes read so the watchdog sees the input advance.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// readHead fills up to n buffers from r, each as full as r allows, for the probe. eof reports
// that r ended within them (the whole input is in the head).
func readHead(ctx context.Context, r io.Reader, acq pipeline.Acquirer, n int) (head []*bufpool.Buffer, eof bool, err error) {
	head = make([]*bufpool.Buffer, 0, n)
	for len(head) < n {
		b, err := acq.Acquire(ctx)
		if err != nil {
			return head, false, err
		}
		m, rerr := io.ReadFull(r, b.Space())
		b.SetLen(m)
		if m > 0 {
			head = append(head, b)
		} else {
			acq.Release(b)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return head, true, nil
		case rerr != nil:
			return head, false, fmt.Errorf("read input: %w", rerr)
		}
	}
	return head, false, nil
}

func releaseAll(acq pipeline.Acquirer, bufs []*bufpool.Buffer) {
	for _, b := range bufs {
		acq.Release(b)
	}
}

func chunks(bufs []*bufpool.Buffer) [][]byte {
	c := make([][]byte, len(bufs))
	for i, b := range bufs {
		c[i] = b.Bytes()
	}
	return c
}

// Layout of an ISO BMFF (mp4/mov) head, from its top-level boxes.
type mp4Layout int

const (
	notMP4      mp4Layout = iota // not ISO BMFF, or undecided: stream it
	mp4MoovHead                  // index before the media: streams from a pipe
	mp4MoovTail                  // media before the index: must be spooled to a file
)

// scanMP4 walks the top-level boxes in the head. ffmpeg cannot demux an mp4 whose moov follows
// mdat from a pipe, so such inputs are spooled; everything else streams.
func scanMP4(head [][]byte) mp4Layout {
	var hdr [16]byte
	total := int64(0)
	for _, c := range head {
		total += int64(len(c))
	}
	at := func(off int64, n int) bool {
		if off+int64(n) > total {
			return false
		}
		copyAt(hdr[:n], head, off)
		return true
	}
	off := int64(0)
	for i := 0; ; i++ {
		if !at(off, 8) {
			return notMP4
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if i == 0 && typ != "ftyp" && typ != "moov" && typ != "mdat" && typ != "free" && typ != "wide" && typ != "skip" {
			return notMP4
		}
		switch typ {
		case "moov":
			return mp4MoovHead
		case "mdat":
			return mp4MoovTail
		}
		switch size {
		case 0: // box runs to the end of the file
			return notMP4
		case 1:
			if !at(off, 16) {
				return notMP4
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if size < 8 {
			return notMP4
		}
		off += size
	}
}

func copyAt(dst []byte, head [][]byte, off int64) {
	for _, c := range head {
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		n := copy(dst, c[off:])
		dst = dst[n:]
		off = 0
		if len(dst) == 0 {
			return
		}
	}
}

// spool writes the head and the rest of r to a file in dir, through one ring buffer at a time,
// and returns its path. The caller removes it.
func spool(ctx context.Context, dir, name string, head []*bufpool.Buffer, r io.Reader, acq pipeline.Acquirer, limit int64) (string, error) {
	f, err := os.CreateTemp(dir, name)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	path := f.Name()
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return "", err
	}
	var n int64
	for _, b := range head {
		if _, err := f.Write(b.Bytes()); err != nil {
			return fail(fmt.Errorf("spool: %w", err))
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
				return fail(fmt.Errorf("spool: %w", werr))
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
		return "", fmt.Errorf("spool: %w", err)
	}
	return path, nil
}
