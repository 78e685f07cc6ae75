package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/transcoder/transcoder/ffmpeg"
)

// Track selection modes (TrackSelect.Mode).
const (
	TracksAll     = "all"     // every track of the kind
	TracksDefault = "default" // audio: the input's default track (the one a player picks)
	TracksNone    = "none"    // subtitles: none
)

// TrackSelect chooses an output's audio or subtitle tracks: "all", "default" (audio), "none"
// (subtitles), or a list of languages (ISO 639-1 or 639-2 codes: every track of each, in the
// list's order). In JSON it is the mode string or the list.
type TrackSelect struct {
	Mode      string
	Languages []string
}

// UnmarshalJSON reads "all" | "default" | "none" | ["eng", ...].
func (s *TrackSelect) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var langs []string
		if err := json.Unmarshal(b, &langs); err != nil {
			return fmt.Errorf("want \"all\", \"default\", \"none\" or a list of languages")
		}
		*s = TrackSelect{Languages: langs}
		return nil
	}
	var mode string
	if err := json.Unmarshal(b, &mode); err != nil {
		return fmt.Errorf("want \"all\", \"default\", \"none\" or a list of languages")
	}
	*s = TrackSelect{Mode: mode}
	return nil
}

// MarshalJSON writes the mode, or the list of languages.
func (s TrackSelect) MarshalJSON() ([]byte, error) {
	if s.Mode != "" {
		return json.Marshal(s.Mode)
	}
	return json.Marshal(s.Languages)
}

// TrackRef names one track of the input: by language ("eng"), or by its stream index as
// ffprobe lists it (3, or "3").
type TrackRef struct {
	Language string
	Index    int // -1 when Language names it
}

// UnmarshalJSON reads a language or a stream index, as a string or a number.
func (r *TrackRef) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*r = TrackRef{Index: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a language (\"eng\") or a stream index")
	}
	if n, err := strconv.Atoi(s); err == nil {
		*r = TrackRef{Index: n}
		return nil
	}
	*r = TrackRef{Language: s, Index: -1}
	return nil
}

// MarshalJSON writes the language, or the index.
func (r TrackRef) MarshalJSON() ([]byte, error) {
	if r.Language != "" {
		return json.Marshal(r.Language)
	}
	return json.Marshal(r.Index)
}

// SubtitleIn is a sidecar subtitle file (SRT or WebVTT) an output adds: fetched through the
// worker's storage like an input (at most MaxSidecarBytes), parsed and checked, and written to a
// spool file as SRT; ffmpeg never sees its URL.
type SubtitleIn struct {
	URL      string `json:"url"`
	Language string `json:"language,omitempty"`
	Title    string `json:"title,omitempty"`
}

// Limits of an output's track selection.
const (
	MaxSidecars     = 8       // subtitles_in entries per output
	MaxSidecarBytes = 2 << 20 // the largest sidecar subtitle file
	maxLanguages    = 32
)

// Tracks is an output's track selection, resolved: every field concrete.
type Tracks struct {
	Audio       TrackSelect // Mode default, all, or languages
	Subtitles   TrackSelect // Mode none, all, or languages
	SubtitlesIn []SubtitleIn
	Burn        *TrackRef
}

// carriesSubtitles: the containers that take text subtitles (a ladder's as WebVTT
// renditions).
func carriesSubtitles(container string) bool {
	switch container {
	case "mp4", "mkv", "webm", ContainerHLS, ContainerDASH:
		return true
	}
	return false
}

// resolveTracks checks output o's track fields against its container (resolved: video says
// whether it encodes video) and fills in the defaults.
func resolveTracks(o Output, container string, video *Video, legacyAll bool, f string) (Tracks, error) {
	t := Tracks{Audio: TrackSelect{Mode: TracksDefault}, Subtitles: TrackSelect{Mode: TracksNone}, SubtitlesIn: o.SubtitlesIn, Burn: o.BurnSubtitles}
	if legacyAll {
		t.Audio.Mode = TracksAll // audio.all_tracks, the older spelling of audio_tracks "all"
	}
	if carriesSubtitles(container) {
		t.Subtitles.Mode = TracksAll
	}
	if a := o.AudioTracks; a != nil {
		if err := checkSelect(*a, []string{TracksAll, TracksDefault}, f+".audio_tracks"); err != nil {
			return t, err
		}
		t.Audio = *a
	}
	if s := o.Subtitles; s != nil {
		if err := checkSelect(*s, []string{TracksAll, TracksNone}, f+".subtitles"); err != nil {
			return t, err
		}
		if s.Mode != TracksNone && !carriesSubtitles(container) {
			return t, &FieldError{f + ".subtitles", fmt.Sprintf("%s carries no text subtitles (mp4, mkv, webm, hls and dash do); use \"none\" or burn_subtitles", container)}
		}
		t.Subtitles = *s
	}
	if len(o.SubtitlesIn) > MaxSidecars {
		return t, &FieldError{f + ".subtitles_in", fmt.Sprintf("at most %d files", MaxSidecars)}
	}
	for k, s := range o.SubtitlesIn {
		sf := fmt.Sprintf("%s.subtitles_in[%d]", f, k)
		if s.URL == "" {
			return t, &FieldError{sf + ".url", "required"}
		}
		if _, err := ParseLocation(s.URL); err != nil {
			return t, &FieldError{sf + ".url", err.Error()}
		}
		if s.Language != "" {
			if _, err := canonLanguage(s.Language); err != nil {
				return t, &FieldError{sf + ".language", err.Error()}
			}
		}
		if len(s.Title) > 256 || strings.ContainsFunc(s.Title, func(r rune) bool { return r < ' ' }) {
			return t, &FieldError{sf + ".title", "at most 256 characters, no control characters"}
		}
		if !carriesSubtitles(container) && o.BurnSubtitles == nil {
			return t, &FieldError{sf, fmt.Sprintf("%s carries no text subtitles: a sidecar file is only for burn_subtitles there", container)}
		}
	}
	if b := o.BurnSubtitles; b != nil {
		if video == nil || video.Codec == "copy" || video.Codec == "raw" {
			return t, &FieldError{f + ".burn_subtitles", "burning subtitles in needs a video encode (not copy, raw or no video)"}
		}
		if b.Language != "" {
			if _, err := canonLanguage(b.Language); err != nil {
				return t, &FieldError{f + ".burn_subtitles", err.Error()}
			}
		} else if b.Index < 0 || b.Index > 1000 {
			return t, &FieldError{f + ".burn_subtitles", fmt.Sprintf("stream index %d: want 0..1000 or a language", b.Index)}
		}
	}
	return t, nil
}

func checkSelect(s TrackSelect, modes []string, f string) error {
	if s.Mode != "" {
		if !slices.Contains(modes, s.Mode) {
			return &FieldError{f, fmt.Sprintf("%q: want %s or a list of languages", s.Mode, strings.Join(quoteAll(modes), ", "))}
		}
		return nil
	}
	if len(s.Languages) == 0 || len(s.Languages) > maxLanguages {
		return &FieldError{f, fmt.Sprintf("a list of 1 to %d languages", maxLanguages)}
	}
	for _, l := range s.Languages {
		if _, err := canonLanguage(l); err != nil {
			return &FieldError{f, err.Error()}
		}
	}
	return nil
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return q
}

// needsProbe reports whether the output's tracks depend on the input's streams, and whether a
// head that shows one audio track and no subtitles answers that (only defaults are asked for).
func (t Tracks) needsProbe(container string) (need, headEnough bool) {
	explicit := t.Audio.Mode != TracksDefault && t.Audio.Mode != TracksAll || t.Subtitles.Mode == "" || t.Burn != nil
	subs := t.Subtitles.Mode != TracksNone && carriesSubtitles(container)
	return explicit || subs || t.Audio.Mode == TracksAll, !explicit
}

// TracksNeedProbe reports whether an output's plan depends on the input's audio and subtitle
// streams (so the input is probed before ffmpeg starts), and whether an mp4 head that shows
// one audio track and no subtitle track is enough to tell (only the defaults are asked for).
func (j *Job) TracksNeedProbe(presets Presets) (need, headEnough bool) {
	headEnough = true
	for i := range j.Outputs {
		r, err := j.Resolve(i, presets)
		if err != nil || r.Thumbnails != nil {
			continue
		}
		n, h := r.Tracks.needsProbe(r.Container)
		need = need || n
		headEnough = headEnough && (h || !n)
	}
	return need, headEnough
}

// BurnsInputSubtitles reports whether an output burns a subtitle track of the input (not a
// sidecar file): a text track is read from the input file by the subtitles filter, so the
// input is spooled.
func (j *Job) BurnsInputSubtitles() bool {
	for _, o := range j.Outputs {
		b := o.BurnSubtitles
		if b == nil {
			continue
		}
		if b.Language == "" || !slices.ContainsFunc(o.SubtitlesIn, func(s SubtitleIn) bool { return sameLanguage(s.Language, b.Language) }) {
			return true
		}
	}
	return false
}

// languages is ISO 639-1 and 639-2/B codes of the languages most often tagged, mapped to
// their 639-2/T code (what mp4 and matroska tag with), and the BCP 47 tag of each T code.
var (
	languageT = map[string]string{
		"en": "eng", "fr": "fra", "fre": "fra", "de": "deu", "ger": "deu", "es": "spa", "it": "ita",
		"pt": "por", "nl": "nld", "dut": "nld", "ru": "rus", "ja": "jpn", "zh": "zho", "chi": "zho",
		"ko": "kor", "ar": "ara", "hi": "hin", "sv": "swe", "no": "nor", "da": "dan", "fi": "fin",
		"pl": "pol", "cs": "ces", "cze": "ces", "el": "ell", "gre": "ell", "tr": "tur", "he": "heb",
		"hu": "hun", "ro": "ron", "rum": "ron", "uk": "ukr", "th": "tha", "vi": "vie", "id": "ind",
		"fa": "fas", "per": "fas", "ca": "cat", "hr": "hrv", "sk": "slk", "slo": "slk", "bg": "bul",
		"sr": "srp", "is": "isl", "ice": "isl", "ms": "msa", "may": "msa", "ta": "tam", "eu": "eus",
		"baq": "eus", "cy": "cym", "wel": "cym", "ga": "gle", "lt": "lit", "lv": "lav", "et": "est",
		"sl": "slv", "mk": "mkd", "mac": "mkd", "sq": "sqi", "alb": "sqi", "hy": "hye", "arm": "hye",
		"ka": "kat", "geo": "kat", "bn": "ben", "ur": "urd", "tl": "tgl", "fil": "fil",
	}
	bcp47 = map[string]string{}
)

func init() {
	for k, v := range languageT {
		if len(k) == 2 {
			bcp47[v] = k
		}
	}
}

var langRe = regexp.MustCompile(`^[a-z]{2,3}$`)

// canonLanguage is the ISO 639-2/T code of a language code: a 639-2 code (T or B, for the
// languages of the table) or a 639-1 code the table knows.
func canonLanguage(l string) (string, error) {
	l = strings.ToLower(l)
	if !langRe.MatchString(l) {
		return "", fmt.Errorf("language %q: want an ISO 639-2 code (\"eng\", \"fra\") or ISO 639-1 (\"en\")", l)
	}
	if t, ok := languageT[l]; ok {
		return t, nil
	}
	if len(l) == 2 {
		return "", fmt.Errorf("language %q: unknown ISO 639-1 code (use the ISO 639-2 code)", l)
	}
	return l, nil
}

// sameLanguage compares two language codes by their 639-2/T code ("fre", "fra" and "fr" are
// the same language); untagged ("" or "und") matches nothing.
func sameLanguage(a, b string) bool {
	ca, err := canonLanguage(a)
	if err != nil || ca == "und" {
		return false
	}
	cb, err := canonLanguage(b)
	return err == nil && ca == cb
}

// BCP47 is the language's tag for HLS and DASH (RFC 5646: the shortest ISO 639 code):
// "fra" -> "fr"; "" for untagged.
func BCP47(l string) string {
	c, err := canonLanguage(l)
	if err != nil || c == "und" {
		return ""
	}
	if s, ok := bcp47[c]; ok {
		return s
	}
	return c
}

// describe lists the languages of the streams, for errors.
func describe(streams []ffmpeg.Stream) string {
	var ls []string
	for _, s := range streams {
		l := s.Language
		if l == "" {
			l = "untagged"
		}
		ls = append(ls, fmt.Sprintf("%d:%s", s.Index, l))
	}
	if len(ls) == 0 {
		return "none"
	}
	return strings.Join(ls, ", ")
}
