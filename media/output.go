package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
)

// output is one output of a task, whatever its kind (file.go, ladder.go, images.go). Its
// life: created before ffmpeg starts; written through its writers while ffmpeg runs; verified
// once ffmpeg has exited; then published, or aborted. A published output can still be taken
// back (unpublish) when a later output of the same task fails, so a failed task leaves
// nothing behind whatever the kinds.
type output interface {
	// writers are the sinks of the output's ffmpeg outputs, in the plan's order.
	writers() []io.Writer
	// verify checks what was written against the input before anything is published.
	verify(ctx context.Context, c *check) error
	// publish makes the output visible under its URL and returns its result.
	publish(ctx context.Context) (job.OutputResult, error)
	// abort discards what is not published (a ladder's segments, published while the task
	// ran, included). It does nothing once publish has succeeded.
	abort()
	// unpublish removes what publish made visible, and returns what it removed.
	unpublish(ctx context.Context) []string
}

// check is what verification compares an output with.
type check struct {
	input  time.Duration // the input's duration; 0 when unknown
	meter  *Meter
	stderr string // ffmpeg's stderr tail: tells a truncated input
	lim    job.Limits
	// frames is how many video frames the output must have, where it is known exactly: a
	// chunk's window, a split job's stitched chunks. 0 when not.
	frames int
}

// RolledBackError is a task that failed after some of its outputs were published: they were
// removed again (Removed), so that the failed task leaves nothing behind.
type RolledBackError struct {
	Err     error
	Removed []string
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("%v (published outputs removed: %s)", e.Err, strings.Join(e.Removed, ", "))
}

func (e *RolledBackError) Unwrap() error { return e.Err }

// outputs are a task's outputs, in the job's order.
type outputs []output

// createOutputs makes every output of the plan, checking first what can be checked before
// encoding: a destination the job can never write is invalid_job before ffmpeg starts.
func (e *Engine) createOutputs(ctx context.Context, t *Task, p *Plan) (outputs, error) {
	outs := make(outputs, 0, len(p.Outputs))
	for i, po := range p.Outputs {
		o, err := e.createOutput(ctx, t, p, i)
		if err != nil {
			outs.abort()
			return nil, outputError(i, po, err)
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func (e *Engine) createOutput(ctx context.Context, t *Task, p *Plan, i int) (output, error) {
	po := p.Outputs[i]
	st := objects{st: e.cfg.Storage, jobID: t.ID, attempt: t.Attempt}
	if err := e.checkDestination(ctx, po); err != nil {
		return nil, err
	}
	var first func()
	if i == 0 && t.Observer != nil {
		first = t.Observer.FirstByte
	}
	switch po.Kind {
	case KindImages:
		return newImageSink(ctx, st, po.URL, p.Spec.Outputs[po.Spec[0]].Images, &t.Meter.BytesOut, first), nil
	case KindLadder:
		l, err := newLadderSink(ctx, st, po.URL, po.PlannedOutput, &t.Meter.BytesOut, first)
		if err == nil {
			l.videoRange = videoRange(p, po)
		}
		return l, err
	}
	return newFileOutput(ctx, e, t, po, p.Spec.Outputs[po.Spec[0]], first)
}

// checkDestination refuses a local single-file output whose final name is a directory: its
// commit could only fail after the whole encode.
func (e *Engine) checkDestination(ctx context.Context, po PlannedOutput) error {
	if po.Kind == KindLadder || (po.Kind == KindImages && po.Resolved.Thumbnails.Mode != ffmpeg.ImagesPoster) {
		return nil // a prefix: a directory is what it is
	}
	if !po.Resolved.Location.IsFile() {
		return nil // a remote name: the store says at its commit, and costs a request to ask
	}
	info, err := e.cfg.Storage.Stat(ctx, po.URL)
	if err == nil && info.Dir {
		return &job.Error{Class: job.ClassInvalidJob, Reason: fmt.Sprintf("%s is a directory", po.URL)}
	}
	return nil
}

// outputError names the output a creation error is about. A store that refuses to create it
// for good (a read-only root, a missing bucket, a denied path) refuses every attempt: the job
// names a place this worker cannot write.
func outputError(i int, po PlannedOutput, err error) error {
	var je *job.Error
	if errors.As(err, &je) || storage.Transient(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &job.Error{Class: job.ClassInvalidJob, Reason: fmt.Sprintf("output %d (%s): cannot be created: %v", i, po.URL, err), Err: err}
}

// writers are every output's writers, in the spec's order.
func (outs outputs) writers(n int) []io.Writer {
	ws := make([]io.Writer, 0, n)
	for _, o := range outs {
		ws = append(ws, o.writers()...)
	}
	return ws
}

// verify checks every output at once: ffprobe reads the page cache while fsync writes it.
func (outs outputs) verify(ctx context.Context, c *check) error {
	errs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i, o := range outs {
		wg.Go(func() { errs[i] = o.verify(ctx, c) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err // the first output's, as the job lists them
		}
	}
	return nil
}

// publish publishes every output in order. If one fails, those already published are taken
// back: the task's outputs appear all together or not at all.
func (outs outputs) publish(ctx context.Context) ([]job.OutputResult, error) {
	results := make([]job.OutputResult, 0, len(outs))
	for i, o := range outs {
		res, err := o.publish(ctx)
		if err != nil {
			var removed []string
			for _, done := range outs[:i] {
				removed = append(removed, done.unpublish(ctx)...)
			}
			if len(removed) > 0 {
				return nil, &RolledBackError{Err: err, Removed: removed}
			}
			return nil, err
		}
		results = append(results, res)
	}
	return results, nil
}

// abort discards every output not published.
func (outs outputs) abort() {
	for _, o := range outs {
		o.abort()
	}
}
