package job

import (
	"fmt"
	"slices"

	"github.com/transcoder/transcoder/ffmpeg"
)

// Sidecar is a subtitles_in file of the plan: the engine fetches it, checks it and writes it to
// the spool file of Spec.SubtitleInputs at the same index.
type Sidecar struct {
	Output int // the job output that asked for it
	In     SubtitleIn
}

// mkvCopies are the subtitle codecs matroska carries as they are.
var mkvCopies = []string{"subrip", "ass", "ssa", "webvtt", "dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle"}

// kinds is the probe's streams of one type, in order: index k of the result is the stream a:k
// or s:k selects.
func kinds(src *ffmpeg.ProbeResult, typ string) []ffmpeg.Stream {
	var out []ffmpeg.Stream
	if src == nil {
		return nil
	}
	for _, s := range src.Streams {
		if s.Type == typ {
			out = append(out, s)
		}
	}
	return out
}

// planAudioTracks is the audio tracks an output keeps, with their default flags: nil for the
// single default track (planAudio picks it). Exactly one kept track is the default: the first
// the input marks so, else the first kept.
func planAudioTracks(t Tracks, src *ffmpeg.ProbeResult, f string) ([]ffmpeg.AudioTrack, error) {
	audio := kinds(src, "audio")
	if t.Audio.Mode == TracksDefault || src == nil {
		return nil, nil
	}
	var keep []int
	if t.Audio.Mode == TracksAll {
		for n := range audio {
			keep = append(keep, n)
		}
	}
	for _, l := range t.Audio.Languages {
		found := false
		for n, s := range audio {
			if sameLanguage(s.Language, l) {
				found = true
				if !slices.Contains(keep, n) {
					keep = append(keep, n)
				}
			}
		}
		if !found {
			return nil, &FieldError{f + ".audio_tracks", fmt.Sprintf("the input has no audio track in %q (its audio streams: %s)", l, describe(audio))}
		}
	}
	tracks := make([]ffmpeg.AudioTrack, len(keep))
	def := -1
	for k, n := range keep {
		tracks[k].N = n
		if def < 0 && audio[n].Default {
			def = k
		}
	}
	if len(tracks) > 0 {
		tracks[max(def, 0)].Default = true
	}
	return tracks, nil
}

// planSubtitles is an output's subtitle streams in container ("webvtt" for each rendition of
// a ladder), and warnings for the tracks it cannot carry. sidecars is the plan's sidecar count
// before this output's.
func planSubtitles(t Tracks, container string, src *ffmpeg.ProbeResult, sidecars int, f string) ([]ffmpeg.Subtitle, []string, error) {
	if t.Subtitles.Mode == TracksNone {
		return nil, nil, nil
	}
	subs := kinds(src, "subtitle")
	var keep []int
	if t.Subtitles.Mode == TracksAll {
		for n := range subs {
			keep = append(keep, n)
		}
	}
	for _, l := range t.Subtitles.Languages {
		found := slices.ContainsFunc(t.SubtitlesIn, func(s SubtitleIn) bool { return sameLanguage(s.Language, l) })
		for n, s := range subs {
			if sameLanguage(s.Language, l) {
				found = true
				if !slices.Contains(keep, n) {
					keep = append(keep, n)
				}
			}
		}
		if !found {
			return nil, nil, &FieldError{f + ".subtitles", fmt.Sprintf("the input has no subtitle track in %q (its subtitle streams: %s)", l, describe(subs))}
		}
	}
	var out []ffmpeg.Subtitle
	var warnings []string
	for _, n := range keep {
		s := subs[n]
		codec := subtitleCodec(container, s.Codec)
		if codec == "" {
			what := "an image subtitle"
			if !ffmpeg.ImageSubtitle(s.Codec) {
				what = "a subtitle format it cannot convert"
			}
			warnings = append(warnings, fmt.Sprintf("subtitle stream %d (%s, %s) dropped: %s, which %s cannot carry (burn it in with burn_subtitles, or keep it in mkv)", s.Index, langOr(s.Language), s.Codec, what, containerName(container)))
			continue
		}
		out = append(out, ffmpeg.Subtitle{N: n, Codec: codec, Language: s.Language, Default: s.Default})
	}
	for k, sc := range t.SubtitlesIn {
		lang, _ := canonLanguage(sc.Language)
		if sc.Language == "" {
			lang = ""
		}
		out = append(out, ffmpeg.Subtitle{Input: sidecars + k + 1, Codec: subtitleCodec(container, "subrip"), Language: lang, Title: sc.Title})
	}
	return out, warnings, nil
}

func langOr(l string) string {
	if l == "" {
		return "untagged"
	}
	return l
}

func containerName(c string) string {
	if c == "webvtt" {
		return "hls and dash (WebVTT)"
	}
	return c
}

// subtitleCodec is the codec a subtitle of codec becomes in container; "" when it cannot go
// there (an image subtitle outside matroska).
func subtitleCodec(container, codec string) string {
	text := ffmpeg.TextSubtitle(codec)
	switch container {
	case "mkv":
		if slices.Contains(mkvCopies, codec) {
			return "copy"
		}
		if text {
			return "srt"
		}
	case "mp4":
		if text {
			return "mov_text"
		}
	case "webm", "webvtt":
		if text {
			return "webvtt"
		}
	}
	return ""
}

// planBurn finds the track burn_subtitles names: a subtitle stream of the input (by language, a
// text track before an image one; or by stream index), else a sidecar file of that language.
// The returned source is the text track the engine writes to the burned file (nil for an image
// track, overlaid from the input).
func planBurn(t Tracks, src *ffmpeg.ProbeResult, sidecars int, f string) (*ffmpeg.Burn, *ffmpeg.Subtitle, error) {
	b := t.Burn
	if b == nil {
		return nil, nil, nil
	}
	subs := kinds(src, "subtitle")
	pick := -1
	if b.Language == "" {
		pick = slices.IndexFunc(subs, func(s ffmpeg.Stream) bool { return s.Index == b.Index })
		if pick < 0 {
			return nil, nil, &FieldError{f + ".burn_subtitles", fmt.Sprintf("the input has no subtitle stream %d (its subtitle streams: %s)", b.Index, describe(subs))}
		}
	} else {
		for _, text := range []bool{true, false} {
			if pick < 0 {
				pick = slices.IndexFunc(subs, func(s ffmpeg.Stream) bool {
					return sameLanguage(s.Language, b.Language) && ffmpeg.TextSubtitle(s.Codec) == text
				})
			}
		}
	}
	if pick >= 0 {
		s := subs[pick]
		switch {
		case ffmpeg.TextSubtitle(s.Codec):
			return &ffmpeg.Burn{}, &ffmpeg.Subtitle{N: pick, Codec: s.Codec}, nil
		case ffmpeg.ImageSubtitle(s.Codec):
			return &ffmpeg.Burn{Image: true, N: pick}, nil, nil
		}
		return nil, nil, &FieldError{f + ".burn_subtitles", fmt.Sprintf("subtitle stream %d is %s, which cannot be burned in", s.Index, s.Codec)}
	}
	if k := slices.IndexFunc(t.SubtitlesIn, func(s SubtitleIn) bool { return sameLanguage(s.Language, b.Language) }); k >= 0 {
		return &ffmpeg.Burn{}, &ffmpeg.Subtitle{Input: sidecars + k + 1, Codec: "subrip"}, nil
	}
	return nil, nil, &FieldError{f + ".burn_subtitles", fmt.Sprintf("neither the input nor subtitles_in has a subtitle track in %q (the input's subtitle streams: %s)", b.Language, describe(subs))}
}

// planTracks fills the plain output's spec with its tracks: audio, subtitles, the burn, the
// sidecar inputs; po gets the warnings and the burned track.
func (mp *MediaPlan) planTracks(i int, r ResolvedOutput, out *ffmpeg.Output, po *PlannedOutput, src *ffmpeg.ProbeResult) error {
	f := fmt.Sprintf("outputs[%d]", i)
	sidecars := len(mp.Spec.SubtitleInputs)
	if out.Audio != nil {
		tracks, err := planAudioTracks(r.Tracks, src, f)
		if err != nil {
			return err
		}
		out.Audio.Tracks = tracks
	}
	if carriesSubtitles(r.Container) {
		subs, warns, err := planSubtitles(r.Tracks, r.Container, src, sidecars, f)
		if err != nil {
			return err
		}
		out.Subtitles, po.Warnings = subs, append(po.Warnings, warns...)
	}
	if out.Video != nil {
		burn, text, err := planBurn(r.Tracks, src, sidecars, f)
		if err != nil {
			return err
		}
		out.Video.Burn, po.BurnText = burn, text
	}
	mp.addSidecars(i, r)
	return nil
}

func (mp *MediaPlan) addSidecars(i int, r ResolvedOutput) {
	for _, sc := range r.Tracks.SubtitlesIn {
		mp.Sidecars = append(mp.Sidecars, Sidecar{Output: i, In: sc})
		mp.Spec.SubtitleInputs = append(mp.Spec.SubtitleInputs, ffmpeg.Input{Format: "srt"})
	}
}
