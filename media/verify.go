package media

import (
	"context"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/segment"
)

// Tolerances of the per-stream verification. The source side is what ffprobe says of the
// input, which is not always what ffmpeg decodes from it: a stream's stated duration may be
// its container's claim (an audio track a frame or two longer than its packets), and the
// input's own priming and edit lists move its starts by an audio frame. A plain ffmpeg CLI
// run of such inputs differs from them by that much too (the reference of
// ../shared/acceptance/realworld), so the tolerances are two audio frames: what they catch is
// a stream cut short (a truncated input), frames lost or invented, and lip sync off by more
// than a frame of video.
const (
	// syncTolerance is one audio frame (1024 samples at 44.1-48 kHz).
	syncTolerance = 25 * time.Millisecond
	// offsetTolerance bounds the A/V offset of an output against its input's.
	offsetTolerance = 2 * syncTolerance
	// audioShort is how much shorter than its source an audio stream may be (two E-AC-3
	// frames of 1536 samples).
	audioShort = 64 * time.Millisecond
	// videoFrames is how many frame durations shorter than its source a video stream may be.
	videoFrames = 2
)

// verifyFile checks a single-file output, stream by stream, before it is committed: every
// stream it owes is there with frames or samples, every decoded video frame reached it, each
// stream lasts as long as its source stream (start offsets excluded), video and audio start
// as far apart as in the input, and an SDR output carries no HDR colour tags. ffmpeg exits 0
// on a truncated input, so a short output is also how a truncated input shows.
func (e *Engine) verifyFile(ctx context.Context, c *check, want ffmpeg.Output, path string) (job.OutputResult, error) {
	var res job.OutputResult
	if want.Window != nil {
		// A chunk: what ffmpeg encoded is what the stitch reads back and verifies; an ffprobe
		// per chunk would cost more than a tenth of a short chunk's encode.
		res.Frames = int(c.meter.Frames.Load())
		return res, checkChunk(c, res.Frames)
	}
	spans, err := e.measure(ctx, c, want, path)
	if err != nil {
		if ffmpeg.TruncatedInput(c.stderr) {
			return res, &job.Error{Class: job.ClassInvalidInput, Reason: "input is truncated: no output could be made", Err: err}
		}
		return res, fmt.Errorf("verify output: %w", err)
	}
	v, a := pick(spans, "video"), pick(spans, "audio")
	report(&res, v, spans)
	if v != nil {
		res.SkippedFrames = int(c.meter.Skipped.Load())
	}
	if err := checkStreams(c, want, v, a); err != nil {
		return res, err
	}
	if err := checkTracks(c, want, spans); err != nil {
		return res, err
	}
	// An output cut by -t: the input asked for more than the limits allow (-fs: see the
	// output's size).
	if d := time.Duration(res.Duration * float64(time.Second)); d >= c.lim.MaxDuration-time.Second {
		return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %s long (max_duration %s)", d.Round(time.Second), c.lim.MaxDuration)}
	}
	diffs := compare(c, want, v, a)
	diffs = append(diffs, compareTracks(c, want, spans)...)
	if v != nil && c.frames > 0 && v.Packets != c.frames {
		diffs = append(diffs, fmt.Sprintf("video has %d frames, its chunks %d", v.Packets, c.frames))
	}
	diffs = append(diffs, checkHDR(want.Video, v)...)
	if a != nil {
		loud, err := e.verifyLoudness(ctx, want, path, &res)
		if err != nil {
			return res, err
		}
		diffs = append(diffs, loud...)
	}
	if len(diffs) > 0 {
		return res, mismatch(c, diffs)
	}
	return res, nil
}

// measure reads an output's streams. A plain mp4 or m4a (a faststart output) is read from its
// index, which gives the figures ffprobe prints in microseconds instead of an ffprobe run
// (~100 ms, most of the verification's time); anything else, and an index this reader does not
// take, by reading every packet with ffprobe. So is a video track without a colr box whose
// input is tagged HDR: its tags may then be in the bitstream only, where ffprobe finds them.
func (e *Engine) measure(ctx context.Context, c *check, want ffmpeg.Output, path string) ([]ffmpeg.StreamSpan, error) {
	if want.Path != "" && (want.Container == "mp4" || want.Container == "m4a") {
		if spans, ok := indexSpans(c, path); ok {
			return spans, nil
		}
	}
	return e.cfg.FFmpeg.MeasureStreams(ctx, path)
}

// indexSpans measures a plain mp4's video and audio tracks from its moov; false when that is
// not possible or not enough.
func indexSpans(c *check, path string) ([]ffmpeg.StreamSpan, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return nil, false
	}
	tracks, err := segment.ReadIndex(f, fi.Size())
	if err != nil {
		return nil, false
	}
	hdrIn := true // unknown
	if in := c.meter.Probe(); in != nil {
		v, ok := in.Video()
		_, wide := v.WideColour()
		hdrIn = ok && wide
	}
	var spans []ffmpeg.StreamSpan
	for i, t := range tracks {
		if t.Kind == "sbtl" { // mov_text; a "text" track is the chapters'
			spans = append(spans, ffmpeg.StreamSpan{Index: i, Type: "subtitle", Packets: t.Samples, Start: t.Start, Duration: t.Duration})
			continue
		}
		if t.Kind != "video" && t.Kind != "audio" {
			continue
		}
		if t.Kind == "video" && !t.Colr && hdrIn {
			return nil, false
		}
		spans = append(spans, ffmpeg.StreamSpan{Index: i, Type: t.Kind, Packets: t.Samples, Start: t.Start, Duration: t.Duration,
			Transfer: t.Transfer, Primaries: t.Primaries, Matrix: t.Matrix, Width: t.Width, Height: t.Height})
	}
	return spans, true
}

// checkChunk checks an encoded chunk: every frame of its window was encoded.
func checkChunk(c *check, n int) error {
	if n != c.frames {
		return mismatch(c, []string{fmt.Sprintf("chunk has %d frames, its window %d", n, c.frames)})
	}
	return nil
}

// pick is the file's first stream of a kind, nil if none.
func pick(spans []ffmpeg.StreamSpan, kind string) *ffmpeg.StreamSpan {
	for i := range spans {
		if spans[i].Type == kind {
			return &spans[i]
		}
	}
	return nil
}

// report fills the result with what was measured: the video, every audio track, every
// subtitle track (its frames are its cues).
func report(res *job.OutputResult, v *ffmpeg.StreamSpan, spans []ffmpeg.StreamSpan) {
	a := pick(spans, "audio")
	for _, s := range spans {
		if s.Type != "video" && s.Type != "audio" && s.Type != "subtitle" || s.Type == "video" && s.Index != v.Index {
			continue
		}
		res.Streams = append(res.Streams, job.StreamResult{Type: s.Type, Start: secs(s.Start), Duration: secs(s.Duration), Frames: s.Packets})
		if s.Type != "subtitle" {
			res.Duration = math.Max(res.Duration, secs(s.Duration))
		}
	}
	if v != nil {
		res.Frames, res.Width, res.Height = v.Packets, v.Width, v.Height
	}
	if v != nil && a != nil && v.Packets > 0 && a.Packets > 0 {
		off := secs(v.Start - a.Start)
		res.AVOffset = &off
	}
}

func secs(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }

// checkStreams checks that the output has each stream it owes (one it asks for and the input
// has) with frames or samples in it. An output with nothing in any stream means the input had
// nothing to decode (an init segment, a header alone).
func checkStreams(c *check, want ffmpeg.Output, v, a *ffmpeg.StreamSpan) error {
	if (v == nil || v.Packets == 0) && (a == nil || a.Packets == 0) {
		return &job.Error{Class: job.ClassInvalidInput, Reason: "nothing to decode: the input has no video frame and no audio sample"}
	}
	var inVideo, inAudio bool
	if in := c.meter.Probe(); in != nil {
		_, inVideo = in.Video()
		_, inAudio = in.Audio()
	}
	if want.Video != nil && inVideo && (v == nil || v.Packets == 0) {
		return &job.Error{Class: job.ClassInternal, Reason: "output has no video stream"}
	}
	if want.Audio != nil && inAudio && (a == nil || a.Packets == 0) {
		return &job.Error{Class: job.ClassInternal, Reason: "output has no audio stream"}
	}
	return nil
}

// compare lists how the output's streams differ from what the input and the plan promise.
func compare(c *check, want ffmpeg.Output, v, a *ffmpeg.StreamSpan) []string {
	var diffs []string
	sv, sa := sources(c.meter.Probe(), want)
	sv, sa = clipped(sv, want, c.lim), clipped(sa, want, c.lim)
	if v != nil && want.Video != nil {
		diffs = append(diffs, compareVideo(c, want, v, sv)...)
	}
	if a != nil && sa != nil && sa.Duration > 0 {
		if d := sa.Duration - (a.Duration - primed(a)); d > audioShort {
			diffs = append(diffs, fmt.Sprintf("audio lasts %.3fs, its source %.3fs", (a.Duration-primed(a)).Seconds(), sa.Duration.Seconds()))
		}
	}
	if v != nil && a != nil && sv != nil && sa != nil && sv.HasStart && sa.HasStart && v.Packets > 0 && a.Packets > 0 {
		// A video that starts after the audio is held from the start (ffmpeg's holdFirst,
		// as the CLI does): its offset is then 0; one that starts before keeps its lead.
		out, in := v.Start-(a.Start+primed(a)), min(sv.Start-sa.Start, 0)
		if (out - in).Abs() > offsetTolerance {
			diffs = append(diffs, fmt.Sprintf("A/V offset %+.3fs, the input's %+.3fs", out.Seconds(), in.Seconds()))
		}
	}
	return diffs
}

func compareVideo(c *check, want ffmpeg.Output, v *ffmpeg.StreamSpan, sv *ffmpeg.Stream) []string {
	var diffs []string
	capped := want.Video.FPS > 0
	if n, dup, drop := c.meter.Frames.Load(), c.meter.Dup.Load(), c.meter.Drop.Load(); !capped && (dup > 0 || drop > 0) {
		diffs = append(diffs, fmt.Sprintf("ffmpeg duplicated %d and dropped %d of %d frames", dup, drop, n))
	}
	if sv != nil && sv.Duration > 0 && !capped {
		frame := 40 * time.Millisecond
		if sv.FrameRate > 0 {
			frame = time.Duration(float64(time.Second) / sv.FrameRate)
		}
		if v.Packets > 0 {
			frame = max(frame, v.Duration/time.Duration(v.Packets))
		}
		if d := sv.Duration - v.Duration; d > max(videoFrames*frame, offsetTolerance) {
			diffs = append(diffs, fmt.Sprintf("video lasts %.3fs, its source %.3fs", v.Duration.Seconds(), sv.Duration.Seconds()))
		}
	}
	if sdr(want.Video) && (v.Transfer == "smpte2084" || v.Transfer == "arib-std-b67" || v.Primaries == "bt2020") {
		diffs = append(diffs, fmt.Sprintf("an SDR output tagged %s/%s (HDR colours on an SDR screen)", v.Transfer, v.Primaries))
	}
	return diffs
}

// primed is the audio encoder's priming a fragmented mp4 shows before 0: the muxer writes no
// edit list for it there (a plain file trims it with one), so the stream starts up to one audio
// frame early, though its first real sample is at 0. A player drops those samples as it
// decodes; the content is in sync.
func primed(a *ffmpeg.StreamSpan) time.Duration {
	if a.Start < 0 && a.Start >= -syncTolerance {
		return -a.Start
	}
	return 0
}

// sdr reports whether a video output is 8-bit: SDR, to be tagged BT.709.
func sdr(v *ffmpeg.Video) bool {
	return v.Codec != "copy" && !strings.Contains(v.PixFmt, "10") && !strings.Contains(v.PixFmt, "12")
}

// sources are the input's streams an output is made of: its video, and the audio track the
// plan maps.
func sources(p *ffmpeg.ProbeResult, want ffmpeg.Output) (v, a *ffmpeg.Stream) {
	if p == nil {
		return nil, nil
	}
	if s, ok := p.Video(); ok {
		v = &s
	}
	if want.Audio == nil {
		return v, nil
	}
	track := want.Audio.Track
	if len(want.Audio.Tracks) > 0 {
		track = want.Audio.Tracks[0].N
	}
	return v, audioSource(p, track)
}

// audioSource is the input's audio track n (counted among its audio streams), nil if none.
func audioSource(p *ffmpeg.ProbeResult, n int) *ffmpeg.Stream {
	k := 0
	for i := range p.Streams {
		if p.Streams[i].Type != "audio" {
			continue
		}
		if k == n {
			return &p.Streams[i]
		}
		k++
	}
	return nil
}

// mismatch is the verdict on an output that differs from its input: the worker's fault
// (internal, retried) when ffmpeg decoded the input cleanly; the input's (invalid_input) when
// ffmpeg reported damage or the input was cut short.
func mismatch(c *check, diffs []string) error {
	what := strings.Join(diffs, "; ")
	switch {
	case ffmpeg.TruncatedInput(c.stderr):
		return &job.Error{Class: job.ClassInvalidInput, Reason: "input is truncated: " + what}
	case strings.TrimSpace(c.stderr) != "":
		return &job.Error{Class: job.ClassInvalidInput, Reason: "the input is damaged (ffmpeg reported errors): " + what}
	}
	return &job.Error{Class: job.ClassInternal, Reason: "output differs from the input: " + what}
}

// checkTracks checks the output's audio and subtitle tracks against the plan: every audio
// track it keeps, with samples, and every subtitle track (a subtitle track may hold no cue:
// the input's may have none in the span encoded).
func checkTracks(c *check, want ffmpeg.Output, spans []ffmpeg.StreamSpan) error {
	audio, subs := kinded(spans, "audio"), kinded(spans, "subtitle")
	if want.Audio != nil && len(want.Audio.Tracks) > 1 {
		if len(audio) != len(want.Audio.Tracks) {
			return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("output has %d audio tracks, the plan %d", len(audio), len(want.Audio.Tracks))}
		}
		for k, a := range audio {
			if a.Packets == 0 {
				return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("audio track %d of the output has no samples", k)}
			}
		}
	}
	if len(subs) != len(want.Subtitles) {
		return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("output has %d subtitle tracks, the plan %d", len(subs), len(want.Subtitles))}
	}
	return nil
}

// compareTracks compares each audio track after the first (compare has the first) with its
// source: as long, within the same tolerance.
func compareTracks(c *check, want ffmpeg.Output, spans []ffmpeg.StreamSpan) []string {
	p := c.meter.Probe()
	if p == nil || want.Audio == nil || len(want.Audio.Tracks) < 2 {
		return nil
	}
	var diffs []string
	for k, a := range kinded(spans, "audio") {
		if k == 0 || k >= len(want.Audio.Tracks) {
			continue
		}
		src := audioSource(p, want.Audio.Tracks[k].N)
		if src == nil || src.Duration <= 0 {
			continue
		}
		if d := src.Duration - (a.Duration - primed(&a)); d > audioShort {
			diffs = append(diffs, fmt.Sprintf("audio track %d lasts %.3fs, its source %.3fs", k, (a.Duration-primed(&a)).Seconds(), src.Duration.Seconds()))
		}
	}
	return diffs
}

// kinded is the file's streams of a kind, in order.
func kinded(spans []ffmpeg.StreamSpan, kind string) []ffmpeg.StreamSpan {
	var out []ffmpeg.StreamSpan
	for _, s := range spans {
		if s.Type == kind {
			out = append(out, s)
		}
	}
	return out
}
