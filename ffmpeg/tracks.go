package ffmpeg

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// AudioTrack is one audio stream an output keeps (Audio.Tracks).
type AudioTrack struct {
	// N counts among the input's audio streams (the programme's, with Spec.Program): a:N.
	N int
	// Default is the track's default disposition in the output (the one a player picks).
	Default bool
}

// Subtitle is one subtitle stream of an output. Its language and title are the source
// stream's unless set here (a sidecar file has none of its own).
type Subtitle struct {
	// Input is 0 for the main input's subtitle stream N (s:N, of the programme with
	// Spec.Program), or k > 0 for the one stream of Spec.SubtitleInputs[k-1].
	Input int
	N     int
	// Codec is the output's: mov_text (mp4), webvtt (webm, the webvtt container), or for
	// mkv copy, srt or ass.
	Codec    string
	Language string // ISO 639-2 code; "" keeps the source's
	Title    string
	Default  bool
}

// Burn draws a subtitle track into the picture, after the scale (text renders at the
// output's size).
type Burn struct {
	// Path is a local text subtitle file (SRT or ASS, written by the worker) rendered with the
	// subtitles filter.
	Path string
	// Image, when Path is empty, overlays the main input's image subtitle stream N (PGS, DVB,
	// VobSub) on the frame before it is scaled (the bitmaps are on the input's canvas).
	Image bool
	N     int
}

// Subtitle codecs, by the containers that carry each (an empty list: none).
var containerSubtitles = map[string][]string{
	"mp4":    {"mov_text"},
	"webm":   {"webvtt"},
	"mkv":    {"copy", "srt", "ass", "webvtt"},
	"webvtt": {"webvtt"},
}

// SubtitleFormats are the demuxers a sidecar subtitle file (Spec.SubtitleInputs) may be read
// with: text, parsed and checked by the worker before ffmpeg sees it.
var SubtitleFormats = []string{"srt", "webvtt"}

// CarriesSubtitles reports whether container can hold a subtitle stream of codec.
func CarriesSubtitles(container, codec string) bool {
	return slices.Contains(containerSubtitles[container], codec)
}

// TextSubtitle reports whether a subtitle codec (as ffprobe names it) is text, which can be
// converted to mov_text or WebVTT; the others (PGS, DVB, VobSub) are bitmaps.
func TextSubtitle(codec string) bool {
	switch codec {
	case "subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text", "microdvd", "subviewer", "subviewer1", "sami", "realtext", "jacosub", "mpl2", "pjs", "vplayer", "stl":
		return true
	}
	return false
}

// burnPathRe bounds a burned file's path to what needs no escaping inside a filter graph.
var burnPathRe = regexp.MustCompile(`^/[A-Za-z0-9/._-]+$`)

func (b *Burn) validate(f string) error {
	if b.Path != "" && (!burnPathRe.MatchString(b.Path) || strings.Contains(b.Path, "..")) {
		return specErr(f+".Path", "an absolute path of letters, digits and / . _ -, got %q", b.Path)
	}
	if b.Path == "" && !b.Image {
		return specErr(f, "a subtitle file (Path) or an image subtitle stream (Image)")
	}
	if b.N < 0 || b.N > 1000 {
		return specErr(f+".N", "must be 0..1000, got %d", b.N)
	}
	return nil
}

// burnText is the subtitles filter that renders the file of b into the frame.
func burnText(b *Burn) string { return "subtitles=filename=" + b.Path }

func validateSubtitles(field, container string, subs []Subtitle, inputs int) error {
	for i, s := range subs {
		f := fmt.Sprintf("%s.Subtitles[%d]", field, i)
		if !CarriesSubtitles(container, s.Codec) {
			return specErr(f+".Codec", "%s cannot carry subtitle codec %q", container, s.Codec)
		}
		if s.Input < 0 || s.Input > inputs || s.N < 0 || s.N > 1000 || (s.Input > 0 && s.N != 0) {
			return specErr(f, "no such subtitle stream (input %d, stream %d)", s.Input, s.N)
		}
		if s.Language != "" && !langRe.MatchString(s.Language) {
			return specErr(f+".Language", "an ISO 639-2 code, got %q", s.Language)
		}
		if strings.ContainsFunc(s.Title, func(r rune) bool { return r < ' ' }) || len(s.Title) > 256 {
			return specErr(f+".Title", "at most 256 characters, no control characters")
		}
	}
	if container == "webvtt" && len(subs) != 1 {
		return specErr(field+".Subtitles", "a webvtt output is one subtitle stream, got %d", len(subs))
	}
	return nil
}

var langRe = regexp.MustCompile(`^[a-z]{3}$`)

// appendSubtitles maps the output's subtitle streams and sets what they carry. subFrom is the
// main input's stream specifier prefix, base the index of the first sidecar input.
func appendSubtitles(a []string, subs []Subtitle, subFrom string, base int) []string {
	for _, s := range subs {
		if s.Input > 0 {
			a = append(a, "-map", strconv.Itoa(base+s.Input-1)+":s:0")
		} else {
			a = append(a, "-map", subFrom+"s:"+strconv.Itoa(s.N))
		}
	}
	for k, s := range subs {
		ks := strconv.Itoa(k)
		a = append(a, "-c:s:"+ks, s.Codec)
		if s.Language != "" {
			a = append(a, "-metadata:s:s:"+ks, "language="+s.Language)
		}
		if s.Title != "" {
			a = append(a, "-metadata:s:s:"+ks, "title="+s.Title)
		}
		a = append(a, "-disposition:s:"+ks, disposition(s.Default))
	}
	return a
}

// appendAudioDispositions marks which kept audio track is the default one.
func appendAudioDispositions(a []string, tracks []AudioTrack) []string {
	for k, t := range tracks {
		a = append(a, "-disposition:a:"+strconv.Itoa(k), disposition(t.Default))
	}
	return a
}

func disposition(def bool) string {
	if def {
		return "default"
	}
	return "0"
}

// subtitleInputArgs read a sidecar subtitle file: only the file protocol and the text
// subtitle demuxers.
func subtitleInputArgs(in Input) []string {
	return []string{"-protocol_whitelist", "file", "-format_whitelist", strings.Join(SubtitleFormats, ","), "-f", in.Format, "-i", "file:" + in.Path}
}

// imageBurnGraph is the -filter_complex of an output that overlays image subtitle stream n on
// the video before its own chain, ending in pad label.
func imageBurnGraph(program int, v *Video, label string) string {
	chain := *v
	chain.Burn = nil
	return "[" + videoStream(program) + "][" + inputStreams(program) + "s:" + strconv.Itoa(v.Burn.N) + "]overlay=eof_action=pass:repeatlast=0," +
		holdFirst + "," + strings.Join(videoFilters(&chain), ",") + "[" + label + "]"
}

// ImageSubtitle reports whether a subtitle codec is a bitmap one (PGS, DVB, VobSub, XSUB):
// kept in mkv, overlaid when burned in, dropped elsewhere.
func ImageSubtitle(codec string) bool {
	switch codec {
	case "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle", "xsub":
		return true
	}
	return false
}

// ExtractSubtitle writes text subtitle stream n of a local file (of the programme, with
// program > 0) to path as ASS, styling kept: the file a Burn renders. It demuxes the input
// (no decoding); the timestamps are shifted as a run of the same input shifts them, so the
// cues stay on the frames' clock.
func (r *Runner) ExtractSubtitle(ctx context.Context, in Input, program, n int, path string) error {
	if in.Path == "" || strings.ContainsRune(in.Path, 0) || !burnPathRe.MatchString(path) {
		return &SpecError{Field: "path", Msg: "a local input and an output path of letters, digits and / . _ -"}
	}
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error"}
	args = append(append(args, inputArgs(in)...), "-map", inputStreams(program)+"s:"+strconv.Itoa(n), "-c:s", "ass", "-f", "ass", "-y", "file:"+path)
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	cmd := r.command(ctx, r.cfg.FFmpeg, args)
	cmd.Stderr = tail
	if err := runGroup(cmd); err != nil {
		return r.runError(ctx, "extract subtitles", args, cmd, err, tail.release())
	}
	return nil
}
