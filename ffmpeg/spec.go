package ffmpeg

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Input says where ffmpeg reads the media from.
type Input struct {
	// Path is "" for pipe:0 (the worker writes into Process.Stdin), or a
	// local spool file the worker wrote (for mp4 with moov at the end).
	// It is passed as "file:<Path>" so no other protocol can be named.
	Path string
	// Format optionally forces a demuxer; it must be one of the allowed
	// demuxers (see AllowedDemuxers).
	Format string
}

// Video describes the video stream of an output.
type Video struct {
	Codec   string // libx264, libx265, libvpx, libvpx-vp9, libaom-av1, libsvtav1, copy
	Width   int    // 0 = keep (or keep aspect when only Height is set); must be even
	Height  int    // 0 = keep (or keep aspect when only Width is set); must be even
	CRF     int    // 0 = encoder default
	Preset  string // x264/x265 preset; libvpx*: realtime|good|best (-deadline); libsvtav1: 0..13
	Bitrate string // e.g. "2500k"
	MaxRate string
	BufSize string
	PixFmt  string // default yuv420p when encoding
	// FPS > 0 makes the stream constant-rate at FPS (fps filter, -fps_mode cfr). 0 keeps every
	// decoded frame with its timestamp (-fps_mode passthrough): a phone's variable-rate video
	// is neither padded with duplicated frames, as the mp4 muxer's default (cfr at a guessed
	// rate) would, nor thinned where timestamps collide in the encoder's time base, as vfr
	// does.
	FPS         float64
	GOP         int
	Profile     string
	Deinterlace bool // yadif, on frames flagged interlaced
	// Fit makes Width x Height a bounding box rather than a size: the frame is scaled, in square
	// pixels and keeping its display aspect ratio, to fit in the box (turned to portrait for
	// portrait frames), never upscaled, to even dimensions. ffmpeg evaluates the rule on the
	// decoded (auto-rotated) frame, so the argv does not depend on a probe of the input.
	Fit bool
	// ToneMap, when set, is the input's colour (Stream.WideColour: HDR, or BT.2020 SDR) that
	// this SDR output converts to BT.709 (see toneMapFilters) after its scale, and the output
	// is tagged BT.709. Nil keeps the input's colour and its tags as they are: an SDR input, or
	// an output that can carry HDR (HighBitDepth).
	ToneMap *Colour
	// Burn, when set, draws a subtitle track into the picture (see Burn).
	Burn *Burn

	// Issue 14, part 2 (jobfeat). HDR, when set, keeps the input's HDR in a 10-bit x265
	// output: its colour tags and mastering metadata (features.go). Overlay lays an image
	// over the frame, after the scale.
	HDR     *HDR
	Overlay *Overlay
}

// Audio describes the audio stream of an output.
type Audio struct {
	Codec      string // aac, libopus, libmp3lame, libvorbis, flac, copy
	Bitrate    string // e.g. "128k"
	Channels   int
	SampleRate int
	// Tracks, when set, are the audio streams kept, each encoded the same way, in this order,
	// with their default dispositions; otherwise only track Track (-map 0:a:Track?): the
	// first by default. With Spec.Program the tracks are the programme's.
	Tracks []AudioTrack
	// Track is the audio stream used, counted among the input's audio streams.
	Track int
	// Loudness, when set, normalises the track's loudness (issue 14, part 2: features.go).
	Loudness *Loudness
}

// Output is one encoded output, written to its own pipe.
type Output struct {
	Container string        // mp4 | webm | m4a | mkv | mpegts | ogg | nut
	Video     *Video        // nil = no video (-vn)
	Audio     *Audio        // nil = no audio (-an)
	Duration  time.Duration // 0 = whole input; -t
	// MaxBytes caps the output's size (-fs): once it holds this many bytes ffmpeg ends it as if
	// the input had ended, and exits 0. 0 = no cap. It bounds what a crafted input (a timestamp
	// gap ffmpeg fills with duplicated frames) can make the worker write. Fragmented mp4 is
	// written a fragment (one GOP) at a time, so it can overshoot by one fragment.
	MaxBytes int64
	// Path, when set, makes ffmpeg write this local file (a worker's spool file) instead of
	// the output's pipe: an mp4 or m4a with its index at the front (-movflags +faststart),
	// which ffmpeg must seek back to write. Progressive-download players start it at once.
	Path string
	// Segment > 0 makes the output a CMAF stream (fragmented mp4 only) to be cut into segments
	// of this length: keyframes are forced at every multiple of Segment, at the same instants in
	// every output of the run, so renditions of a ladder switch cleanly; scene-cut keyframes are
	// off so that fragments (one per keyframe) line up with segments.
	Segment time.Duration
	// Images, when set, makes the output a stream of JPEG images (thumbnails: a poster, frames
	// or a sprite sheet, see Images); Container, Video and Audio must then be empty.
	Images *Images
	// Window, when set, makes the output a chunk of a split job: video only, in MPEG-TS, the
	// frames of the window on the input's clock (Spec.CopyTS), stitchable (see split.go).
	Window *Window
	// VideoInput is the input the output's video comes from: 0 (Spec.Input) or one of
	// Spec.VideoInputs (1, 2, ...): a split ladder's stitch, a rung per input.
	VideoInput int
	// Subtitles are the output's subtitle streams (mp4, webm, mkv; the webvtt container is one
	// subtitle stream alone: a ladder's subtitle rendition).
	Subtitles []Subtitle
	// Start drops what comes before it on the input's clock, from its start (-ss on the
	// output: decoded and discarded, so the output starts on the first frame at or after it,
	// and the audio on the sample): a job's clip, with Duration its length (issue 14, part 2).
	Start time.Duration
}

// Spec is one ffmpeg run: one input, one or more outputs.
type Spec struct {
	Input     Input
	Outputs   []Output
	MaxPixels int64 // 0 = no limit; decoder refuses larger frames
	// SplitVideo decodes the video once and splits the decoded frames in one filter graph
	// (-filter_complex ... split=N) among the outputs that encode video, instead of a filter
	// chain per output: a deinterlace every output asks for runs once. The input must have a
	// video stream (the graph names 0:V:0, which is not optional there): set it after a probe.
	SplitVideo bool
	// Threads, when > 0, is -threads for every encoder of this run, over Config.Threads: the
	// worker shares the machine's cores among the jobs it runs at once.
	Threads int
	// Program, when > 0, takes every stream from that programme of the input (its program_id,
	// ffmpeg's p:N): one channel of a broadcast multiplex. 0 takes them from the whole input.
	Program int
	// CopyTS keeps the input's timestamps as they are (-copyts): a split job's chunks.
	CopyTS bool
	// AudioInput, when set, is where the outputs' audio comes from (a split job's stitch: the
	// video is the concatenated chunks, the audio encoded once).
	AudioInput *AudioInput
	// VideoInputs are more inputs after Input (local files; Output.VideoInput names them).
	VideoInputs []Input
	// SubtitleInputs are sidecar subtitle files (local spool files the worker wrote and
	// checked, Format one of SubtitleFormats), after every other input; Subtitle.Input names
	// them from 1.
	SubtitleInputs []Input
}

// MaxProgram is the largest Spec.Program: MPEG-TS programme numbers are 16 bits.
const MaxProgram = 65535

// MaxOutputs bounds the number of outputs (and so of pipes) of one run.
const MaxOutputs = 16

// AllowedDemuxers is the -format_whitelist given to ffmpeg and ffprobe: every demuxer of
// ffmpeg 5.1 for audio and video media that reads only the bytes it is given. A probe picks
// among these and nothing else; a file of any other format fails as "not on whitelist"
// (invalid_input). README.md, "Media decisions", has the list and its reasons.
//
// Left out on purpose, and why:
//   - they open other resources: playlists and manifests (hls, dash, webm_dash_manifest, imf),
//     concat, image2 (an image sequence named by a pattern), vobsub (opens the .sub beside the
//     .idx), mlv (opens the .M00.. files of a recording); with a spool file as input, the file
//     protocol is allowed and they could read other local files. mov follows external data
//     references only with -enable_drefs, off by default and never set here.
//   - they synthesise media rather than read it: lavfi, sbg, libgme, libopenmpt, and the text
//     renderers bin, xbin, adf, idf, tty.
//   - they are a protocol, device or session, not a file: rtp, rtsp, sdp, sap, data, and the
//     capture devices (alsa, pulse, jack, oss, openal, fbdev, kmsgrab, x11grab, video4linux2,
//     iec61883, libdc1394, libcdio).
//   - still and animated images (image2pipe, every *_pipe image demuxer, gif, apng, ico,
//     alias_pix, brender_pix, fits, txd, ...): a worker transcodes video and audio, and an image
//     canvas is the classic decompression bomb (see worker/hostile_test.go).
//   - subtitle and metadata files (srt, ass, webvtt, ffmetadata, ...): no audio or video to
//     transcode, so they would be refused after the probe anyway.
//   - raw streams chosen only by -f (rawvideo, s16le and the other PCM layouts, codec2raw,
//     ...): they have no probe, and a job cannot name a demuxer.
//   - formats of games' and consoles' cut-scenes (4xm, bink, smk, thp, xmv, ...): no camera,
//     editor or broadcaster writes them, and their demuxers and decoders are the least exercised
//     parsers in ffmpeg.
var AllowedDemuxers = []string{
	// Containers: phones, cameras, the web, editors.
	"mov", "mp4", "m4a", "3gp", "3g2", "mj2",
	"matroska", "webm",
	"avi", "flv", "kux", "ogg", "nut", "ivf", "obu",
	"asf", "rm", "ivr", "nsv", "nuv", "r3d", "cine",
	// Broadcast and post-production.
	"mpegts", "mpeg", "pva", "ty", "mxf", "gxf", "lxf", "dv", "wtv",
	// Security cameras.
	"dhav", "ifv",
	// Elementary video streams.
	"h261", "h263", "h264", "hevc", "mpegvideo", "m4v", "vc1", "av1", "avs2", "avs3",
	"cavsvideo", "dirac", "dnxhd", "mjpeg", "mjpeg_2000", "yuv4mpegpipe",
	// Audio files and elementary audio streams.
	"wav", "w64", "aiff", "caf", "au", "sox", "ircam", "nistsphere", "avr", "epaf",
	"mp3", "aac", "loas", "ac3", "eac3", "dts", "dtshd", "truehd", "mlp", "spdif", "s337m",
	"flac", "ape", "tta", "wv", "tak", "shn", "mpc", "mpc8", "dsf", "wsd",
	"amr", "amrnb", "amrwb", "gsm", "g723_1", "g729", "ilbc", "qcp", "sbc", "codec2",
	"oma", "voc", "xwma", "mmf", "act", "dss", "vqf", "rso",
}

// Container muxer arguments. mp4 and m4a are fragmented so they can be
// written to a pipe (the plain mp4 muxer needs to seek back for moov).
// ffmpeg 5.1 accepts the ipod muxer (.m4a) with the same movflags.
var containerArgs = map[string][]string{
	"mp4": {"-f", "mp4", "-movflags", "+frag_keyframe+delay_moov+default_base_moof"},
	"m4a": {"-f", "ipod", "-movflags", "+frag_keyframe+delay_moov+default_base_moof"},
	// Matroska and WebM go out as live streams: from a pipe the muxer cannot come back to
	// write a duration or an index anyway, and without -live it would write the -t cap (12 h)
	// as the file's duration.
	"webm":   {"-f", "webm", "-live", "1"},
	"mkv":    {"-f", "matroska", "-live", "1"},
	"mpegts": {"-f", "mpegts"},
	"ogg":    {"-f", "ogg"},
	// nut streams anything, raw frames included: the container for uncompressed intermediates.
	"nut": {"-f", "nut"},
}

var (
	allVideo = []string{"libx264", "libx265", "libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1", "rawvideo", "copy"}
	allAudio = []string{"aac", "libopus", "libmp3lame", "libvorbis", "flac", "pcm_s16le", "copy"}

	// codecs each container can carry; nil video list = no video allowed.
	containerVideo = map[string][]string{
		"mp4":    {"libx264", "libx265", "libvpx-vp9", "libaom-av1", "libsvtav1", "copy"},
		"m4a":    nil,
		"webm":   {"libvpx", "libvpx-vp9", "libaom-av1", "libsvtav1", "copy"},
		"mkv":    allVideo,
		"mpegts": {"libx264", "libx265", "copy"},
		"ogg":    nil,
		"nut":    allVideo,
	}
	containerAudio = map[string][]string{
		"mp4":    {"aac", "libopus", "libmp3lame", "flac", "copy"},
		"m4a":    {"aac", "copy"},
		"webm":   {"libopus", "libvorbis", "copy"},
		"mkv":    allAudio,
		"mpegts": {"aac", "libopus", "libmp3lame", "copy"},
		"ogg":    {"libopus", "libvorbis", "flac", "copy"},
		"nut":    allAudio,
	}

	x26xPresets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}
	vpxDeadline = []string{"realtime", "good", "best"}
	svtPresets  = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"}

	// Rates and tokens are bounded in length too: they come from jobs, and an option value
	// longer than any real one is a mistake or an attack, never a setting.
	rateRe  = regexp.MustCompile(`^[0-9]{1,16}(\.[0-9]{1,6})?[kKmMgG]?$`)
	tokenRe = regexp.MustCompile(`^[a-z0-9_]{1,32}$`)
)

// Limits of an encoded video stream.
const (
	MaxVideoSide = 16384 // Video.Width and Video.Height
	MaxFPS       = 240   // Video.FPS
	MaxGOP       = 1000  // Video.GOP, in frames
)

// Containers returns the containers an Output may name, sorted.
func Containers() []string {
	names := make([]string, 0, len(containerVideo))
	for c := range containerVideo {
		names = append(names, c)
	}
	slices.Sort(names)
	return names
}

// CarriesVideo reports whether container can hold a video stream made by encoder (or copy).
func CarriesVideo(container, encoder string) bool {
	return slices.Contains(containerVideo[container], encoder)
}

// CarriesAudio reports whether container can hold an audio stream made by encoder (or copy).
func CarriesAudio(container, encoder string) bool {
	return slices.Contains(containerAudio[container], encoder)
}

// ErrSpec is matched (errors.Is) by every spec validation error.
var ErrSpec = errors.New("ffmpeg: invalid spec")

// SpecError is a Spec that cannot be turned into an argv. It matches both
// ErrSpec and ErrInvalidInput: a job asking for something this package
// cannot do fails the same way as bad media, without retries.
type SpecError struct {
	Field string // e.g. "Outputs[1].Video.Codec"
	Msg   string
}

func (e *SpecError) Error() string { return "ffmpeg: invalid spec: " + e.Field + ": " + e.Msg }

// Unwrap lets errors.Is match ErrSpec and ErrInvalidInput.
func (e *SpecError) Unwrap() []error { return []error{ErrSpec, ErrInvalidInput} }

func specErr(field, format string, a ...any) error {
	return &SpecError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// OutputFD is the file descriptor ffmpeg writes output i to.
func OutputFD(i int) int { return 3 + i }

// ProgressFD is the file descriptor ffmpeg writes -progress to: the one
// after the last output.
func ProgressFD(nOutputs int) int { return 3 + nOutputs }

// Args returns ffmpeg's argv (without the program name) for s, with the
// encoders' thread count left to ffmpeg. Use Runner.Args to apply
// Config.Threads.
func (s Spec) Args() ([]string, error) { return s.args(0) }

func (s Spec) args(threads int) ([]string, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if s.Threads > 0 {
		threads = s.Threads
	}
	a := []string{
		"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error",
		"-progress", "pipe:" + strconv.Itoa(ProgressFD(len(s.Outputs))), "-stats_period", "0.5",
	}
	a = append(a, ProbeDepth...)
	if s.MaxPixels > 0 {
		a = append(a, "-max_pixels", strconv.FormatInt(s.MaxPixels, 10))
	}
	if s.CopyTS {
		a = append(a, "-copyts")
	}
	a = append(a, inputArgs(s.Input)...)
	for _, in := range s.VideoInputs {
		a = append(a, inputArgs(in)...)
	}
	audioFrom := inputStreams(s.Program)
	if ai := s.AudioInput; ai != nil {
		if ai.Offset != 0 {
			a = append(a, "-itsoffset", strconv.FormatFloat(ai.Offset.Seconds(), 'f', -1, 64))
		}
		a = append(a, inputArgs(Input{Path: ai.Path})...)
		audioFrom = strconv.Itoa(1+len(s.VideoInputs)) + ":"
	}
	subBase := 1 + len(s.VideoInputs)
	if s.AudioInput != nil {
		subBase++
	}
	for _, in := range s.SubtitleInputs {
		a = append(a, subtitleInputArgs(in)...)
	}
	// Overlay images are the last inputs, one per output that has one.
	overlays := make([]int, len(s.Outputs))
	n := subBase + len(s.SubtitleInputs)
	for i, o := range s.Outputs {
		if o.Video != nil && o.Video.Overlay != nil {
			a = append(a, overlayInputArgs(o.Video.Overlay)...)
			overlays[i], n = n, n+1
		}
	}
	labels := make([]string, len(s.Outputs))
	if s.SplitVideo {
		var graph string
		graph, labels = splitGraph(s.Outputs, s.Program, overlays)
		if graph != "" {
			a = append(a, "-filter_complex", graph)
		}
	}
	for i, o := range s.Outputs {
		if v := o.Video; v != nil && v.Burn != nil && v.Burn.Image && labels[i] == "" {
			// Its own graph: the subtitle bitmaps are overlaid on the decoded frame.
			labels[i] = "b" + strconv.Itoa(i)
			a = append(a, "-filter_complex", imageBurnGraph(s.Program, v, labels[i]))
		} else if overlays[i] > 0 && labels[i] == "" && o.Window == nil {
			labels[i] = "ov" + strconv.Itoa(i)
			a = append(a, "-filter_complex", overlayGraph(videoStream(s.Program), append([]string{holdFirst}, videoFilters(o.Video)...), o.Video.Overlay, overlays[i], labels[i]))
		}
	}
	for i, o := range s.Outputs {
		a = appendOutput(a, o, threads, labels[i], s.Program, audioFrom)
		a = appendSubtitles(a, o.Subtitles, inputStreams(s.Program), subBase)
		if o.Container == "webvtt" || o.Segment > 0 {
			// Chapters are the files' (a CMAF stream or a WebVTT rendition has none).
			a = append(a, "-map_chapters", "-1")
		}
		if o.Path != "" {
			a = append(a, "-y", "file:"+o.Path)
			continue
		}
		a = append(a, "pipe:"+strconv.Itoa(OutputFD(i)))
	}
	return a, nil
}

// splitGraph is the -filter_complex that decodes the video once and feeds each encoding
// output its own chain: [0:V:0]yadif,split=N[s0]..;[s0]scale..[v0];... labels[i] is the
// output's pad, "" for outputs that do not encode video.
func splitGraph(outs []Output, program int, overlays []int) (string, []string) {
	labels := make([]string, len(outs))
	var idx []int
	deint := true
	for i, o := range outs {
		if o.Video != nil && o.Video.Codec != "copy" && (o.Video.Burn == nil || !o.Video.Burn.Image) {
			idx = append(idx, i)
			deint = deint && o.Video.Deinterlace
		}
	}
	if len(idx) == 0 {
		return "", labels
	}
	if g, ok := cascadeGraph(outs, idx, labels, program); ok && !slices.ContainsFunc(overlays, func(n int) bool { return n > 0 }) {
		return g, labels
	}
	var b strings.Builder
	b.WriteString("[" + videoStream(program) + "]" + holdFirst + ",")
	if deint {
		b.WriteString("yadif=deint=interlaced,")
	}
	b.WriteString("split=" + strconv.Itoa(len(idx)))
	for k := range idx {
		b.WriteString("[s" + strconv.Itoa(k) + "]")
	}
	for k, i := range idx {
		v := *outs[i].Video
		if deint {
			v.Deinterlace = false // done before the split
		}
		labels[i] = "v" + strconv.Itoa(k)
		if overlays[i] > 0 {
			b.WriteString(";" + overlayGraph("s"+strconv.Itoa(k), videoFilters(&v), v.Overlay, overlays[i], labels[i]))
			continue
		}
		b.WriteString(";[s" + strconv.Itoa(k) + "]" + strings.Join(videoFilters(&v), ",") + "[" + labels[i] + "]")
	}
	return b.String(), labels
}

// cascadeGraph is the split graph of a ladder: when the encoding outputs have exact sizes (a
// planned ladder's rungs), from the largest down, alike but for their size, each rung is scaled
// from the one above it instead of from the full-size frame (1080p -> 720p -> 480p -> 360p):
// every scaler but the first reads a smaller picture, and the pixel format is converted once.
// The sizes are those planned from the input, whichever picture they are scaled from. ok is
// false when the outputs are not such a ladder.
func cascadeGraph(outs []Output, idx []int, labels []string, program int) (string, bool) {
	if len(idx) < 2 {
		return "", false
	}
	first := outs[idx[0]].Video
	for k, i := range idx {
		v := outs[i].Video
		if v.Fit || v.Burn != nil || v.Width <= 0 || v.Height <= 0 || v.FPS != first.FPS || v.PixFmt != first.PixFmt || v.Deinterlace != first.Deinterlace || !sameColour(v.ToneMap, first.ToneMap) {
			return "", false
		}
		if prev := outs[idx[max(k-1, 0)]].Video; v.Width > prev.Width || v.Height > prev.Height {
			return "", false
		}
	}
	pre := *first
	pre.Width, pre.Height, pre.ToneMap = 0, 0, nil
	var b strings.Builder
	b.WriteString("[" + videoStream(program) + "]" + holdFirst + ",")
	for k, i := range idx {
		v := outs[i].Video
		var chain []string
		if k == 0 {
			// yadif and fps once, before everything (videoFilters' last filter is the format).
			chain = videoFilters(&pre)
			chain = chain[:len(chain)-1]
		} else {
			b.WriteString(";[t" + strconv.Itoa(k-1) + "]")
		}
		chain = append(chain, "scale="+strconv.Itoa(v.Width)+":"+strconv.Itoa(v.Height), "setsar=1")
		if k == 0 {
			// Tone-mapped once, on the largest rung: the smaller ones are scaled from SDR.
			chain = append(chain, videoFilters(&Video{PixFmt: v.PixFmt, ToneMap: v.ToneMap})...)
		}
		b.WriteString(strings.Join(chain, ","))
		labels[i] = "v" + strconv.Itoa(k)
		if k == len(idx)-1 {
			b.WriteString("[" + labels[i] + "]")
		} else {
			b.WriteString(",split=2[" + labels[i] + "][t" + strconv.Itoa(k) + "]")
		}
	}
	return b.String(), true
}

// inputArgs are the whitelists and the input itself; shared with ffprobe.
func inputArgs(in Input) []string {
	a := make([]string, 0, 8)
	proto, url := "pipe", "pipe:0"
	if in.Path != "" {
		proto, url = "file", "file:"+in.Path
	}
	a = append(a, "-protocol_whitelist", proto, "-format_whitelist", strings.Join(AllowedDemuxers, ","))
	if in.Format != "" {
		a = append(a, "-f", in.Format)
	}
	return append(a, "-i", url)
}

// inputStreams is the stream specifier prefix of the input's streams a run uses: the whole
// input, or one programme of it (Spec.Program).
func inputStreams(program int) string {
	if program > 0 {
		return "0:p:" + strconv.Itoa(program) + ":"
	}
	return "0:"
}

// videoStream is the input's video: its first video stream that is not an attached picture
// (V, not v: cover art in an mp3, flac or mkv is a still image, not the video).
func videoStream(program int) string { return inputStreams(program) + "V:0" }

// appendOutput adds output o's options; label, when set, is the filter graph pad its video
// comes from (see SplitVideo); program is Spec.Program.
func appendOutput(a []string, o Output, threads int, label string, program int, audioFrom string) []string {
	if o.Images != nil {
		return appendImageCaps(appendImages(a, o.Images, threads, program), o)
	}
	switch {
	case label != "":
		a = append(a, "-map", "["+label+"]")
	case o.Video != nil && o.VideoInput > 0:
		a = append(a, "-map", strconv.Itoa(o.VideoInput)+":v:0")
	case o.Video != nil:
		a = append(a, "-map", videoStream(program)+"?")
	}
	if o.Audio != nil {
		if len(o.Audio.Tracks) > 0 {
			for _, t := range o.Audio.Tracks {
				a = append(a, "-map", audioFrom+"a:"+strconv.Itoa(t.N))
			}
		} else {
			a = append(a, "-map", audioFrom+"a:"+strconv.Itoa(o.Audio.Track)+"?")
		}
	}
	if v := o.Video; v != nil {
		a = append(a, "-c:v", v.Codec)
		if v.Codec != "copy" {
			switch {
			case o.Window != nil:
				// On the source's clock: holding the first frame from 0 would move it.
				a = append(a, "-vf", windowFilter(o.Window)+","+strings.Join(videoFilters(v), ","))
			case label == "":
				a = append(a, "-vf", holdFirst+","+strings.Join(videoFilters(v), ","))
			}
			a = appendVideoEncode(a, v, o.Segment)
			if o.Window != nil && v.Codec == "libx264" {
				a = append(a, "-x264-params", "stitchable=1")
			}
			if threads > 0 {
				a = append(a, "-threads", strconv.Itoa(threads))
			}
		}
		switch {
		case o.Window != nil && o.Window.KeyEvery > 0 && v.Codec != "copy":
			a = appendGridKeyframes(a, v.Codec, o.Window)
		case o.Segment > 0 && v.Codec != "copy":
			a = appendForcedKeyframes(a, v.Codec, o.Segment)
		}
		if v.Codec == "libx265" && (o.Container == "mp4" || o.Container == "m4a") {
			// Apple players (QuickTime, Safari, iOS) play HEVC in mp4 only as hvc1 (parameter
			// sets in the sample entry), not ffmpeg's default hev1.
			a = append(a, "-tag:v", "hvc1")
		}
	} else {
		a = append(a, "-vn")
	}
	if au := o.Audio; au != nil {
		a = append(a, "-c:a", au.Codec)
		if au.Loudness != nil {
			a = append(a, "-af", loudnormFilter(au.Loudness))
		}
		if au.Bitrate != "" {
			a = append(a, "-b:a", au.Bitrate)
		}
		if au.Channels > 0 {
			a = append(a, "-ac", strconv.Itoa(au.Channels))
		}
		if au.SampleRate > 0 {
			a = append(a, "-ar", strconv.Itoa(au.SampleRate))
		}
		a = appendAudioDispositions(a, au.Tracks)
	} else {
		a = append(a, "-an")
	}
	if o.Start > 0 {
		a = append(a, "-ss", strconv.FormatFloat(o.Start.Seconds(), 'f', -1, 64))
	}
	if o.Duration > 0 {
		a = append(a, "-t", strconv.FormatFloat(o.Duration.Seconds(), 'f', -1, 64))
	}
	if o.MaxBytes > 0 {
		a = append(a, "-fs", strconv.FormatInt(o.MaxBytes, 10))
	}
	if o.Window != nil {
		a = appendChunkMux(a, o.Window)
	}
	return appendContainer(a, o)
}

// appendContainer adds the muxer arguments. A fragmented mp4 is cut at video keyframes; one
// without video would be a single fragment written at the very end (ffmpeg holding all of it
// in memory), so audio-only outputs are cut every second instead. The moov is written when the
// first fragment is ready (delay_moov), not before any sample (empty_moov): only then does the
// muxer know the streams' first timestamps, and writes the edit lists that start the video at
// its first frame despite the encoder's reorder delay and trim the audio encoder's priming, as
// a plain mp4 file has them: with empty_moov the video starts one reorder delay late and the
// audio is longer by its priming (lip sync off by 40-160 ms).
func appendContainer(a []string, o Output) []string {
	if o.Container == "webvtt" {
		// A ladder's subtitle rendition, cut into segments by the worker; no job names it.
		return append(a, "-f", "webvtt")
	}
	isMP4 := o.Container == "mp4" || o.Container == "m4a"
	if !isMP4 {
		return append(a, containerArgs[o.Container]...)
	}
	if o.Path != "" {
		return append(a, containerArgs[o.Container][0], containerArgs[o.Container][1], "-movflags", "+faststart")
	}
	flags := "+frag_keyframe+delay_moov+default_base_moof"
	if o.Video == nil {
		flags = "+delay_moov+default_base_moof"
		a = append(a, "-frag_duration", "1000000")
	}
	if o.Segment > 0 {
		flags += "+cmaf"
	}
	return append(a, containerArgs[o.Container][0], containerArgs[o.Container][1], "-movflags", flags)
}

// appendForcedKeyframes puts a keyframe at every multiple of seg (and nowhere else the encoder
// can be told not to), so every rendition of a ladder has its segment boundaries at the same
// instants.
func appendForcedKeyframes(a []string, codec string, seg time.Duration) []string {
	a = append(a, "-force_key_frames", "expr:gte(t,n_forced*"+strconv.FormatFloat(seg.Seconds(), 'f', -1, 64)+")")
	if codec == "libx264" {
		a = append(a, "-sc_threshold", "0")
	}
	return a
}

// holdFirst starts the video at the output's start when its first frame comes later (an edit
// list that shifts the video, an avi whose first frame is reordered): the first frame is shown
// from 0 until the second, as the ffmpeg CLI does, without adding frames (the CLI duplicates
// it). Timestamps in the graph are relative to the input's start, so an input starting at 10 s
// is not held for 10 s.
const holdFirst = "setpts='if(eq(N,0),min(PTS,0),PTS)'"

// videoFilters is the chain that turns decoded frames into what the encoder of v takes.
func videoFilters(v *Video) []string {
	var filters []string
	if v.Deinterlace {
		// Only frames flagged interlaced are touched; progressive ones pass through.
		filters = append(filters, "yadif=deint=interlaced")
	}
	if v.FPS > 0 {
		filters = append(filters, "fps="+strconv.FormatFloat(v.FPS, 'f', -1, 64))
	}
	switch {
	case v.Fit:
		w, h := fitExpr(v.Width, v.Height)
		filters = append(filters, "scale=w='"+w+"':h='"+h+"'", "setsar=1")
	case v.Width > 0 || v.Height > 0:
		// -2 keeps the aspect ratio with an even size, which 4:2:0 needs.
		w, h := v.Width, v.Height
		if w == 0 {
			w = -2
		}
		if h == 0 {
			h = -2
		}
		// setsar=1: the planned size is in square pixels, so anamorphic inputs come out right.
		filters = append(filters, "scale="+strconv.Itoa(w)+":"+strconv.Itoa(h), "setsar=1")
	}
	if v.ToneMap != nil {
		filters = append(filters, toneMapFilters(v.ToneMap)...)
	}
	if v.Burn != nil && v.Burn.Path != "" {
		filters = append(filters, burnText(v.Burn))
	}
	pix := v.PixFmt
	if pix == "" {
		pix = "yuv420p"
	}
	return append(filters, "format="+pix)
}

func appendVideoEncode(a []string, v *Video, seg time.Duration) []string {
	if v.FPS > 0 {
		a = append(a, "-fps_mode", "cfr")
	} else {
		// Every decoded frame with its own timestamp: vfr drops frames whose timestamps
		// collide in the encoder's time base (half of an extreme VFR phone clip's).
		// The input's time base: timestamps distinct there stay distinct in the encoder.
		a = append(a, "-fps_mode", "passthrough", "-enc_time_base:v", "-1")
	}
	if v.ToneMap != nil {
		a = append(a, sdrTags...)
	}
	var hdrParams string
	if v.HDR != nil {
		var tags []string
		tags, hdrParams = hdrEncodeArgs(v.HDR)
		a = append(a, tags...)
	}
	isVPX := strings.HasPrefix(v.Codec, "libvpx")
	if v.Preset != "" {
		if isVPX {
			a = append(a, "-deadline", v.Preset)
		} else {
			a = append(a, "-preset", v.Preset)
		}
	}
	if v.CRF > 0 {
		a = append(a, "-crf", strconv.Itoa(v.CRF))
		if isVPX && v.Bitrate == "" {
			a = append(a, "-b:v", "0") // constant quality mode needs it
		}
	}
	if v.Bitrate != "" {
		a = append(a, "-b:v", v.Bitrate)
	}
	if v.MaxRate != "" {
		a = append(a, "-maxrate", v.MaxRate)
	}
	if v.BufSize != "" {
		a = append(a, "-bufsize", v.BufSize)
	}
	if v.Profile != "" {
		a = append(a, "-profile:v", v.Profile)
	}
	if v.GOP > 0 {
		a = append(a, "-g", strconv.Itoa(v.GOP))
	}
	if isVPX {
		// libvpx's defaults (one thread row, cpu-used 0) run at a fraction of real time.
		speed := "4"
		if v.Preset == "realtime" {
			speed = "8"
		}
		a = append(a, "-row-mt", "1", "-cpu-used", speed)
	}
	if v.Codec == "libx265" {
		// x265 logs its own banner and statistics at info level, past ffmpeg's -loglevel.
		params := "log-level=error"
		if seg > 0 {
			params += ":scenecut=0"
		}
		params += hdrParams
		a = append(a, "-x265-params", params)
	}
	return a
}

func (s Spec) validate() error {
	if s.Input.Format != "" && !slices.Contains(AllowedDemuxers, s.Input.Format) {
		return specErr("Input.Format", "demuxer %q is not allowed", s.Input.Format)
	}
	if strings.ContainsRune(s.Input.Path, 0) {
		return specErr("Input.Path", "contains NUL")
	}
	if s.MaxPixels < 0 {
		return specErr("MaxPixels", "must be >= 0, got %d", s.MaxPixels)
	}
	if s.Threads < 0 || s.Threads > 256 {
		return specErr("Threads", "must be 0..256, got %d", s.Threads)
	}
	if ai := s.AudioInput; ai != nil && (!strings.HasPrefix(ai.Path, "/") || strings.ContainsRune(ai.Path, 0)) {
		return specErr("AudioInput.Path", "an absolute local file")
	}
	for i, in := range s.SubtitleInputs {
		if !strings.HasPrefix(in.Path, "/") || strings.ContainsRune(in.Path, 0) || !slices.Contains(SubtitleFormats, in.Format) {
			return specErr(fmt.Sprintf("SubtitleInputs[%d]", i), "an absolute local file, format %s", strings.Join(SubtitleFormats, " or "))
		}
	}
	for i, in := range s.VideoInputs {
		if !strings.HasPrefix(in.Path, "/") || strings.ContainsRune(in.Path, 0) || (in.Format != "" && !slices.Contains(AllowedDemuxers, in.Format)) {
			return specErr(fmt.Sprintf("VideoInputs[%d]", i), "an absolute local file, an allowed demuxer")
		}
	}
	for i, o := range s.Outputs {
		if o.VideoInput < 0 || o.VideoInput > len(s.VideoInputs) {
			return specErr(fmt.Sprintf("Outputs[%d].VideoInput", i), "no such input")
		}
	}
	if s.Program < 0 || s.Program > MaxProgram {
		return specErr("Program", "must be 0..%d, got %d", MaxProgram, s.Program)
	}
	if len(s.Outputs) == 0 {
		return specErr("Outputs", "at least one output is required")
	}
	if len(s.Outputs) > MaxOutputs {
		return specErr("Outputs", "at most %d outputs, got %d", MaxOutputs, len(s.Outputs))
	}
	for i, o := range s.Outputs {
		if err := o.validate(fmt.Sprintf("Outputs[%d]", i)); err != nil {
			return err
		}
		if err := validateSubtitles(fmt.Sprintf("Outputs[%d]", i), o.Container, o.Subtitles, len(s.SubtitleInputs)); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the output by the rules Spec.Args applies to each output, so that a caller
// (job validation) can refuse an output before there is a whole Spec or an input to run it
// on. The error is a *SpecError whose Field is relative to the output ("Video.Preset", or ""
// for the output itself).
func (o Output) Validate() error {
	err := o.validate("")
	var se *SpecError
	if errors.As(err, &se) {
		se.Field = strings.TrimPrefix(se.Field, ".")
	}
	return err
}

func (o Output) validate(field string) error {
	if o.Images != nil {
		return o.validateImages(field)
	}
	if o.Container == "webvtt" {
		if o.Video != nil || o.Audio != nil || o.Path != "" || o.Segment > 0 || o.Window != nil {
			return specErr(field, "a webvtt output has one subtitle stream and nothing else")
		}
		return validateSubtitles(field, o.Container, o.Subtitles, 1<<20)
	}
	vcodecs, ok := containerVideo[o.Container]
	if !ok {
		return specErr(field+".Container", "unknown container %q (want %s)", o.Container, strings.Join(Containers(), ", "))
	}
	if o.Video == nil && o.Audio == nil {
		return specErr(field, "needs Video or Audio")
	}
	if o.Duration < 0 {
		return specErr(field+".Duration", "must be >= 0, got %v", o.Duration)
	}
	if o.Start < 0 || (o.Start > 0 && o.Window != nil) {
		return specErr(field+".Start", "must be >= 0 (and not on a chunk), got %v", o.Start)
	}
	if o.MaxBytes < 0 {
		return specErr(field+".MaxBytes", "must be >= 0, got %d", o.MaxBytes)
	}
	if o.Segment < 0 || (o.Segment > 0 && o.Segment < 500*time.Millisecond) || o.Segment > time.Minute {
		return specErr(field+".Segment", "must be 0 or 0.5s..60s, got %v", o.Segment)
	}
	if o.Path != "" && (!strings.HasPrefix(o.Path, "/") || strings.ContainsRune(o.Path, 0) || (o.Container != "mp4" && o.Container != "m4a") || o.Segment > 0) {
		return specErr(field+".Path", "an absolute spool file, for mp4 or m4a only (not segmented)")
	}
	if o.Segment > 0 && o.Container != "mp4" && o.Container != "m4a" {
		return specErr(field+".Segment", "segments are cut from fragmented mp4, not %s", o.Container)
	}
	if w := o.Window; w != nil && (o.Container != "mpegts" || o.Audio != nil || o.Video == nil || !slices.Contains(Stitchable, o.Video.Codec) ||
		o.Segment > 0 || o.Path != "" || w.From < 0 || w.To <= w.From) {
		return specErr(field+".Window", "a chunk is the video of a stitchable encoder (%s) in mpegts, From < To", strings.Join(Stitchable, ", "))
	}
	if v := o.Video; v != nil {
		f := field + ".Video"
		if !slices.Contains(allVideo, v.Codec) {
			return specErr(f+".Codec", "unknown video codec %q", v.Codec)
		}
		if !slices.Contains(vcodecs, v.Codec) {
			return specErr(f+".Codec", "%s cannot carry video codec %q", o.Container, v.Codec)
		}
		if err := v.validate(f); err != nil {
			return err
		}
	}
	if au := o.Audio; au != nil {
		f := field + ".Audio"
		if !slices.Contains(allAudio, au.Codec) {
			return specErr(f+".Codec", "unknown audio codec %q", au.Codec)
		}
		if !slices.Contains(containerAudio[o.Container], au.Codec) {
			return specErr(f+".Codec", "%s cannot carry audio codec %q", o.Container, au.Codec)
		}
		if err := au.validate(f); err != nil {
			return err
		}
	}
	return nil
}

func (v *Video) validate(f string) error {
	if v.Codec == "copy" {
		if v.Width != 0 || v.Height != 0 || v.CRF != 0 || v.Preset != "" || v.Bitrate != "" ||
			v.MaxRate != "" || v.BufSize != "" || v.PixFmt != "" || v.FPS != 0 || v.GOP != 0 ||
			v.Profile != "" || v.Deinterlace || v.ToneMap != nil || v.Burn != nil || v.HDR != nil || v.Overlay != nil {
			return specErr(f, "copy cannot be combined with encoding options")
		}
		return nil
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"Width", v.Width}, {"Height", v.Height}} {
		switch {
		case v.Fit && (d.v < 0 || d.v > MaxVideoSide):
			// A box side: the frame fitted in it still comes out even.
			return specErr(f+"."+d.name, "must be 0..%d, got %d", MaxVideoSide, d.v)
		case d.v < 0 || d.v > MaxVideoSide || d.v%2 != 0:
			return specErr(f+"."+d.name, "must be 0 or an even number up to %d, got %d", MaxVideoSide, d.v)
		}
	}
	if v.CRF < 0 || v.CRF > 63 {
		return specErr(f+".CRF", "must be 0..63, got %d", v.CRF)
	}
	if v.Preset != "" {
		switch {
		case v.Codec == "libx264" || v.Codec == "libx265":
			if !slices.Contains(x26xPresets, v.Preset) {
				return specErr(f+".Preset", "%s takes %s, got %q", v.Codec, strings.Join(x26xPresets, ", "), v.Preset)
			}
		case strings.HasPrefix(v.Codec, "libvpx"):
			if !slices.Contains(vpxDeadline, v.Preset) {
				return specErr(f+".Preset", "%s takes realtime, good or best, got %q", v.Codec, v.Preset)
			}
		case v.Codec == "libsvtav1":
			if !slices.Contains(svtPresets, v.Preset) {
				return specErr(f+".Preset", "libsvtav1 takes 0 (slowest) to 13 (fastest), got %q", v.Preset)
			}
		default:
			return specErr(f+".Preset", "not supported for %s", v.Codec)
		}
	}
	for _, r := range []struct{ name, v string }{{"Bitrate", v.Bitrate}, {"MaxRate", v.MaxRate}, {"BufSize", v.BufSize}} {
		if r.v != "" && !rateRe.MatchString(r.v) {
			return specErr(f+"."+r.name, "want a number with optional k/M/G suffix, got %q", r.v)
		}
	}
	if v.PixFmt != "" && !tokenRe.MatchString(v.PixFmt) {
		return specErr(f+".PixFmt", "invalid pixel format %q", v.PixFmt)
	}
	if v.Profile != "" && !tokenRe.MatchString(v.Profile) {
		return specErr(f+".Profile", "invalid profile %q", v.Profile)
	}
	if v.ToneMap != nil {
		if err := v.ToneMap.validate(f + ".ToneMap"); err != nil {
			return err
		}
	}
	if v.Burn != nil {
		if err := v.Burn.validate(f + ".Burn"); err != nil {
			return err
		}
		if v.Burn.Image && v.Overlay != nil {
			return specErr(f+".Overlay", "cannot go with a burned-in image subtitle track")
		}
	}
	if v.HDR != nil {
		if v.ToneMap != nil || v.Codec != "libx265" || !HighBitDepth(v.PixFmt) {
			return specErr(f+".HDR", "is for libx265 in a 10-bit or deeper pixel format, not tone-mapped")
		}
		if err := v.HDR.validate(f + ".HDR"); err != nil {
			return err
		}
	}
	if v.Overlay != nil {
		if err := v.Overlay.validate(f + ".Overlay"); err != nil {
			return err
		}
	}
	if v.FPS < 0 || v.FPS > MaxFPS || v.FPS != v.FPS {
		return specErr(f+".FPS", "must be 0..%d, got %v", MaxFPS, v.FPS)
	}
	if v.GOP < 0 || v.GOP > MaxGOP {
		return specErr(f+".GOP", "must be 0..%d frames, got %d", MaxGOP, v.GOP)
	}
	return nil
}

func (a *Audio) validate(f string) error {
	if a.Codec == "copy" {
		if a.Bitrate != "" || a.Channels != 0 || a.SampleRate != 0 || a.Loudness != nil {
			return specErr(f, "copy cannot be combined with encoding options")
		}
		return nil
	}
	if a.Bitrate != "" && !rateRe.MatchString(a.Bitrate) {
		return specErr(f+".Bitrate", "want a number with optional k/M suffix, got %q", a.Bitrate)
	}
	if a.Track < 0 || a.Track > 64 {
		return specErr(f+".Track", "must be 0..64, got %d", a.Track)
	}
	if len(a.Tracks) > 64 {
		return specErr(f+".Tracks", "at most 64, got %d", len(a.Tracks))
	}
	for i, t := range a.Tracks {
		if t.N < 0 || t.N > 64 {
			return specErr(fmt.Sprintf("%s.Tracks[%d]", f, i), "must be 0..64, got %d", t.N)
		}
	}
	if a.Channels < 0 || a.Channels > 8 {
		return specErr(f+".Channels", "must be 0..8, got %d", a.Channels)
	}
	if a.SampleRate != 0 && (a.SampleRate < 8000 || a.SampleRate > 192000) {
		return specErr(f+".SampleRate", "must be 0 or 8000..192000, got %d", a.SampleRate)
	}
	if a.Loudness != nil {
		if err := a.Loudness.validate(f + ".Loudness"); err != nil {
			return err
		}
	}
	return nil
}

// Quote renders argv as one shell-safe line, for --explain output and
// logs. It is never used to run anything.
func Quote(argv []string) string {
	var b strings.Builder
	for i, s := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteArg(s))
	}
	return b.String()
}

func quoteArg(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && !strings.ContainsRune("_@%+=:,./-", c) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// fitExpr returns the scale filter's w and h expressions for Video.Fit. A zero box side is
// unbounded. The rounding matches the plan's: a scaled side rounds to the nearest even number,
// an unscaled one drops its odd pixel.
func fitExpr(bw, bh int) (w, h string) {
	const unbounded = 65536
	if bw == 0 {
		bw = unbounded
	}
	if bh == 0 {
		bh = unbounded
	}
	boxW, boxH := strconv.Itoa(bw), strconv.Itoa(bh)
	if bw > bh { // a landscape box turns for portrait frames
		portrait := "gt(ih,iw*sar)"
		boxW = "if(" + portrait + "," + strconv.Itoa(bh) + "," + strconv.Itoa(bw) + ")"
		boxH = "if(" + portrait + "," + strconv.Itoa(bw) + "," + strconv.Itoa(bh) + ")"
	}
	f := "min(1,min(" + boxW + "/(iw*sar)," + boxH + "/ih))"
	even := func(x string) string {
		return "max(2,if(lt(" + f + ",1),2*round(" + x + "/2),2*floor(" + x + "/2)))"
	}
	return even("iw*sar*" + f), even("ih*" + f)
}
