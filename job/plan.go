package job

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// ErrUnsupportedMedia is wrapped by plan errors caused by the input media (no usable stream,
// absurd dimensions): the media is the problem, not the job.
var ErrUnsupportedMedia = errors.New("job: unsupported media")

// Limits bound what one job may make the worker decode and write, so a crafted header (a
// decompression bomb) is refused from its probe instead of exhausting the machine.
//
// The input limits are checked by CheckMedia against the probe, and MaxPixels again by ffmpeg's
// decoders (-max_pixels) against what they actually decode; the output limits are put on every
// output's argv by Plan, so even an input whose header lies (a timestamp gap that ffmpeg fills
// with duplicated frames) cannot make an output grow without bound.
type Limits struct {
	MaxWidth, MaxHeight int   // largest frame side; default 8192
	MaxPixels           int64 // largest frame area; default 8192x4320 (8K)
	// MaxStreams is the most video (cover art aside) and audio streams the input may have, in
	// the programme used (see Job.Program); default 16. ffprobe and ffmpeg's stream analysis
	// decode frames of every one of them, so they cost.
	MaxStreams int
	// MaxSideStreams is the most of the other streams: subtitles, data, attachments, cover art,
	// and the streams of the programmes not used. They are demuxed and dropped, which costs
	// little (a Blu-ray rip carries 30 subtitle tracks, a broadcast multiplex ten channels);
	// the cap is against a file of millions of streams. Default 1000.
	MaxSideStreams int
	// MaxDuration is the longest input, from its probe (the container's duration or any
	// stream's; the engine measures the packets of an input whose header claims more, and
	// passes their span instead when it is within the limit), and the most of each output
	// ffmpeg writes (-t); default 12h.
	MaxDuration time.Duration
	// MaxOutputBytes is the largest output ffmpeg writes (-fs, per output); default 64 GiB.
	MaxOutputBytes int64
}

// DefaultLimits are the limits a worker applies unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{
		MaxWidth: 8192, MaxHeight: 8192, MaxPixels: 8192 * 4320,
		MaxStreams: 16, MaxSideStreams: 1000, MaxDuration: 12 * time.Hour, MaxOutputBytes: 64 << 30,
	}
}

// WithDefaults fills zero (and negative) fields from DefaultLimits: there is no "unlimited",
// only a larger limit.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxWidth <= 0 {
		l.MaxWidth = d.MaxWidth
	}
	if l.MaxHeight <= 0 {
		l.MaxHeight = d.MaxHeight
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = d.MaxPixels
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxSideStreams <= 0 {
		l.MaxSideStreams = d.MaxSideStreams
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = d.MaxDuration
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = d.MaxOutputBytes
	}
	return l
}

// ResolvedOutput is an output with its preset applied: every field concrete.
type ResolvedOutput struct {
	Location  Location
	Container string
	Video     *Video
	Audio     *Audio
	// Ladder and Segment are set for hls and dash outputs (Video is nil then).
	Ladder  []Rung
	Segment time.Duration
	// Thumbnails is set for jpg outputs (Video and Audio are nil then).
	Thumbnails *Thumbnails
	// Faststart: an mp4/m4a with its index at the front, written to a spool file first.
	Faststart bool
	// Tracks is the output's audio and subtitle selection (tracks.go).
	Tracks Tracks

	// Issue 14, part 2 (jobfeat): the output's loudness normalisation and overlay, defaults
	// filled (features.go).
	Loudness *Loudness
	Overlay  *Overlay
}

// Resolve applies presets to output i: fields set on the output win over its preset, which wins
// over the job's preset.
func (j *Job) Resolve(i int, presets Presets) (ResolvedOutput, error) {
	o := j.Outputs[i]
	f := fmt.Sprintf("outputs[%d]", i)
	loc, err := ParseLocation(o.URL)
	if err != nil {
		return ResolvedOutput{}, &FieldError{f + ".url", err.Error()}
	}
	name := o.Preset
	if name == "" {
		name = j.Preset
	}
	var p Preset
	if name != "" {
		var ok bool
		if p, ok = presets[name]; !ok {
			return ResolvedOutput{}, &FieldError{f + ".preset", fmt.Sprintf("unknown preset %q", name)}
		}
	}
	container := p.Container
	if o.Container != "" {
		container = o.Container
	}
	if container == ContainerJPEG || o.Thumbnails != nil || p.Thumbnails != nil {
		if o.Video != nil || o.Audio != nil || o.Faststart {
			return ResolvedOutput{}, &FieldError{f, "a thumbnails output has no video, audio or faststart settings"}
		}
		if container == "" || o.Container == "" && o.Thumbnails != nil && p.Thumbnails == nil {
			container = ContainerJPEG
		}
		if o.AudioTracks != nil || o.Subtitles != nil || o.SubtitlesIn != nil || o.BurnSubtitles != nil {
			return ResolvedOutput{}, &FieldError{f, "a thumbnails output has no audio_tracks, subtitles, subtitles_in or burn_subtitles"}
		}
		r, err := resolveImages(container, overlayThumbnails(p.Thumbnails, o.Thumbnails), f)
		if err != nil {
			return ResolvedOutput{}, err
		}
		if err := resolveFeatures(o, &r, f); err != nil {
			return ResolvedOutput{}, err
		}
		r.Location = loc
		return r, nil
	}
	if IsLadder(container) || IsLadder(p.Container) {
		r, err := resolveLadderOutput(o, p, name, container, f)
		if err != nil {
			return ResolvedOutput{}, err
		}
		r.Location = loc
		return r, nil
	}
	video := overlayVideo(p.Video, o.Video)
	audio := overlayAudio(p.Audio, o.Audio)
	if o.NoVideo {
		video = nil
	}
	if o.NoAudio {
		audio = nil
	}
	r, err := resolved(container, video, audio, f)
	if err != nil {
		return ResolvedOutput{}, err
	}
	if r.Tracks, err = resolveTracks(o, container, video, audio != nil && audio.AllTracks, f); err != nil {
		return ResolvedOutput{}, err
	}
	if o.Faststart {
		if container != "mp4" && container != "m4a" {
			return ResolvedOutput{}, &FieldError{f + ".faststart", fmt.Sprintf("is for mp4 and m4a, not %s", container)}
		}
		r.Faststart = true
	}
	if err := resolveFeatures(o, &r, f); err != nil {
		return ResolvedOutput{}, err
	}
	r.Location = loc
	return r, nil
}

// resolveLadderOutput is Resolve for an output of ladder preset p (named name).
func resolveLadderOutput(o Output, p Preset, name, container, f string) (ResolvedOutput, error) {
	if o.Container != "" && p.Container != "" && o.Container != p.Container {
		return ResolvedOutput{}, &FieldError{f + ".container", fmt.Sprintf("%q cannot change the container of ladder preset %q", o.Container, name)}
	}
	if o.Video != nil {
		return ResolvedOutput{}, &FieldError{f + ".video", "a ladder's renditions come from its preset's rungs (add your own with --presets FILE)"}
	}
	if o.Faststart {
		return ResolvedOutput{}, &FieldError{f + ".faststart", "a ladder is segments, not one mp4"}
	}
	rungs := p.Ladder
	if o.NoVideo {
		rungs = nil
	}
	audio := overlayAudio(p.Audio, o.Audio)
	if o.NoAudio {
		audio = nil
	}
	r, err := resolveLadder(container, rungs, audio, p.segment(), f)
	if err != nil {
		return ResolvedOutput{}, err
	}
	var video *Video
	if len(rungs) > 0 {
		video = rungs[0].Video
	}
	if r.Tracks, err = resolveTracks(o, r.Container, video, audio != nil && audio.AllTracks, f); err != nil {
		return ResolvedOutput{}, err
	}
	if err := resolveFeatures(o, &r, f); err != nil {
		return ResolvedOutput{}, err
	}
	return r, nil
}

func overlayVideo(base, over *Video) *Video {
	if base == nil && over == nil {
		return nil
	}
	var v Video
	if base != nil {
		v = *base
	}
	if over != nil {
		if over.Codec != "" && over.Codec != v.Codec {
			// Speed presets and profiles are each encoder's own names: the preset's would be
			// refused by (or mean something else to) the output's encoder.
			v.Codec, v.Preset, v.Profile = over.Codec, "", ""
		}
		if over.Width != 0 {
			v.Width = over.Width
		}
		if over.Height != 0 {
			v.Height = over.Height
		}
		if over.CRF != 0 {
			v.CRF = over.CRF
		}
		if over.Preset != "" {
			v.Preset = over.Preset
		}
		if over.Bitrate != "" {
			v.Bitrate = over.Bitrate
		}
		if over.MaxRate != "" {
			v.MaxRate = over.MaxRate
		}
		if over.BufSize != "" {
			v.BufSize = over.BufSize
		}
		if over.FPS != 0 {
			v.FPS = over.FPS
		}
		if over.GOP != 0 {
			v.GOP = over.GOP
		}
		if over.Profile != "" {
			v.Profile = over.Profile
		}
		if over.PixFmt != "" {
			v.PixFmt = over.PixFmt
		}
	}
	return &v
}

func overlayAudio(base, over *Audio) *Audio {
	if base == nil && over == nil {
		return nil
	}
	var a Audio
	if base != nil {
		a = *base
	}
	if over != nil {
		if over.Codec != "" {
			a.Codec = over.Codec
		}
		if over.Bitrate != "" {
			a.Bitrate = over.Bitrate
		}
		if over.Channels != 0 {
			a.Channels = over.Channels
		}
		if over.SampleRate != 0 {
			a.SampleRate = over.SampleRate
		}
		if over.AllTracks {
			a.AllTracks = true
		}
	}
	return &a
}

// Codec names accepted in jobs and presets, and the ffmpeg encoder each selects.
var (
	videoEncoders = map[string]string{
		"h264": "libx264", "hevc": "libx265", "vp9": "libvpx-vp9", "av1": "libsvtav1",
		"raw": "rawvideo", "copy": "copy",
	}
	audioEncoders = map[string]string{"aac": "aac", "opus": "libopus", "pcm": "pcm_s16le", "copy": "copy"}
	// defaultSpeed is the encoder speed preset of a codec whose encoder's own default is too
	// slow for a worker (x265 medium, SVT-AV1's default): used when the job names none.
	defaultSpeed = map[string]string{"hevc": "fast", "av1": "8"}
)

// Plan turns the job into the ffmpeg spec the worker runs; in says where ffmpeg reads the input
// (an empty Path means stdin). The spec does not depend on the input: ffmpeg applies the rules
// to the decoded frames itself, so the transcode can start while the input is still being
// probed.
//
// Decisions (README.md, "Media decisions", has them as a table; worker/media_test.go checks
// each on real media):
//   - Rotation: ffmpeg turns rotated frames upright (autorotate) and writes no display matrix,
//     so the output is upright with its dimensions swapped and no rotation left. copy keeps
//     the frames and the rotation metadata as they are (matroska in ffmpeg 5.1 drops it).
//   - Size: a video output fits its box (Video.Fit: the box turned for portrait frames, after
//     rotation and sample aspect ratio, never upscaled, even dimensions: an odd side loses a
//     pixel; FitBox is the same rule in Go), in square pixels (setsar=1).
//   - Pixel format: yuv420p unless the output sets pix_fmt, so 10-bit, 4:2:2 and 4:4:4 inputs
//     come out 8-bit 4:2:0, which the H.264 High/Main, HEVC Main, VP9 profile 0 and AV1 Main
//     profiles (and every player) take.
//   - Colour: an HDR input (PQ, HLG, Dolby Vision 8 by its base layer) or a BT.2020 one is
//     tone-mapped to BT.709 for every SDR (8-bit) output and tagged so (toneMap); an output in
//     a 10-bit or deeper format keeps it. The plan needs the probe for this (EncodesSDR).
//   - Frame rate: kept as the input has it, variable included (-fps_mode vfr: no duplicated
//     frames); constant at video.fps when the output sets it.
//   - Interlacing: frames flagged interlaced are deinterlaced (yadif, one frame per frame);
//     progressive frames pass untouched.
//   - Missing streams: a video output of an input without video becomes audio-only and an audio
//     output of an input without audio becomes video-only (optional stream maps); an output left
//     with no stream at all fails as unsupported media.
//   - Audio: stereo unless audio.channels asks for more (multichannel is downmixed); of several
//     audio tracks the first is used, or all of them with audio.all_tracks. (ffmpeg 5.1 has no
//     stream specifier for the default disposition, and the argv is built before the probe.)
//   - Cover art: attached pictures are not video (video is mapped as 0:V), so a video output
//     of an audio file with a picture is audio-only.
//   - Programmes: of a multiplex, one programme's streams (p:N): Job.Program, else the first
//     with video, which needs the probe (the media core probes a multiplex first).
//   - Speed: hevc defaults to x265 "fast" and av1 to SVT-AV1 preset 8 when no preset is set.
//   - Length: bounded by Limits (MaxDuration on the probe and as -t on every output).
//   - Ladders (hls, dash): the rungs that do not upscale the input (KeptRungs), each a CMAF
//     stream with keyframes forced at every segment boundary, fed from one decode through one
//     split filter graph; plus one audio rendition when the input has audio. This is the one
//     plan that needs the probe first (NeedsProbe).
func (j *Job) Plan(presets Presets, in ffmpeg.Input, lim Limits) (ffmpeg.Spec, error) {
	mp, err := j.PlanMedia(presets, in, lim, nil)
	if err != nil {
		return ffmpeg.Spec{}, err
	}
	return mp.Spec, nil
}

// MediaPlan is a job's ffmpeg run and where each of its outputs goes.
type MediaPlan struct {
	Spec ffmpeg.Spec
	// Outputs has one entry per job output, in order.
	Outputs []PlannedOutput
	// Sidecars are the subtitles_in files, one per Spec.SubtitleInputs entry (whose Path the
	// engine sets to the checked file's spool file).
	Sidecars []Sidecar
}

// PlannedOutput maps one job output to the ffmpeg outputs that make it.
type PlannedOutput struct {
	Resolved ResolvedOutput
	// Spec holds the indexes into Spec.Outputs: one for a plain output; for a ladder one per
	// rendition, in the order of Renditions.
	Spec       []int
	Renditions []Rendition // ladders only
	// Warnings say what of the input the output leaves out (an image subtitle mp4 cannot
	// carry); the succeeded event lists them.
	Warnings []string
	// BurnText, when set, is the text subtitle track the output burns in (every Video.Burn of
	// its spec outputs): the engine writes it to a file, whose path it sets as Burn.Path.
	BurnText *ffmpeg.Subtitle
}

// Rendition is one stream of a ladder.
type Rendition struct {
	Name  string // the rung's name, "audio" (one audio track), "audio-eng", "subtitles-eng"...
	Video *Video // nil for the audio and subtitle renditions
	// Subtitle marks a WebVTT subtitle rendition.
	Subtitle bool
	// Language (ISO 639-2) and Default of an audio or subtitle rendition.
	Language string
	Default  bool
}

// Encoders returns the ffmpeg encoders the job needs (sorted, without copy): what a worker
// must have to run it.
func (j *Job) Encoders(presets Presets) []string {
	seen := map[string]bool{}
	add := func(e string) {
		if e != "" && e != "copy" {
			seen[e] = true
		}
	}
	for i := range j.Outputs {
		r, err := j.Resolve(i, presets)
		if err != nil {
			continue
		}
		if r.Video != nil {
			add(videoEncoders[r.Video.Codec])
		}
		for _, rung := range r.Ladder {
			add(videoEncoders[rung.Video.Codec])
		}
		if r.Audio != nil {
			add(audioEncoders[r.Audio.Codec])
		}
		if r.Thumbnails != nil {
			add("mjpeg")
		}
	}
	out := make([]string, 0, len(seen))
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// NeedsProbe reports whether the plan depends on the input's probe: a ladder's rungs do,
// thumbnails (spread over the input's duration), a clip, an overlay and an HDR output.
func (j *Job) NeedsProbe(presets Presets) bool {
	if j.Clip != nil || j.KeepsHDR(presets) {
		// The clip is checked against the input's length before ffmpeg runs; an HDR output
		// takes the input's mastering metadata.
		return true
	}
	for i := range j.Outputs {
		if r, err := j.Resolve(i, presets); err == nil && (IsLadder(r.Container) || r.Thumbnails != nil || r.Overlay != nil) {
			// An overlay is sized on the output's exact size.
			return true
		}
	}
	return false
}

// PlanMedia is Plan with the input's probe, which ladders need (NeedsProbe); probe may be nil
// for jobs that need none.
func (j *Job) PlanMedia(presets Presets, in ffmpeg.Input, lim Limits, probe *ffmpeg.ProbeResult) (*MediaPlan, error) {
	lim = lim.WithDefaults()
	probe, program, err := j.source(probe)
	if err != nil {
		return nil, err
	}
	mp := &MediaPlan{Spec: ffmpeg.Spec{Input: in, MaxPixels: lim.MaxPixels, Program: program}}
	for i := range j.Outputs {
		r, err := j.Resolve(i, presets)
		if err != nil {
			return nil, err
		}
		po := PlannedOutput{Resolved: r}
		if IsLadder(r.Container) {
			split, err := mp.planLadder(j, i, r, &po, probe, lim)
			if err != nil {
				return nil, err
			}
			// Decoded once, scaled per rung: the frames are split in one graph.
			mp.Spec.SplitVideo = mp.Spec.SplitVideo || split
			mp.Outputs = append(mp.Outputs, po)
			continue
		}
		if r.Thumbnails != nil {
			if probe == nil {
				return nil, fmt.Errorf("job: plan: output %d is thumbnails: it needs the input's probe", i)
			}
			vs, ok := probe.Video()
			if !ok {
				return nil, fmt.Errorf("%w: output %d wants thumbnails, the input has no video", ErrUnsupportedMedia, i)
			}
			im := r.Thumbnails.images(probe.Duration, vs.FrameRate)
			if r.Thumbnails.Mode != ffmpeg.ImagesPoster && r.Thumbnails.Count > 0 && probe.Duration <= 0 {
				return nil, fmt.Errorf("%w: output %d: %d images spread over the input need its duration, which its head does not state (use interval)", ErrUnsupportedMedia, i, r.Thumbnails.Count)
			}
			po.Spec = []int{len(mp.Spec.Outputs)}
			mp.Spec.Outputs = append(mp.Spec.Outputs, ffmpeg.Output{Images: im, Duration: lim.MaxDuration, MaxBytes: lim.MaxOutputBytes})
			mp.Outputs = append(mp.Outputs, po)
			continue
		}
		out, err := j.planFile(r, probe, lim)
		if err != nil {
			return nil, err
		}
		if err := mp.planTracks(i, r, &out, &po, probe); err != nil {
			return nil, err
		}
		po.Spec = []int{len(mp.Spec.Outputs)}
		mp.Spec.Outputs = append(mp.Spec.Outputs, out)
		mp.Outputs = append(mp.Outputs, po)
	}
	if n := len(mp.Spec.Outputs); n > ffmpeg.MaxOutputs {
		return nil, &FieldError{"outputs", fmt.Sprintf("the outputs make %d ffmpeg outputs for this input (every rung, audio track and subtitle track of a ladder counts), more than the %d of one ffmpeg run", n, ffmpeg.MaxOutputs)}
	}
	if mp.Spec.SplitVideo {
		// The split graph names the video stream, which must then exist.
		if _, ok := probe.Video(); !ok {
			mp.Spec.SplitVideo = false
		}
	}
	return mp, nil
}

// planFile is the ffmpeg output of a single-file output. The caps are ffmpeg's too: an input
// that probed short but plays for hours (a timestamp gap) still cannot make an output longer or
// larger than the limits.
func (j *Job) planFile(r ResolvedOutput, probe *ffmpeg.ProbeResult, lim Limits) (ffmpeg.Output, error) {
	out := ffmpeg.Output{Container: r.Container, Duration: lim.MaxDuration, MaxBytes: lim.MaxOutputBytes}
	if r.Video != nil {
		out.Video = planVideo(r.Video)
		toneMap(out.Video, probe)
		keepHDR(out.Video, probe)
		if err := sizeOverlay(out.Video, r, probe); err != nil {
			return out, err
		}
	}
	if r.Audio != nil {
		out.Audio = planAudio(r.Audio, probe)
		planLoudness(out.Audio, r.Loudness, probe)
	}
	j.applyClip(&out)
	return out, nil
}

// toneMap makes an SDR video output of an HDR (or BT.2020) input convert it to BT.709: v is
// encoded (not copied, not raw: an intermediate keeps the signal it was given) in an 8-bit pixel
// format, which cannot carry HDR. An output in a 10-bit or deeper format keeps the input's
// colour. probe may be nil (no colour known: the input is taken as SDR).
func toneMap(v *ffmpeg.Video, probe *ffmpeg.ProbeResult) {
	if v == nil || !encodesSDR(v.Codec, v.PixFmt) || probe == nil {
		return
	}
	if vs, ok := probe.Video(); ok {
		if c, wide := vs.WideColour(); wide {
			v.ToneMap = &c
		}
	}
}

// encodesSDR reports whether a video output of this encoder and pixel format is SDR: one that
// an HDR input is tone-mapped for.
func encodesSDR(encoder, pixFmt string) bool {
	return encoder != "copy" && encoder != "rawvideo" && !ffmpeg.HighBitDepth(pixFmt)
}

// EncodesSDR reports whether an output of the job encodes SDR video (see toneMap): its plan
// depends on the input's colour, so the input is probed before ffmpeg starts unless its head
// shows it SDR. Ladders need the probe anyway (NeedsProbe).
func (j *Job) EncodesSDR(presets Presets) bool {
	for i := range j.Outputs {
		if r, err := j.Resolve(i, presets); err == nil && r.Video != nil && encodesSDR(videoEncoders[r.Video.Codec], r.Video.PixFmt) {
			return true
		}
	}
	return false
}

// planVideo is the ffmpeg video of an output (nil for none). Every option of the job is
// passed on, even to copy, so that ffmpeg's validation refuses what copy cannot do instead of
// the plan dropping it silently.
func planVideo(rv *Video) *ffmpeg.Video {
	if rv == nil {
		return nil
	}
	v := &ffmpeg.Video{
		Codec: videoEncoders[rv.Codec], Width: rv.Width, Height: rv.Height, CRF: rv.CRF, Preset: rv.Preset,
		Bitrate: rv.Bitrate, MaxRate: rv.MaxRate, BufSize: rv.BufSize,
		FPS: rv.FPS, GOP: rv.GOP, Profile: rv.Profile, PixFmt: rv.PixFmt,
	}
	if v.Codec != "copy" {
		v.Fit = true
		if v.PixFmt == "" {
			v.PixFmt = "yuv420p"
		}
		if v.Preset == "" {
			v.Preset = defaultSpeed[rv.Codec]
		}
		v.Deinterlace = true
	}
	return v
}

// planAudio is the ffmpeg audio of an output (nil for none); with a probe, the input's
// default audio track (disposition default) is the one used, else the first.
func planAudio(ra *Audio, probe *ffmpeg.ProbeResult) *ffmpeg.Audio {
	if ra == nil {
		return nil
	}
	a := &ffmpeg.Audio{Codec: audioEncoders[ra.Codec], Bitrate: ra.Bitrate, Channels: ra.Channels, SampleRate: ra.SampleRate}
	if probe != nil {
		n := 0
		for _, s := range probe.Streams {
			if s.Type != "audio" {
				continue
			}
			if s.Default {
				a.Track = n
				break
			}
			n++
		}
	}
	if a.Codec != "copy" && a.Channels == 0 {
		a.Channels = 2
	}
	return a
}

// CheckMedia refuses inputs the job cannot use: no audio or video stream, more streams than
// the limit, frames larger than the limits in any video stream (a decompression bomb announces
// itself in its header), a duration past the limit (a timestamp gap of hours), or an output
// that would be left with no stream.
func (j *Job) CheckMedia(presets Presets, probe *ffmpeg.ProbeResult, lim Limits) error {
	lim = lim.WithDefaults()
	src, _, err := j.source(probe)
	if err != nil {
		return err
	}
	vs, hasVideo := src.Video()
	_, hasAudio := src.Audio()
	if !hasVideo && !hasAudio {
		return fmt.Errorf("%w: no audio or video stream", ErrUnsupportedMedia)
	}
	if err := checkStreamCounts(probe, src, lim); err != nil {
		return err
	}
	longest := probe.Duration
	for _, s := range probe.Streams {
		longest = max(longest, s.Duration)
		// Every video stream, cover art included: ffprobe decodes them all.
		if s.Type == "video" && (s.Width > lim.MaxWidth || s.Height > lim.MaxHeight || int64(s.Width)*int64(s.Height) > lim.MaxPixels) {
			return fmt.Errorf("%w: %dx%d frames are larger than the %dx%d (%d pixel) limit", ErrUnsupportedMedia, s.Width, s.Height, lim.MaxWidth, lim.MaxHeight, lim.MaxPixels)
		}
	}
	if longest > lim.MaxDuration {
		return fmt.Errorf("%w: %s long, more than the limit of %s", ErrUnsupportedMedia, longest.Round(time.Second), lim.MaxDuration)
	}
	frame := 40 * time.Millisecond
	if hasVideo && vs.FrameRate > 0 {
		frame = time.Duration(float64(time.Second) / vs.FrameRate)
	}
	if err := j.checkClip(clipBound(src), frame); err != nil {
		return err
	}
	if hasVideo {
		if _, _, err := displaySize(vs); err != nil {
			return err
		}
	}
	for i := range j.Outputs {
		r, err := j.Resolve(i, presets)
		if err != nil {
			return err
		}
		video := r.Video != nil || len(r.Ladder) > 0 || r.Thumbnails != nil
		if (!video || !hasVideo) && (r.Audio == nil || !hasAudio) {
			return fmt.Errorf("%w: output %d wants %s, the input has none", ErrUnsupportedMedia, i, wants(r))
		}
	}
	return nil
}

// source is the input as the plan uses it: the programme the job names, else of an input with
// several programmes the first with video (ffprobe's MainProgram), else the whole input; with
// that programme's id (0 for the whole input). probe may be nil (a plan made before the probe):
// then only the job's programme is known.
func (j *Job) source(probe *ffmpeg.ProbeResult) (*ffmpeg.ProbeResult, int, error) {
	if probe == nil {
		return nil, j.Program, nil
	}
	id := j.Program
	if id == 0 {
		id = probe.MainProgram()
	}
	if id == 0 {
		return probe, 0, nil
	}
	src, ok := probe.InProgram(id)
	if !ok {
		ids := make([]string, 0, len(probe.Programs))
		for _, p := range probe.Programs {
			ids = append(ids, strconv.Itoa(p.ID))
		}
		return nil, 0, fmt.Errorf("%w: program %d: the input has no such programme (it has: %s)", ErrUnsupportedMedia, id, strings.Join(ids, ", "))
	}
	return src, id, nil
}

// checkStreamCounts applies the stream caps: the decoded streams (video that is not cover art,
// and audio) of the programme used against MaxStreams, every other stream of the input against
// MaxSideStreams.
func checkStreamCounts(probe, src *ffmpeg.ProbeResult, lim Limits) error {
	decoded := 0
	for _, s := range src.Streams {
		if s.Type == "audio" || s.Type == "video" && !s.AttachedPic {
			decoded++
		}
	}
	if decoded > lim.MaxStreams {
		return fmt.Errorf("%w: %d streams, more than the limit of %d (video and audio)", ErrUnsupportedMedia, decoded, lim.MaxStreams)
	}
	if side := len(probe.Streams) - decoded; side > lim.MaxSideStreams {
		return fmt.Errorf("%w: %d subtitle, data and other streams, more than the limit of %d", ErrUnsupportedMedia, side, lim.MaxSideStreams)
	}
	return nil
}

// OutputSize is the size a video output of this input will have under a box: FitBox of the
// input's upright, square-pixel size.
func OutputSize(s ffmpeg.Stream, bw, bh int) (int, int, error) {
	w, h, err := displaySize(s)
	if err != nil {
		return 0, 0, err
	}
	fw, fh := FitBox(w, h, bw, bh)
	return fw, fh, nil
}

func wants(r ResolvedOutput) string {
	if r.Video != nil {
		return "video"
	}
	return "audio"
}

// displaySize is the upright, square-pixel size of the video stream.
func displaySize(s ffmpeg.Stream) (int, int, error) {
	w, h := s.Width, s.Height
	if w <= 0 || h <= 0 {
		return 0, 0, fmt.Errorf("%w: video stream has no dimensions", ErrUnsupportedMedia)
	}
	var num, den int
	if _, err := fmt.Sscanf(s.SAR, "%d:%d", &num, &den); err == nil && num > 0 && den > 0 && num != den {
		w = int(math.Round(float64(w) * float64(num) / float64(den)))
	}
	if s.Rotation == 90 || s.Rotation == 270 {
		w, h = h, w
	}
	return w, h, nil
}

// FitBox scales w x h to fit in the box bw x bh (turned to match a portrait input), never
// upscaling, keeping the aspect ratio, and rounding to even sizes (4:2:0 needs them). A zero box
// side means unbounded.
func FitBox(w, h, bw, bh int) (int, int) {
	if h > w && bw > bh {
		bw, bh = bh, bw
	}
	f := 1.0
	if bw > 0 && float64(bw)/float64(w) < f {
		f = float64(bw) / float64(w)
	}
	if bh > 0 && float64(bh)/float64(h) < f {
		f = float64(bh) / float64(h)
	}
	if f == 1 {
		// Not scaling: drop an odd pixel rather than invent one.
		return max(2, w&^1), max(2, h&^1)
	}
	return even(float64(w) * f), even(float64(h) * f)
}

func even(x float64) int {
	n := int(math.Round(x/2)) * 2
	if n < 2 {
		n = 2
	}
	return n
}

// planLadder adds the ladder's renditions to the plan: its kept rungs, an audio rendition per
// kept audio track, a WebVTT rendition per kept subtitle track. split says whether the rungs
// share one split graph.
func (mp *MediaPlan) planLadder(j *Job, i int, r ResolvedOutput, po *PlannedOutput, probe *ffmpeg.ProbeResult, lim Limits) (split bool, err error) {
	if probe == nil {
		return false, fmt.Errorf("job: plan: output %d is a ladder: it needs the input's probe", i)
	}
	f := fmt.Sprintf("outputs[%d]", i)
	vs, hasVideo := probe.Video()
	_, hasAudio := probe.Audio()
	var (
		rungs []Rung
		w, h  int
	)
	if hasVideo {
		if w, h, err = displaySize(vs); err != nil {
			return false, err
		}
		rungs = KeptRungs(r.Ladder, w, h)
	}
	sidecars := len(mp.Spec.SubtitleInputs)
	var burn *ffmpeg.Burn
	if len(rungs) > 0 {
		if burn, po.BurnText, err = planBurn(r.Tracks, probe, sidecars, f); err != nil {
			return false, err
		}
	}
	add := func(out ffmpeg.Output, rd Rendition) {
		out.Container, out.Duration, out.MaxBytes = cmp.Or(out.Container, "mp4"), lim.MaxDuration, lim.MaxOutputBytes
		j.applyClip(&out)
		po.Spec = append(po.Spec, len(mp.Spec.Outputs))
		po.Renditions = append(po.Renditions, rd)
		mp.Spec.Outputs = append(mp.Spec.Outputs, out)
	}
	for _, rung := range rungs {
		out := ffmpeg.Output{Segment: r.Segment, Video: planVideo(rung.Video)}
		toneMap(out.Video, probe)
		keepHDR(out.Video, probe)
		// The probe gives the sizes: exact, so the rungs can be scaled one from the
		// other (see ffmpeg's SplitVideo) and still be FitBox of the input.
		out.Video.Width, out.Video.Height = FitBox(w, h, rung.Video.Width, rung.Video.Height)
		out.Video.Fit = false
		if burn != nil {
			b := *burn
			out.Video.Burn = &b
		}
		add(out, Rendition{Name: rung.Name, Video: rung.Video})
	}
	if r.Audio != nil && hasAudio {
		tracks, err := planAudioTracks(r.Tracks, probe, f)
		if err != nil {
			return false, err
		}
		if len(tracks) == 0 { // the default track
			a := planAudio(r.Audio, probe)
			tracks = []ffmpeg.AudioTrack{{N: a.Track, Default: true}}
		}
		names := map[string]int{}
		for _, t := range tracks {
			a := planAudio(r.Audio, probe)
			a.Track = t.N
			planLoudness(a, r.Loudness, probe)
			lang := kinds(probe, "audio")[t.N].Language
			name := "audio" // one audio rendition keeps the name it always had
			if len(tracks) > 1 {
				name = renditionName("audio", lang, names)
			}
			add(ffmpeg.Output{Segment: r.Segment, Audio: a}, Rendition{Name: name, Language: lang, Default: t.Default})
		}
	}
	subs, warns, err := planSubtitles(r.Tracks, "webvtt", probe, sidecars, f)
	if err != nil {
		return false, err
	}
	po.Warnings = append(po.Warnings, warns...)
	names := map[string]int{}
	for _, s := range subs {
		add(ffmpeg.Output{Container: "webvtt", Subtitles: []ffmpeg.Subtitle{s}}, Rendition{Name: renditionName("subtitles", s.Language, names), Subtitle: true, Language: s.Language, Default: s.Default})
	}
	mp.addSidecars(i, r)
	if len(po.Spec) == 0 {
		return false, fmt.Errorf("%w: output %d: the ladder has no rendition for this input", ErrUnsupportedMedia, i)
	}
	return len(rungs) > 1, nil
}

// renditionName is a unique, URL-safe name for an audio or subtitle rendition: kind-lang, or
// kind-N for an untagged or repeated language.
func renditionName(kind, lang string, seen map[string]int) string {
	name := kind + "-" + lang
	if lang == "" {
		name = kind
	}
	seen[name]++
	if n := seen[name]; n > 1 || lang == "" {
		return fmt.Sprintf("%s-%d", name, n)
	}
	return name
}
