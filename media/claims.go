package media

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// checkMedia checks the probed input against the job and the limits (job.CheckMedia), with the
// input's length taken from what it holds rather than from what its header claims: a header
// may claim far more than the file holds (a fragmented mp4 whose durations are all ones,
// "unknown", reads as 39 h). When the claim is past MaxDuration, the input's packets are
// measured: if they span more too (a timestamp gap of hours), the claim stands and the input is
// refused as before; if not, the probe's durations become the measured ones, so the limit, the
// job's timeout and the output verification all work from what ffmpeg will decode.
func (e *Engine) checkMedia(ctx context.Context, t *Task, in *input, pr *ffmpeg.ProbeResult) (*ffmpeg.ProbeResult, error) {
	limit := e.cfg.Limits.WithDefaults().MaxDuration
	if claimed(pr) > limit {
		measured, err := e.measureInput(ctx, t, in, limit)
		if err != nil {
			return nil, fmt.Errorf("measure input: %w", err)
		}
		if !measured.Over && measured.Total <= limit {
			pr = withSpan(pr, measured)
		}
	}
	if err := t.Job.CheckMedia(e.cfg.Presets, pr, e.cfg.Limits); err != nil {
		return nil, err
	}
	return pr, nil
}

// claimed is the longest duration the probe states: the container's or any stream's.
func claimed(pr *ffmpeg.ProbeResult) time.Duration {
	d := pr.Duration
	for _, s := range pr.Streams {
		d = max(d, s.Duration)
	}
	return d
}

// measureInput measures the input's packets: the spool file when there is one, else the input
// opened again (the bytes read so far went to ffprobe and ffmpeg). Only inputs whose header
// claims more than the limit pay for it, and reading stops at the limit.
func (e *Engine) measureInput(ctx context.Context, t *Task, in *input, limit time.Duration) (ffmpeg.Span, error) {
	if path := in.filePath(); path != "" {
		return e.cfg.FFmpeg.MeasureSpan(ctx, ffmpeg.Input{Path: path}, nil, limit)
	}
	r, err := e.cfg.Storage.Open(ctx, t.Job.Input)
	if err != nil {
		return ffmpeg.Span{}, err
	}
	defer func() { _ = r.Close() }()
	return e.cfg.FFmpeg.MeasureSpan(ctx, ffmpeg.Input{}, io.Reader(r), limit)
}

// filePath is the local file holding the whole input, if any: the spool file, or (explain) the
// input itself.
func (in *input) filePath() string {
	if in.local != "" {
		return in.local
	}
	return in.path
}

// withSpan is a copy of the probe with the measured durations in place of the claimed ones.
func withSpan(pr *ffmpeg.ProbeResult, sp ffmpeg.Span) *ffmpeg.ProbeResult {
	c := *pr
	c.Duration = sp.Total
	c.Streams = append([]ffmpeg.Stream(nil), pr.Streams...)
	for i := range c.Streams {
		if d, ok := sp.Streams[c.Streams[i].Index]; ok {
			c.Streams[i].Duration = d
		} else {
			c.Streams[i].Duration = min(c.Streams[i].Duration, sp.Total)
		}
	}
	return &c
}
