package segment

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// PlaylistSegment is one entry of a media playlist.
type PlaylistSegment struct {
	URI      string
	Duration time.Duration
}

// MediaPlaylist is an HLS media playlist of fMP4 segments.
type MediaPlaylist struct {
	Version int // EXT-X-VERSION; 7 when zero
	// TargetDuration in whole seconds; when zero, the ceiling of the longest segment's
	// duration (so that every EXTINF, rounded, is within it).
	TargetDuration int
	MediaSequence  int    // number of the first segment; 1 when zero (segments count from 1)
	Init           string // EXT-X-MAP URI; InitName when empty
	Segments       []PlaylistSegment
	// Ended makes a complete VOD playlist (EXT-X-PLAYLIST-TYPE:VOD and EXT-X-ENDLIST);
	// otherwise it is an EVENT playlist that more segments will be appended to.
	Ended               bool
	IndependentSegments bool // EXT-X-INDEPENDENT-SEGMENTS: every segment starts with a keyframe
	// Text makes a WebVTT subtitle playlist: its segments are whole files, with no EXT-X-MAP.
	Text bool
}

// NewMediaPlaylist returns the media playlist of a rendition's segments under the naming
// convention (init.mp4, seg-NNNNN.m4s), with independent segments (the Segmenter starts each
// segment at a sync sample).
func NewMediaPlaylist(segs []Segment, ended bool) MediaPlaylist {
	p := MediaPlaylist{Version: 7, Init: InitName, Ended: ended, IndependentSegments: true}
	p.Segments = make([]PlaylistSegment, len(segs))
	for i, s := range segs {
		p.Segments[i] = PlaylistSegment{URI: SegmentName(s.N), Duration: s.Duration}
	}
	if len(segs) > 0 {
		p.MediaSequence = segs[0].N
	}
	return p
}

// WriteMediaPlaylist writes p as an HLS media playlist.
func WriteMediaPlaylist(w io.Writer, p MediaPlaylist) error {
	if p.Version == 0 {
		p.Version = 7
	}
	if p.MediaSequence == 0 {
		p.MediaSequence = 1
	}
	if p.Init == "" {
		p.Init = InitName
	}
	if err := checkQuoted("Init", p.Init); err != nil {
		return err
	}
	if p.TargetDuration == 0 {
		var longest time.Duration
		for _, s := range p.Segments {
			longest = max(longest, s.Duration)
		}
		p.TargetDuration = int(math.Ceil(longest.Seconds()))
		if p.TargetDuration == 0 {
			p.TargetDuration = 1
		}
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", p.Version, p.TargetDuration, p.MediaSequence)
	if p.Ended {
		fmt.Fprint(bw, "#EXT-X-PLAYLIST-TYPE:VOD\n")
	} else {
		fmt.Fprint(bw, "#EXT-X-PLAYLIST-TYPE:EVENT\n")
	}
	if p.IndependentSegments {
		fmt.Fprint(bw, "#EXT-X-INDEPENDENT-SEGMENTS\n")
	}
	if !p.Text {
		fmt.Fprintf(bw, "#EXT-X-MAP:URI=\"%s\"\n", p.Init)
	}
	for i, s := range p.Segments {
		if err := checkURI(s.URI); err != nil {
			return fmt.Errorf("segment: playlist segment %d: %w", i, err)
		}
		if s.Duration < 0 {
			return fmt.Errorf("segment: playlist segment %d: negative duration", i)
		}
		fmt.Fprintf(bw, "#EXTINF:%s,\n%s\n", seconds(s.Duration, 6), s.URI)
	}
	if p.Ended {
		fmt.Fprint(bw, "#EXT-X-ENDLIST\n")
	}
	return bw.Flush()
}

// Variant is one EXT-X-STREAM-INF entry of a master playlist.
type Variant struct {
	URI              string // NAME/index.m3u8
	Bandwidth        int    // peak bits/s, audio group's peak included (see VariantBandwidth)
	AverageBandwidth int    // average bits/s, audio included; omitted when zero
	Width, Height    int    // RESOLUTION; omitted when zero
	FrameRate        float64
	Codecs           string // "avc1.64001f,mp4a.40.2": video, then the audio group's codec
	Audio            string // GROUP-ID of the audio renditions it plays with; "" for none
	Subtitles        string // GROUP-ID of its subtitle renditions; "" for none
	// VideoRange is VIDEO-RANGE: PQ or HLG for an HDR variant (players that cannot show HDR
	// skip it), SDR; omitted when empty (SDR, by the spec's default).
	VideoRange string
}

// SubtitleRendition is one EXT-X-MEDIA TYPE=SUBTITLES entry: a WebVTT media playlist.
type SubtitleRendition struct {
	GroupID  string
	Name     string
	Language string // BCP 47; omitted when empty
	Default  bool
	URI      string
}

// AudioRendition is one EXT-X-MEDIA TYPE=AUDIO entry.
type AudioRendition struct {
	GroupID  string
	Name     string
	Language string // BCP 47; omitted when empty
	Default  bool
	URI      string
	Channels int // CHANNELS; omitted when zero
}

// Master is an HLS multivariant (master) playlist.
type Master struct {
	Version int // EXT-X-VERSION; 7 when zero
	// Variants are written in the order given: players start with the first one, so the
	// caller decides (the worker lists its ladder top down).
	Variants  []Variant
	Audio     []AudioRendition
	Subtitles []SubtitleRendition
}

// WriteMasterPlaylist writes m as an HLS multivariant playlist. Every segment of every
// rendition starts with a keyframe, so it says EXT-X-INDEPENDENT-SEGMENTS.
func WriteMasterPlaylist(w io.Writer, m Master) error {
	if m.Version == 0 {
		m.Version = 7
	}
	if err := m.check(); err != nil {
		return err
	}

	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-INDEPENDENT-SEGMENTS\n", m.Version)
	if len(m.Audio) > 0 || len(m.Subtitles) > 0 {
		fmt.Fprint(bw, "\n")
	}
	for _, a := range m.Audio {
		fmt.Fprintf(bw, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"%s\",NAME=\"%s\"", a.GroupID, a.Name)
		if a.Language != "" {
			fmt.Fprintf(bw, ",LANGUAGE=\"%s\"", a.Language)
		}
		if a.Default {
			fmt.Fprint(bw, ",DEFAULT=YES,AUTOSELECT=YES")
		} else {
			fmt.Fprint(bw, ",DEFAULT=NO,AUTOSELECT=YES")
		}
		if a.Channels > 0 {
			fmt.Fprintf(bw, ",CHANNELS=\"%d\"", a.Channels)
		}
		fmt.Fprintf(bw, ",URI=\"%s\"\n", a.URI)
	}
	for _, r := range m.Subtitles {
		fmt.Fprintf(bw, "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"%s\",NAME=\"%s\"", r.GroupID, r.Name)
		if r.Language != "" {
			fmt.Fprintf(bw, ",LANGUAGE=\"%s\"", r.Language)
		}
		if r.Default {
			fmt.Fprint(bw, ",DEFAULT=YES,AUTOSELECT=YES")
		} else {
			fmt.Fprint(bw, ",DEFAULT=NO,AUTOSELECT=YES")
		}
		fmt.Fprintf(bw, ",URI=\"%s\"\n", r.URI)
	}
	for _, v := range m.Variants {
		fmt.Fprintf(bw, "\n#EXT-X-STREAM-INF:BANDWIDTH=%d", v.Bandwidth)
		if v.AverageBandwidth > 0 {
			fmt.Fprintf(bw, ",AVERAGE-BANDWIDTH=%d", v.AverageBandwidth)
		}
		if v.Width > 0 && v.Height > 0 {
			fmt.Fprintf(bw, ",RESOLUTION=%dx%d", v.Width, v.Height)
		}
		if v.Codecs != "" {
			fmt.Fprintf(bw, ",CODECS=\"%s\"", v.Codecs)
		}
		if v.FrameRate > 0 {
			fmt.Fprintf(bw, ",FRAME-RATE=%s", strconv.FormatFloat(v.FrameRate, 'f', 3, 64))
		}
		if v.VideoRange != "" {
			fmt.Fprintf(bw, ",VIDEO-RANGE=%s", v.VideoRange)
		}
		if v.Audio != "" {
			fmt.Fprintf(bw, ",AUDIO=\"%s\"", v.Audio)
		}
		if v.Subtitles != "" {
			fmt.Fprintf(bw, ",SUBTITLES=\"%s\"", v.Subtitles)
		}
		fmt.Fprintf(bw, "\n%s\n", v.URI)
	}
	return bw.Flush()
}

// Bandwidth returns the peak and average bit rates of segments in bits per second: peak is
// the largest size*8/duration of one segment, rounded up; average is the total size*8 over the
// total duration, rounded to nearest. Segments of zero duration count toward the average only.
func Bandwidth(segments []Segment) (peak, average int) {
	var bytes int64
	var dur time.Duration
	for _, s := range segments {
		bytes += s.Size
		dur += s.Duration
		if s.Duration > 0 {
			peak = max(peak, int(math.Ceil(float64(s.Size)*8/s.Duration.Seconds())))
		}
	}
	if dur > 0 {
		average = int(math.Round(float64(bytes) * 8 / dur.Seconds()))
	}
	return peak, average
}

// VariantBandwidth returns a variant's BANDWIDTH and AVERAGE-BANDWIDTH: its video segments'
// peak and average plus the largest peak and average among the audio renditions it may play
// with (each a list of segments).
func VariantBandwidth(video []Segment, audio ...[]Segment) (peak, average int) {
	peak, average = Bandwidth(video)
	var ap, aa int
	for _, a := range audio {
		p, v := Bandwidth(a)
		ap, aa = max(ap, p), max(aa, v)
	}
	return peak + ap, average + aa
}

// FrameRate returns the frame rate of a video rendition: samples over duration.
func FrameRate(segments []Segment) float64 {
	var n int
	var d time.Duration
	for _, s := range segments {
		n += s.Samples
		d += s.Duration
	}
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// seconds formats a non-negative d in seconds with the given number of decimals (0 to 9),
// rounded half up, computed in integers so that 4s is always "4.000000".
func seconds(d time.Duration, decimals int) string {
	unit := time.Duration(1)
	for range 9 - decimals {
		unit *= 10
	}
	n := (d + unit/2) / unit // in units of 10^-decimals s
	scale := time.Second / unit
	if decimals == 0 {
		return strconv.FormatInt(int64(n), 10)
	}
	return fmt.Sprintf("%d.%0*d", n/scale, decimals, n%scale)
}

func checkURI(uri string) error {
	if uri == "" {
		return errors.New("empty URI")
	}
	if strings.ContainsAny(uri, "\r\n") || strings.HasPrefix(uri, "#") {
		return fmt.Errorf("URI %q cannot be a playlist line", uri)
	}
	return checkQuoted("URI", uri)
}

// checkQuoted rejects what an HLS quoted-string cannot hold.
func checkQuoted(field, v string) error {
	if strings.ContainsAny(v, "\"\r\n") {
		return fmt.Errorf("segment: %s %q: a quoted-string cannot hold a double quote or a line break", field, v)
	}
	return nil
}

// check refuses a master playlist that would not parse or would point nowhere.
func (m Master) check() error {
	if len(m.Variants) == 0 {
		return errors.New("segment: master playlist without variants")
	}
	groups, err := renditionGroups("audio", len(m.Audio), func(i int) [4]string {
		a := m.Audio[i]
		return [4]string{a.GroupID, a.Name, a.Language, a.URI}
	})
	if err != nil {
		return err
	}
	subGroups, err := renditionGroups("subtitle", len(m.Subtitles), func(i int) [4]string {
		r := m.Subtitles[i]
		return [4]string{r.GroupID, r.Name, r.Language, r.URI}
	})
	if err != nil {
		return err
	}
	for i, v := range m.Variants {
		if err := v.check(groups, subGroups); err != nil {
			return fmt.Errorf("segment: variant %d: %w", i, err)
		}
	}
	return nil
}

// renditionGroups checks n EXT-X-MEDIA entries of a kind (group id, name, language, URI of
// each) and returns their group ids.
func renditionGroups(kind string, n int, at func(int) [4]string) (map[string]bool, error) {
	groups := map[string]bool{}
	for i := range n {
		f := at(i)
		for k, name := range [...]string{"GroupID", "Name", "Language", "URI"} {
			if err := checkQuoted(name, f[k]); err != nil {
				return nil, fmt.Errorf("segment: %s rendition %d: %w", kind, i, err)
			}
		}
		if f[0] == "" || f[1] == "" || f[3] == "" {
			return nil, fmt.Errorf("segment: %s rendition %d: GroupID, Name and URI are required", kind, i)
		}
		groups[f[0]] = true
	}
	return groups, nil
}

// check refuses a variant that would not parse or names a group that is not there.
func (v Variant) check(audio, subtitles map[string]bool) error {
	if v.Subtitles != "" && !subtitles[v.Subtitles] {
		return fmt.Errorf("no subtitle rendition in group %q", v.Subtitles)
	}
	if err := checkURI(v.URI); err != nil {
		return err
	}
	if v.Bandwidth <= 0 {
		return fmt.Errorf("Bandwidth %d", v.Bandwidth)
	}
	if err := checkQuoted("Codecs", v.Codecs); err != nil {
		return err
	}
	if v.Audio != "" && !audio[v.Audio] {
		return fmt.Errorf("no audio rendition in group %q", v.Audio)
	}
	switch v.VideoRange {
	case "", "SDR", "PQ", "HLG":
	default:
		return fmt.Errorf("VideoRange %q (SDR, PQ or HLG)", v.VideoRange)
	}
	return nil
}
