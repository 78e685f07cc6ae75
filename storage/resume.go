package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// opener (re)starts a transfer at byte off with the attempt's context. It returns the body and
// how many bytes of it to discard first (a server that ignored Range), or a classified error.
type opener func(ctx context.Context, off int64) (body io.ReadCloser, skip int64, err error)

// resumeReader reads a remote input and, when the transfer breaks (a dropped connection, a
// body that ends short of its announced size, no progress for IdleTimeout), starts it again
// from the byte where it broke, up to Retries times in a row without progress, with backoff.
type resumeReader struct {
	s    *Store
	ctx  context.Context // bounds the whole read
	raw  string
	open opener
	size int64 // -1 unknown

	body io.ReadCloser
	skip int64
	off  int64

	fails int   // attempts since the last progress
	last  error // why the last attempt broke

	mu     sync.Mutex
	cancel context.CancelFunc // of the current attempt

	idle  *time.Timer // cancels the current attempt when a read makes no progress
	fired atomic.Bool
}

// newResumeReader makes the first attempt; a failure is returned as is (the job is retried as a
// whole, not the first request).
func (s *Store) newResumeReader(ctx context.Context, raw string, open opener, sizeOf func() int64) (*resumeReader, error) {
	actx, cancel := context.WithCancel(ctx)
	body, _, err := open(actx, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	r := &resumeReader{s: s, ctx: ctx, raw: raw, open: open, size: sizeOf(), body: body, cancel: cancel}
	r.idle = time.AfterFunc(time.Hour, r.onIdle)
	r.idle.Stop()
	return r, nil
}

func (r *resumeReader) onIdle() {
	r.fired.Store(true)
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
}

func (r *resumeReader) closeBody() {
	if r.body != nil {
		_ = r.body.Close()
		r.body = nil
	}
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	r.mu.Unlock()
}

func (r *resumeReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.body == nil {
			if err := r.reopen(); err != nil {
				return 0, err
			}
		}
		skipping := r.skip > 0
		buf := p
		if skipping && int64(len(buf)) > r.skip {
			buf = buf[:r.skip]
		}
		r.fired.Store(false)
		r.idle.Reset(r.s.cfg.IdleTimeout)
		n, err := r.body.Read(buf)
		r.idle.Stop()
		if n > 0 {
			r.fails = 0
		}
		if skipping {
			r.skip -= int64(n)
		} else {
			r.off += int64(n)
		}
		if err == nil {
			if skipping || n == 0 {
				continue
			}
			return n, nil
		}
		if errors.Is(err, io.EOF) && !skipping && (r.size < 0 || r.off == r.size) {
			r.closeBody()
			return n, io.EOF
		}
		r.closeBody()
		if cerr := ctxErr(r.ctx, "read", r.raw); cerr != nil {
			return n, cerr
		}
		switch {
		case r.fired.Load():
			r.last = fmt.Errorf("no progress for %s", r.s.cfg.IdleTimeout)
		case errors.Is(err, io.EOF):
			r.last = fmt.Errorf("body ended at byte %d of %d: %w", r.off, r.size, io.ErrUnexpectedEOF)
		default:
			r.last = err
		}
		if n > 0 && !skipping {
			return n, nil // deliver what came; the next Read resumes
		}
	}
}

// reopen resumes the transfer at r.off.
func (r *resumeReader) reopen() error {
	for {
		if r.fails >= r.s.cfg.Retries {
			return newErr("read", r.raw, ErrUnavailable, fmt.Sprintf("transfer broke at byte %d and %d resumes made no progress", r.off, r.fails), r.last)
		}
		if err := r.s.backoff(r.ctx, r.fails); err != nil {
			return &Error{Op: "read", URL: redact(r.raw), Err: err}
		}
		r.fails++
		actx, cancel := context.WithCancel(r.ctx)
		body, skip, err := r.open(actx, r.off)
		if err != nil {
			cancel()
			if cerr := ctxErr(r.ctx, "read", r.raw); cerr != nil {
				return cerr
			}
			if !Transient(err) {
				return err
			}
			r.last = err
			continue
		}
		r.mu.Lock()
		r.cancel = cancel
		r.mu.Unlock()
		r.body, r.skip = body, skip
		return nil
	}
}

func (r *resumeReader) Close() error {
	r.idle.Stop()
	r.closeBody()
	return nil
}
