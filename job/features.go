package job

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// Clip is a range of the input that every output is made of (README.md, "Clip"): the output
// starts on the input's frame at Start (the first whose timestamp is at or after it, on the
// input's clock from its start) and ends before End; the audio is cut at the same instants, to
// the sample. Either bound may be left out: from the start, or to the end.
type Clip struct {
	Start Duration `json:"start,omitempty"`
	End   Duration `json:"end,omitempty"`
}

// Loudness normalises an output's audio to an EBU R128 integrated loudness (README.md,
// "Loudness"): the worker measures the input's audio track first (ebur128), then applies the
// gain that brings it to Target (loudnorm, linear when the true peak allows it, else with its
// true-peak limiter), and measures the output again before it is published.
type Loudness struct {
	// Target is the integrated loudness, in LUFS: -70 to -5 (streaming services use -14 to
	// -16, EBU R128 broadcast -23). Required.
	Target float64 `json:"target"`
	// TruePeak is the highest true peak allowed, in dBTP: -9 to 0; default -1.
	TruePeak *float64 `json:"true_peak,omitempty"`
}

// Overlay places an image (a logo, a watermark) on an output's video (README.md, "Overlay").
type Overlay struct {
	// URL is the image, a PNG or JPEG, opened through the worker's storage like an input.
	URL string `json:"url"`
	// Position is top-right (default), top-left, bottom-right, bottom-left or center.
	Position string `json:"position,omitempty"`
	// Width is the image's width on the output: "20%" of the output's width (1-100%), or a
	// number of pixels ("120" or "120px"); default "10%". The height keeps the image's aspect.
	Width string `json:"width,omitempty"`
	// Margin is the distance from the frame's edges, in output pixels: 0-1000, default 10
	// (ignored for center).
	Margin *int `json:"margin,omitempty"`
	// Opacity is 0 (exclusive: invisible) to 1 (default: as the image is, its own alpha kept).
	Opacity *float64 `json:"opacity,omitempty"`
}

// Defaults and bounds of the features above.
const (
	DefaultTruePeak      = -1.0
	DefaultOverlayWidth  = "10%"
	DefaultOverlayMargin = 10
	// truePeakMargin is how far under the true-peak limit loudnorm is aimed: the lossy audio
	// encoder after it adds a few tenths of a dB of peak (measured: AAC 96k up to 0.3 dB), and
	// the output must still be at or under the limit when it is measured.
	truePeakMargin = 0.5
)

// OverlayPositions are the places an overlay may go.
var OverlayPositions = []string{"top-right", "top-left", "bottom-right", "bottom-left", "center"}

// validateClip checks the job's clip on its own (the input's length is checked against it
// once probed, by CheckMedia).
func (j *Job) validateClip() error {
	c := j.Clip
	if c == nil {
		return nil
	}
	switch {
	case c.Start < 0:
		return &FieldError{"clip.start", fmt.Sprintf("%s: must not be negative", time.Duration(c.Start))}
	case c.End < 0:
		return &FieldError{"clip.end", fmt.Sprintf("%s: must not be negative", time.Duration(c.End))}
	case c.Start == 0 && c.End == 0:
		return &FieldError{"clip", "give start, end or both"}
	case c.End != 0 && c.End <= c.Start:
		return &FieldError{"clip.end", fmt.Sprintf("%s: must be after clip.start (%s)", time.Duration(c.End), time.Duration(c.Start))}
	}
	return nil
}

// validateSplit refuses split mode on for what a split job cannot do: chunks are encoded apart
// from the audio and from each other, so a clip, a loudness pass over the whole track or an
// overlay input would each have to be cut or repeated per chunk. Such jobs run whole (auto
// leaves them unsplit: Splittable).
func (j *Job) validateSplit() error {
	if j.SplitMode() != SplitOn {
		return nil
	}
	if why := j.unsplittable(); why != "" {
		return &FieldError{"split.mode", "on: " + why + " runs whole (leave split at auto or off)"}
	}
	return nil
}

// Splittable reports whether the job may be cut into chunks; a job with a clip, a loudness
// normalisation or an overlay runs whole on one worker.
func (j *Job) Splittable() bool { return j.unsplittable() == "" }

func (j *Job) unsplittable() string {
	if j.Clip != nil {
		return "a clipped job"
	}
	for i, o := range j.Outputs {
		if o.Loudness != nil {
			return fmt.Sprintf("outputs[%d].loudness: a loudness-normalised job", i)
		}
		if o.Overlay != nil {
			return fmt.Sprintf("outputs[%d].overlay: a job with an overlay", i)
		}
	}
	return ""
}

// resolveFeatures checks output o's loudness and overlay against what the output resolved to
// (r: its container, video and audio) and sets them, defaults filled, on r.
func resolveFeatures(o Output, r *ResolvedOutput, f string) error {
	if l := o.Loudness; l != nil {
		rl, err := resolveLoudness(*l, r, f+".loudness")
		if err != nil {
			return err
		}
		r.Loudness = &rl
	}
	if ov := o.Overlay; ov != nil {
		ro, err := resolveOverlay(*ov, r, f+".overlay")
		if err != nil {
			return err
		}
		r.Overlay = &ro
	}
	return nil
}

func resolveLoudness(l Loudness, r *ResolvedOutput, f string) (Loudness, error) {
	switch {
	case r.Thumbnails != nil:
		return l, &FieldError{f, "a thumbnails output has no audio"}
	case r.Audio == nil:
		return l, &FieldError{f, "the output has no audio (no_audio, or a video-only preset)"}
	case r.Audio.Codec == "copy":
		return l, &FieldError{f, "audio copy cannot be normalised: choose an audio codec"}
	case r.Audio.AllTracks:
		return l, &FieldError{f, "normalises one audio track: not with audio.all_tracks"}
	case r.Tracks.Audio.Mode == TracksAll || len(r.Tracks.Audio.Languages) > 1:
		// The measurement is of one track: each kept track would need its own.
		return l, &FieldError{f, "normalises one audio track: not with audio_tracks \"all\" or several languages"}
	case l.Target != l.Target || l.Target < -70 || l.Target > -5:
		return l, &FieldError{f + ".target", fmt.Sprintf("%v: want an integrated loudness of -70 to -5 LUFS (e.g. -16)", l.Target)}
	}
	tp := DefaultTruePeak
	if l.TruePeak != nil {
		tp = *l.TruePeak
	}
	if tp != tp || tp < -9 || tp > 0 {
		return l, &FieldError{f + ".true_peak", fmt.Sprintf("%v: want -9 to 0 dBTP (default -1)", tp)}
	}
	l.TruePeak = &tp
	return l, nil
}

func resolveOverlay(ov Overlay, r *ResolvedOutput, f string) (Overlay, error) {
	switch {
	case r.Thumbnails != nil:
		return ov, &FieldError{f, "not on thumbnails"}
	case IsLadder(r.Container):
		return ov, &FieldError{f, "not on a ladder (an hls or dash output): put it on a file output"}
	case r.Video == nil:
		return ov, &FieldError{f, "the output has no video"}
	case r.Video.Codec == "copy" || r.Video.Codec == "raw":
		return ov, &FieldError{f, "an overlay is encoded into the picture: not with video copy or raw"}
	case ov.URL == "":
		return ov, &FieldError{f + ".url", "required"}
	}
	if _, err := ParseLocation(ov.URL); err != nil {
		return ov, &FieldError{f + ".url", err.Error()}
	}
	if ov.Position == "" {
		ov.Position = OverlayPositions[0]
	}
	if !slices.Contains(OverlayPositions, ov.Position) {
		return ov, &FieldError{f + ".position", fmt.Sprintf("%q: want %s", ov.Position, strings.Join(OverlayPositions, ", "))}
	}
	if ov.Width == "" {
		ov.Width = DefaultOverlayWidth
	}
	if _, _, err := overlayWidth(ov.Width); err != nil {
		return ov, &FieldError{f + ".width", err.Error()}
	}
	margin := DefaultOverlayMargin
	if ov.Margin != nil {
		margin = *ov.Margin
	}
	if margin < 0 || margin > 1000 {
		return ov, &FieldError{f + ".margin", fmt.Sprintf("%d: want 0 to 1000 pixels", margin)}
	}
	ov.Margin = &margin
	opacity := 1.0
	if ov.Opacity != nil {
		opacity = *ov.Opacity
	}
	if opacity != opacity || opacity <= 0 || opacity > 1 {
		return ov, &FieldError{f + ".opacity", fmt.Sprintf("%v: want more than 0, at most 1", opacity)}
	}
	ov.Opacity = &opacity
	return ov, nil
}

// overlayWidth parses an overlay width: a percentage of the output's width (pct true) or
// pixels.
func overlayWidth(s string) (n float64, pct bool, err error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v != v || v < 1 || v > 100 {
			return 0, false, fmt.Errorf("%q: want 1%% to 100%% of the output's width, or pixels", s)
		}
		return v, true, nil
	}
	v, err := strconv.Atoi(strings.TrimSuffix(s, "px"))
	if err != nil || v < 2 || v > ffmpeg.MaxVideoSide {
		return 0, false, fmt.Errorf("%q: want 2 to %d pixels, or a percentage like \"20%%\"", s, ffmpeg.MaxVideoSide)
	}
	return float64(v), false, nil
}

// checkClip refuses a clip outside the input: one that starts at or after its end, or ends
// after it (by more than a frame: a stated duration is rounded). d is the input's longest
// stream or container duration, 0 when not known (then ffmpeg's output tells: see the
// verification).
func (j *Job) checkClip(d time.Duration, frame time.Duration) error {
	c := j.Clip
	if c == nil || d <= 0 {
		return nil
	}
	if time.Duration(c.Start) >= d {
		return fmt.Errorf("%w: clip.start: %s is not inside the input (%s long)", ErrUnsupportedMedia, time.Duration(c.Start), d.Round(time.Millisecond))
	}
	if c.End != 0 && time.Duration(c.End) > d+frame {
		return fmt.Errorf("%w: clip.end: %s is past the input's end (%s long)", ErrUnsupportedMedia, time.Duration(c.End), d.Round(time.Millisecond))
	}
	return nil
}

// clipBound is the length a clip is checked against: the longest of the video and audio streams
// used, which ffmpeg's clock starts at the first of (a container's duration may count from 0 a
// stream that starts at 10 s), else the container's duration.
func clipBound(src *ffmpeg.ProbeResult) time.Duration {
	var d time.Duration
	for _, s := range src.Streams {
		if s.Type == "video" && !s.AttachedPic || s.Type == "audio" {
			d = max(d, s.Duration)
		}
	}
	if d == 0 {
		return src.Duration
	}
	return d
}

// applyClip makes an ffmpeg output the job's clip of the input: from Start (-ss), and no
// longer than End-Start (-t, under the duration limit already there).
func (j *Job) applyClip(out *ffmpeg.Output) {
	if c := j.Clip; c != nil {
		out.Start = time.Duration(c.Start)
		if c.End != 0 {
			out.Duration = min(out.Duration, time.Duration(c.End-c.Start))
		}
	}
}

// planLoudness puts the output's loudness normalisation on its audio; the engine measures the
// input's track (LoudnessMeasure) before ffmpeg runs.
func planLoudness(a *ffmpeg.Audio, l *Loudness, probe *ffmpeg.ProbeResult) {
	if a == nil || l == nil {
		return
	}
	a.Loudness = &ffmpeg.Loudness{Target: l.Target, TruePeak: *l.TruePeak - truePeakMargin, Limit: *l.TruePeak, SampleRate: a.SampleRate}
	if probe == nil {
		return
	}
	n := 0
	for _, s := range probe.Streams {
		if s.Type != "audio" {
			continue
		}
		if n == a.Track {
			if a.SampleRate == 0 {
				a.Loudness.SampleRate = s.SampleRate
			}
			return
		}
		n++
	}
	// An input without that track: the output has no audio (its map is optional), nothing to
	// measure or normalise.
	a.Loudness = nil
}

// planOverlay sizes the overlay on a video output of exact size w x h (from the probe); the
// engine fetches the image and sets its Path and Format.
func planOverlay(v *ffmpeg.Video, ov *Overlay, w int) {
	if v == nil || ov == nil {
		return
	}
	n, pct, _ := overlayWidth(ov.Width) // checked by Resolve
	px := int(n)
	if pct {
		px = int(math.Round(float64(w) * n / 100))
	}
	v.Overlay = &ffmpeg.Overlay{Width: max(2, px&^1), Position: ov.Position, Margin: *ov.Margin, Opacity: *ov.Opacity}
}

// keepHDR gives a video output that can carry HDR (x265 in a 10-bit or deeper format, such as
// the hevc-1080p-hdr preset) of an HDR input the input's transfer, primaries and mastering
// metadata explicitly: ffmpeg 5.1 passes the colour tags on, but not the mastering display and
// content light level, which x265 must be given. An SDR input keeps its own (SDR) colour: an
// HDR preset does not invent HDR.
func keepHDR(v *ffmpeg.Video, probe *ffmpeg.ProbeResult) {
	if v == nil || v.Codec != "libx265" || !ffmpeg.HighBitDepth(v.PixFmt) || probe == nil {
		return
	}
	vs, ok := probe.Video()
	if !ok {
		return
	}
	if c, wide := vs.WideColour(); wide && c.HDR() {
		v.HDR = &ffmpeg.HDR{Colour: c, Mastering: vs.Mastering, Light: vs.Light}
	}
}

// KeepsHDR reports whether an output of the job can keep an HDR input's HDR (keepHDR): its
// plan needs the input's probe, and its mastering metadata.
func (j *Job) KeepsHDR(presets Presets) bool {
	for i := range j.Outputs {
		r, err := j.Resolve(i, presets)
		if err != nil {
			continue
		}
		if r.Video != nil && r.Video.Codec == "hevc" && ffmpeg.HighBitDepth(r.Video.PixFmt) {
			return true
		}
		for _, rung := range r.Ladder {
			if rung.Video.Codec == "hevc" && ffmpeg.HighBitDepth(rung.Video.PixFmt) {
				return true
			}
		}
	}
	return false
}

// NormalisesLoudness reports whether an output of the job normalises its loudness: the input
// is then read twice (measured, then transcoded), so it is spooled.
func (j *Job) NormalisesLoudness() bool {
	for _, o := range j.Outputs {
		if o.Loudness != nil {
			return true
		}
	}
	return false
}

// sizeOverlay gives a video output with an overlay its exact size, from the probe (the overlay
// is sized on it, as a ladder's rungs are), and the overlay its width. An input without video
// has no picture to put it on: the output is audio-only, as any video output of it.
func sizeOverlay(v *ffmpeg.Video, r ResolvedOutput, probe *ffmpeg.ProbeResult) error {
	if r.Overlay == nil {
		return nil
	}
	if probe == nil {
		return fmt.Errorf("job: plan: an overlay needs the input's probe")
	}
	vs, ok := probe.Video()
	if !ok {
		return nil
	}
	w, h, err := OutputSize(vs, r.Video.Width, r.Video.Height)
	if err != nil {
		return err
	}
	v.Width, v.Height, v.Fit = w, h, false
	planOverlay(v, r.Overlay, w)
	return nil
}
