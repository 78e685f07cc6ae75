// Package pipeline runs a job's stages as goroutines joined by bounded
// channels of ring buffers (*bufpool.Buffer). The first error, or panic,
// cancels every stage, and every buffer goes back to the ring on every path:
// a stage releases the buffer in its hand, and Wait releases what is left in
// the channels.
//
// Media moves only through the pumps ReadFrom, Forward and WriteTo. They
// never use io.Copy, whose ReaderFrom/WriterTo shortcuts (an *os.File, a
// net.Conn) would move bytes around the ring and so around its backpressure.
//
// The package knows nothing about NATS or ffmpeg.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"

	"github.com/transcoder/transcoder/bufpool"
)

// ErrPanic is wrapped by the error of a stage that panicked.
var ErrPanic = errors.New("pipeline: stage panicked")

// StagePipeline is the Stage of the error Wait returns when the pipeline was
// canceled from outside: by Cancel, or by the parent context.
const StagePipeline = "pipeline"

// Acquirer hands out ring buffers and takes them back. *bufpool.Pool and
// *bufpool.Reservation satisfy it; a job's pipeline normally runs on its
// reservation.
type Acquirer interface {
	Acquire(ctx context.Context) (*bufpool.Buffer, error)
	Release(b *bufpool.Buffer)
}

// StageError is the error Wait returns: which stage failed, and how.
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string { return "pipeline: stage " + e.Stage + ": " + e.Err.Error() }

// Unwrap returns the stage's error.
func (e *StageError) Unwrap() error { return e.Err }

// Pipeline is one job's set of stages. Register channels with Chan and start
// stages with Go, then call Wait once; a Pipeline is not reusable.
type Pipeline struct {
	// ctx is stored because it is the pipeline's own lifetime: created by
	// New, canceled by the first failure or by Cancel, and ended by Wait.
	ctx    context.Context
	cancel context.CancelCauseFunc
	acq    Acquirer
	wg     sync.WaitGroup

	mu    sync.Mutex
	err   *StageError // the first error; later ones are its consequences
	chans []chan *bufpool.Buffer
}

// New returns a pipeline whose stages run under a context derived from ctx
// and release buffers to acq.
func New(ctx context.Context, acq Acquirer) *Pipeline {
	ctx, cancel := context.WithCancelCause(ctx)
	return &Pipeline{ctx: ctx, cancel: cancel, acq: acq}
}

// Chan returns a channel of the given capacity registered with the pipeline,
// so that Wait can release the buffers left in it. Every channel that carries
// buffers between stages must come from here.
func (p *Pipeline) Chan(capacity int) chan *bufpool.Buffer {
	ch := make(chan *bufpool.Buffer, capacity)
	p.mu.Lock()
	p.chans = append(p.chans, ch)
	p.mu.Unlock()
	return ch
}

// Go runs fn in a new goroutine under the pipeline's context. A non-nil error
// or a panic cancels the pipeline; a panic becomes an error wrapping ErrPanic,
// with the stack. fn must release any buffer it holds before it returns; the
// pumps do so even when they panic.
func (p *Pipeline) Go(stage string, fn func(ctx context.Context) error) {
	p.wg.Go(func() {
		if err := run(p.ctx, fn); err != nil {
			p.fail(stage, err)
		}
	})
}

func run(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return fn(ctx)
}

// fail records the first error and cancels the rest. An error from a stage
// after the pipeline is already done is a consequence of whatever stopped it,
// so only the first one counts. When the first one is a context error and the
// pipeline was stopped from outside (its parent context), it is reported as
// the pipeline's, with the cancellation's cause.
func (p *Pipeline) fail(stage string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	if p.ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		p.err = &StageError{Stage: StagePipeline, Err: context.Cause(p.ctx)}
		return
	}
	p.err = &StageError{Stage: stage, Err: err}
	p.cancel(p.err)
}

// Cancel stops the pipeline from outside (say, the job was canceled) with
// cause, or context.Canceled when cause is nil. Unless a stage failed first,
// Wait then returns a *StageError with Stage "pipeline" (StagePipeline) and
// Err cause, so errors.Is(err, cause) holds.
func (p *Pipeline) Cancel(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = &StageError{Stage: StagePipeline, Err: cause}
	}
	p.cancel(cause)
}

// Wait waits for every stage, releases the buffers left in the registered
// channels, and returns the first error as a *StageError, or nil.
func (p *Pipeline) Wait() error {
	p.wg.Wait()
	p.cancel(nil) // frees the context; a no-op if it was already canceled
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ch := range p.chans {
		drain(ch, p.acq)
	}
	if p.err == nil {
		return nil
	}
	return p.err
}

// drain releases what is buffered in ch without blocking: every stage has
// returned, so nothing more will arrive.
func drain(ch chan *bufpool.Buffer, acq Acquirer) {
	for {
		select {
		case b, ok := <-ch:
			if !ok {
				return
			}
			acq.Release(b)
		default:
			return
		}
	}
}

// BuffersNeeded is the number of buffers a job's pipeline can hold at once,
// and so what it must reserve: the sum of its channels' capacities (each can
// be full) plus one per stage (each pump holds at most one buffer in hand:
// ReadFrom acquires the next buffer only after sending the last one).
// Negative capacities count as 0.
func BuffersNeeded(chanCaps []int, stages int) int {
	n := max(stages, 0)
	for _, c := range chanCaps {
		n += max(c, 0)
	}
	return n
}

// ReadFrom is the source pump. It acquires a buffer (blocking while the ring
// or reservation is exhausted: the backpressure), does one Read into it, and
// sends what that Read returned; a 1 MiB buffer is a capacity, not a batch
// size, so the first bytes leave as soon as they are read. It returns the
// bytes sent, with nil at io.EOF. It closes out before returning, and
// releases the buffer in hand on every path.
func ReadFrom(ctx context.Context, r io.Reader, acq Acquirer, out chan<- *bufpool.Buffer) (n int64, err error) {
	defer close(out)
	var held *bufpool.Buffer
	defer func() {
		if held != nil {
			acq.Release(held)
		}
	}()
	for {
		b, err := acq.Acquire(ctx)
		if err != nil {
			return n, err
		}
		held = b
		space := b.Space()
		m, rerr := r.Read(space)
		if m < 0 || m > len(space) {
			return n, fmt.Errorf("pipeline: reader returned invalid count %d for a %d-byte buffer", m, len(space))
		}
		if m > 0 {
			b.SetLen(m)
			select {
			case out <- b:
				held = nil
				n += int64(m)
			case <-ctx.Done():
				return n, ctx.Err()
			}
		} else {
			held = nil
			acq.Release(b)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// WriteTo is the sink pump. It receives buffers until in is closed (then it
// returns nil) or ctx is done, writes each one fully and releases it, also
// when the write fails. It returns the bytes written.
func WriteTo(ctx context.Context, in <-chan *bufpool.Buffer, w io.Writer, acq Acquirer) (n int64, err error) {
	var held *bufpool.Buffer
	defer func() {
		if held != nil {
			acq.Release(held)
		}
	}()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return n, nil
			}
			held = b
			m, err := writeFull(w, b.Bytes())
			n += m
			if err != nil {
				return n, err
			}
			held = nil
			acq.Release(b)
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

// writeFull writes all of p, looping on short writes.
func writeFull(w io.Writer, p []byte) (int64, error) {
	var n int64
	for len(p) > 0 {
		m, err := w.Write(p)
		if m < 0 || m > len(p) {
			return n, fmt.Errorf("pipeline: writer returned invalid count %d for %d bytes", m, len(p))
		}
		n += int64(m)
		p = p[m:]
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite // no progress and no error: never spin
		}
	}
	return n, nil
}

// Forward is a middle stage: it receives buffers from in, applies fn to each
// (fn may be nil) and sends them on to out, until in is closed (then it
// returns nil), fn fails or ctx is done. It closes out before returning and
// releases the buffer in hand on every path.
func Forward(ctx context.Context, in <-chan *bufpool.Buffer, out chan<- *bufpool.Buffer, acq Acquirer, fn func(b *bufpool.Buffer) error) error {
	defer close(out)
	var held *bufpool.Buffer
	defer func() {
		if held != nil {
			acq.Release(held)
		}
	}()
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return nil
			}
			held = b
			if fn != nil {
				if err := fn(b); err != nil {
					return err
				}
			}
			select {
			case out <- b:
				held = nil
			case <-ctx.Done():
				return ctx.Err()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
