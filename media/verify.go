package media

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// verifyFile probes a single-file output before it is committed: the streams asked for are
// there and it is as long as the input. ffmpeg exits 0 on a truncated input, so a short output
// is how a truncated input shows.
func (e *Engine) verifyFile(ctx context.Context, c *check, want ffmpeg.Output, path string, size int64) (job.OutputResult, error) {
	var res job.OutputResult
	pr, err := e.cfg.FFmpeg.ProbeFile(ctx, path)
	if err != nil {
		if ffmpeg.TruncatedInput(c.stderr) {
			return res, &job.Error{Class: job.ClassInvalidInput, Reason: "input is truncated: no output could be made", Err: err}
		}
		return res, fmt.Errorf("verify output: %w", err)
	}
	if pr.Duration == 0 {
		// webm/mkv from a pipe carry no duration: measure the packets.
		if pr.Duration, err = e.cfg.FFmpeg.MeasureDuration(ctx, path); err != nil {
			return res, fmt.Errorf("verify output: %w", err)
		}
	}
	res.Duration = math.Round(pr.Duration.Seconds()*1000) / 1000
	if err := checkStreams(c, want, pr, &res); err != nil {
		return res, err
	}
	// An output cut by -fs or -t: the input asked for more than the limits allow.
	if size >= c.lim.MaxOutputBytes {
		return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %d bytes (max_output_bytes)", size)}
	}
	if pr.Duration >= c.lim.MaxDuration-time.Second {
		return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %s long (max_duration %s)", pr.Duration.Round(time.Second), c.lim.MaxDuration)}
	}
	if d := c.input; d > 0 {
		tol := max(time.Second, d/50)
		if pr.Duration < d-tol {
			if ffmpeg.TruncatedInput(c.stderr) {
				return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("input is truncated: only %.1fs of %.1fs could be decoded", pr.Duration.Seconds(), d.Seconds())}
			}
			return res, &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("output is %.1fs long, input %.1fs", pr.Duration.Seconds(), d.Seconds())}
		}
	}
	return res, nil
}

// checkStreams checks that the output has each stream it owes: one the output asks for and
// the input has.
func checkStreams(c *check, want ffmpeg.Output, pr *ffmpeg.ProbeResult, res *job.OutputResult) error {
	var inVideo, inAudio bool
	if in := c.meter.Probe(); in != nil {
		_, inVideo = in.Video()
		_, inAudio = in.Audio()
	}
	if v, ok := pr.Video(); ok {
		res.Width, res.Height = v.Width, v.Height
	} else if want.Video != nil && inVideo {
		return &job.Error{Class: job.ClassInternal, Reason: "output has no video stream"}
	}
	if _, ok := pr.Audio(); !ok && want.Audio != nil && inAudio {
		return &job.Error{Class: job.ClassInternal, Reason: "output has no audio stream"}
	}
	return nil
}
