package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// The media side of issue 14, part 2: an HDR input's frame metadata, the loudness measurement
// before the run, overlay images, and their verification.

// frameHDR completes the probe of an HDR input whose container states no mastering metadata
// (an HEVC stream carries it in SEI) from its first frame, when an output keeps HDR: x265 must
// be given it. The frame comes from the spool file, or the head.
func (e *Engine) frameHDR(ctx context.Context, t *Task, in *input, pr *ffmpeg.ProbeResult) error {
	if t.Chunk != nil || !t.Job.KeepsHDR(e.cfg.Presets) {
		return nil
	}
	for i := range pr.Streams {
		s := &pr.Streams[i]
		if s.Type != "video" || s.AttachedPic {
			continue
		}
		if c, wide := s.WideColour(); !wide || !c.HDR() || s.Mastering != nil && s.Light != nil {
			return nil
		}
		md, cl, err := e.cfg.FFmpeg.FrameHDR(ctx, ffmpeg.Input{Path: in.filePath()}, chunks(in.head))
		if err != nil {
			return fmt.Errorf("read the first frame's HDR metadata: %w", err)
		}
		if s.Mastering == nil {
			s.Mastering = md
		}
		if s.Light == nil {
			s.Light = cl
		}
		return nil
	}
	return nil
}

// measureLoudness measures the input's audio track of every output that normalises loudness
// (once per track), on the spool file: the input is read twice, measured then transcoded.
func (e *Engine) measureLoudness(ctx context.Context, t *Task, in *input, p *Plan) error {
	measured := map[string]*ffmpeg.LoudnessMeasure{}
	for i := range p.Spec.Outputs {
		o := &p.Spec.Outputs[i]
		a := o.Audio
		if a == nil || a.Loudness == nil || a.Loudness.Measured != nil {
			continue
		}
		// A clip is measured as it is cut: its own loudness, not the whole track's.
		length := time.Duration(0)
		if o.Start > 0 || o.Duration < e.cfg.Limits.MaxDuration {
			length = o.Duration
		}
		stream := ffmpeg.AudioStream(p.Spec.Program, a.Track)
		key := fmt.Sprint(stream, o.Start, length)
		if m, ok := measured[key]; ok {
			a.Loudness.Measured = m
			continue
		}
		if in.filePath() == "" {
			return fmt.Errorf("media: loudness: the input is not spooled")
		}
		m, err := e.cfg.FFmpeg.MeasureLoudness(ctx, in.filePath(), stream, o.Start, length)
		if err != nil {
			return fmt.Errorf("measure the input's loudness: %w", err)
		}
		a.Loudness.Measured, measured[key] = &m, &m
	}
	if len(measured) > 0 {
		t.phase("loudness")
	}
	return nil
}

// fetchOverlays fetches the image of every output with an overlay through storage, checks it
// and spools it for ffmpeg (which gets a local file, never a URL), removed with the input.
func (e *Engine) fetchOverlays(ctx context.Context, t *Task, in *input, p *Plan) error {
	for i, po := range p.Outputs {
		if po.Resolved.Overlay == nil || len(po.Spec) == 0 {
			continue
		}
		v := p.Spec.Outputs[po.Spec[0]].Video
		if v == nil || v.Overlay == nil {
			continue // an input without video: the output has no picture
		}
		path := filepath.Join(e.cfg.SpoolDir, fmt.Sprintf("transcoder-overlay-%s-%d-%d", t.ID, t.Attempt, i))
		in.extra = append(in.extra, path)
		format, err := e.fetchImage(ctx, po.Resolved.Overlay.URL, path)
		if err != nil {
			return fmt.Errorf("outputs[%d].overlay.url: %w", i, err)
		}
		v.Overlay.Path, v.Overlay.Format = path, format
	}
	return nil
}

// ErrNotImage is an overlay that is not a PNG or JPEG image the worker takes.
var ErrNotImage = errors.New("media: not an overlay image")

// fetchImage reads the image at url (at most OverlayMaxBytes: it is read whole, in memory, to
// be checked before ffmpeg sees it; it is not media that the ring carries), checks that it is
// a PNG or JPEG within the size and pixel limits, and writes it to path. It returns the image
// demuxer to read it with.
func (e *Engine) fetchImage(ctx context.Context, url, path string) (string, error) {
	r, err := e.cfg.Storage.Open(ctx, url)
	if err != nil {
		return "", err
	}
	defer func() { _ = r.Close() }()
	data, err := io.ReadAll(io.LimitReader(r, e.cfg.OverlayMaxBytes+1))
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	if int64(len(data)) > e.cfg.OverlayMaxBytes {
		return "", notImage("larger than %d bytes", e.cfg.OverlayMaxBytes)
	}
	var (
		format string
		decode func(io.Reader) (image.Config, error)
	)
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		format, decode = "png_pipe", png.DecodeConfig
	case bytes.HasPrefix(data, []byte{0xff, 0xd8, 0xff}):
		format, decode = "jpeg_pipe", jpeg.DecodeConfig
	default:
		return "", notImage("not a PNG or JPEG image")
	}
	cfg, err := decode(bytes.NewReader(data))
	if err != nil {
		return "", notImage("unreadable image: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > ffmpeg.MaxVideoSide || cfg.Height > ffmpeg.MaxVideoSide ||
		int64(cfg.Width)*int64(cfg.Height) > e.cfg.OverlayMaxPixels {
		return "", notImage("%dx%d pixels, more than the limit of %d pixels", cfg.Width, cfg.Height, e.cfg.OverlayMaxPixels)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	return format, nil
}

func notImage(format string, a ...any) error {
	reason := fmt.Sprintf(format, a...)
	return &job.Error{Class: job.ClassInvalidInput, Reason: "overlay image: " + reason, Err: fmt.Errorf("%w: %s", ErrNotImage, reason)}
}

// clipped is a source stream as an output clipped to want.Start..+want.Duration should have it:
// shorter by what the clip leaves out. Unclipped outputs (no start, and a duration that is the
// limit's) get the stream as it is.
func clipped(s *ffmpeg.Stream, want ffmpeg.Output, lim job.Limits) *ffmpeg.Stream {
	if s == nil || want.Start == 0 && (want.Duration == 0 || want.Duration >= lim.MaxDuration) {
		return s
	}
	c := *s
	if c.Duration > 0 {
		c.Duration = max(0, min(c.Duration-want.Start, want.Duration))
	}
	return &c
}

// clipSpan is how much of an input of duration d (0: unknown) a clip leaves: what a ladder's
// renditions must last.
func clipSpan(d time.Duration, c *job.Clip) time.Duration {
	if c == nil || d <= 0 {
		return d
	}
	end := d
	if c.End != 0 {
		end = min(end, time.Duration(c.End))
	}
	return max(0, end-time.Duration(c.Start))
}

// loudnessTolerance is how far from its target an output's integrated loudness may be (EBU
// R128's own tolerance for programmes is ±1 LU).
const loudnessTolerance = 1.0

// verifyLoudness measures a normalised output's audio and reports it beside the input's: off
// the target by more than 1 LU, or a true peak over the limit, is a mismatch.
func (e *Engine) verifyLoudness(ctx context.Context, want ffmpeg.Output, path string, res *job.OutputResult) ([]string, error) {
	if want.Audio == nil || want.Audio.Loudness == nil || want.Audio.Loudness.Measured == nil {
		return nil, nil
	}
	l := want.Audio.Loudness
	m, err := e.cfg.FFmpeg.MeasureLoudness(ctx, path, "0:a:0", 0, 0)
	if err != nil {
		return nil, fmt.Errorf("measure the output's loudness: %w", err)
	}
	res.Loudness = &job.LoudnessResult{Target: l.Target, TruePeak: l.Limit, Input: *l.Measured, Output: m}
	if l.Measured.Silent {
		return nil, nil // silence stays silent
	}
	var diffs []string
	if d := m.I - l.Target; math.Abs(d) > loudnessTolerance {
		diffs = append(diffs, fmt.Sprintf("integrated loudness %.1f LUFS, the target %.1f", m.I, l.Target))
	}
	if m.TP > l.Limit {
		diffs = append(diffs, fmt.Sprintf("true peak %.1f dBTP, over the limit of %.1f", m.TP, l.Limit))
	}
	return diffs, nil
}

// checkHDR checks that an HDR output is tagged with the transfer it keeps.
func checkHDR(want *ffmpeg.Video, v *ffmpeg.StreamSpan) []string {
	if want != nil && want.HDR != nil && v != nil && v.Transfer != want.HDR.Colour.Transfer {
		return []string{fmt.Sprintf("an HDR output tagged %q, its input %q", v.Transfer, want.HDR.Colour.Transfer)}
	}
	return nil
}

// videoRange is the HLS VIDEO-RANGE of a ladder whose video renditions keep HDR: PQ or HLG.
func videoRange(p *Plan, po PlannedOutput) string {
	for _, si := range po.Spec {
		if v := p.Spec.Outputs[si].Video; v != nil && v.HDR != nil {
			if v.HDR.Colour.Transfer == "smpte2084" {
				return "PQ"
			}
			return "HLG"
		}
	}
	return ""
}

// hdrResults say in each output's result what became of an HDR input's HDR, from the plan: kept
// (every video of the output, a ladder's every rung, keeps it) or tone-mapped.
func hdrResults(results []job.OutputResult, p *Plan) {
	for i, po := range p.Outputs {
		if i >= len(results) {
			return
		}
		for _, si := range po.Spec {
			switch v := p.Spec.Outputs[si].Video; {
			case v == nil:
			case v.HDR != nil:
				results[i].HDR = job.HDRKept
			case v.ToneMap != nil && v.ToneMap.HDR():
				results[i].HDR = job.HDRToneMapped
			}
		}
	}
}
