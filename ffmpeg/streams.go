package ffmpeg

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// StreamSpan is one stream of a file as ffprobe reports it after reading every packet: the
// stream's start_time and duration (the demuxer's, after edit lists and priming: what a user's
// ffprobe shows), how many packets it has, and its colour tags.
type StreamSpan struct {
	Index   int
	Type    string // video | audio | subtitle | data
	Packets int    // one per frame for video, one per audio frame for audio
	Start   time.Duration
	// Duration is the stream's; where the container records none (webm/mkv written to a
	// pipe), the span its packets cover.
	Duration time.Duration
	// Colour tags of a video stream ("" when untagged).
	Transfer, Primaries, Matrix string
	Width, Height               int

	first, end time.Duration // the packets' span
	stated     bool          // Duration is the container's
}

// MeasureStreams reads every packet of a local file (demuxing only, no decoding) and returns
// each stream's span. Memory stays constant whatever the file's length: the packets are folded
// as ffprobe prints them.
func (r *Runner) MeasureStreams(ctx context.Context, path string) ([]StreamSpan, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, &SpecError{Field: "path", Msg: "empty or contains NUL"}
	}
	args := []string{"-v", "error", "-count_packets",
		"-show_entries", "stream=index,codec_type,width,height,start_time,duration,nb_read_packets,color_transfer,color_primaries,color_space:packet=stream_index,pts_time,duration_time",
		"-of", "compact=p=1", "-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "file:" + path}
	spans := &spanParser{byIndex: map[int]*StreamSpan{}}
	if err := r.streamProbe(ctx, args, nil, spans, nil); err != nil {
		return nil, err
	}
	return spans.result(), nil
}

// spanParser folds ffprobe's compact lines: "packet|stream_index=0|pts_time=..|duration_time=.."
// as they stream by, and the "stream|index=0|codec_type=..|..." lines at the end.
type spanParser struct {
	line    []byte
	byIndex map[int]*StreamSpan
	order   []int
}

func (p *spanParser) Write(b []byte) (int, error) {
	return foldLines(&p.line, 1024, b, func(line string) bool { p.parse(line); return true })
}

func (p *spanParser) span(idx int) *StreamSpan {
	s, ok := p.byIndex[idx]
	if !ok {
		s = &StreamSpan{Index: idx, first: math.MaxInt64}
		p.byIndex[idx] = s
		p.order = append(p.order, idx)
	}
	return s
}

func (p *spanParser) parse(line string) {
	section, rest, _ := strings.Cut(line, "|")
	kv := map[string]string{}
	for _, f := range strings.Split(rest, "|") {
		if k, v, ok := strings.Cut(f, "="); ok && v != "N/A" && v != "unknown" {
			kv[k] = v
		}
	}
	switch section {
	case "packet":
		idx, err := strconv.Atoi(kv["stream_index"])
		pts, perr := strconv.ParseFloat(kv["pts_time"], 64)
		if err != nil || perr != nil {
			return
		}
		d, _ := strconv.ParseFloat(kv["duration_time"], 64)
		s := p.span(idx)
		s.first = min(s.first, time.Duration(math.Round(pts*1e9)))
		s.end = max(s.end, time.Duration(math.Round((pts+d)*1e9)))
	case "stream":
		idx, err := strconv.Atoi(kv["index"])
		if err != nil {
			return
		}
		s := p.span(idx)
		s.Type = kv["codec_type"]
		s.Packets, _ = strconv.Atoi(kv["nb_read_packets"])
		s.Width, _ = strconv.Atoi(kv["width"])
		s.Height, _ = strconv.Atoi(kv["height"])
		s.Transfer, s.Primaries, s.Matrix = kv["color_transfer"], kv["color_primaries"], kv["color_space"]
		if v, err := strconv.ParseFloat(kv["start_time"], 64); err == nil && math.Abs(v) < maxClock.Seconds() {
			s.Start = time.Duration(math.Round(v * 1e9)) // negative for an exposed audio priming
			s.stated = true
		}
		if v, ok := kv["duration"]; ok {
			s.Duration = seconds(v)
		} else {
			s.stated = false
		}
	}
}

func (p *spanParser) result() []StreamSpan {
	out := make([]StreamSpan, 0, len(p.order))
	slices.Sort(p.order)
	for _, idx := range p.order {
		s := *p.byIndex[idx]
		if !s.stated && s.end > s.first {
			s.Start, s.Duration = s.first, s.end-s.first
		}
		out = append(out, s)
	}
	return out
}
