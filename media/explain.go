package media

import (
	"context"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
)

// Explanation is what a task would run: the ffmpeg argv (without the program name), the plan
// it comes from, and the input's description.
type Explanation struct {
	Argv []string
	// Spooled: the input's index is at its end, so it is spooled to a file that ffmpeg reads
	// (Plan.Spec.Input.Path) rather than streamed into pipe:0.
	Spooled bool
	Plan    *Plan
	// Probe describes the input: what the plan used, or (when the plan needs none before
	// ffmpeg starts) a probe of the head, for the reader's information only.
	Probe *ffmpeg.ProbeResult
}

// Explain plans the task exactly as Run does, with the same input stage and the same planning
// code, without running ffmpeg: the argv is the one Run would start for this task id and
// attempt on an engine of this configuration. t.Buffers may be nil: explain then reads the
// head into buffers of its own.
func (e *Engine) Explain(ctx context.Context, t *Task) (*Explanation, error) {
	if t.Buffers == nil {
		pool, err := bufpool.New(bufpool.Config{Buffers: e.cfg.ChanDepth + 1})
		if err != nil {
			return nil, err
		}
		t.Buffers = pool
	}
	in, p, err := e.prepared(ctx, t, true)
	if err != nil {
		return nil, err
	}
	defer in.close()
	ex := &Explanation{Spooled: in.path != "", Plan: p, Probe: in.probe}
	if ex.Argv, err = e.cfg.FFmpeg.Args(p.Spec); err != nil {
		return nil, err
	}
	if ex.Probe == nil {
		if ex.Probe, err = e.cfg.FFmpeg.ProbeChunks(ctx, chunks(in.head)); err != nil {
			return nil, err
		}
		if ex.Probe, err = e.checkMedia(ctx, t, in, ex.Probe); err != nil {
			return nil, err
		}
	}
	return ex, nil
}
