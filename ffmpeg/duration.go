package ffmpeg

import (
	"bytes"
	"context"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// MeasureDuration reads every packet of a local file and returns where its last one ends. It is
// for outputs whose container carries no duration: webm/mkv written to a pipe cannot seek back
// to record it. Memory stays constant whatever the file's length.
func (r *Runner) MeasureDuration(ctx context.Context, path string) (time.Duration, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return 0, &SpecError{Field: "path", Msg: "empty or contains NUL"}
	}
	args := []string{"-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0",
		"-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "file:" + path}
	end := &packetEnd{}
	if err := r.streamProbe(ctx, args, nil, end, nil); err != nil {
		return 0, err
	}
	return time.Duration(end.max * float64(time.Second)), nil
}

// packetEnd parses "pts_time,duration_time" lines as they stream by, keeping the latest end.
type packetEnd struct {
	line []byte
	max  float64
}

func (p *packetEnd) Write(b []byte) (int, error) {
	return foldLines(&p.line, 256, b, func(line string) bool { p.parse(line); return true })
}

// foldLines hands each complete line of b (with what line holds from the last write before it)
// to fn, trimmed, until fn returns false; a partial line waits in line, at most limit bytes of
// it (a longer one is no line ffprobe prints for these entries). It never fails: ffprobe's
// output is read as it streams by.
func foldLines(line *[]byte, limit int, b []byte, fn func(string) bool) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(*line) < limit {
				*line = append(*line, b...)
			}
			break
		}
		*line = append(*line, b[:i]...)
		more := fn(strings.TrimSpace(string(*line)))
		*line = (*line)[:0]
		b = b[i+1:]
		if !more {
			break
		}
	}
	return n, nil
}

func (p *packetEnd) parse(line string) {
	f := strings.Split(line, ",")
	if len(f) == 0 {
		return
	}
	pts, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	if len(f) > 1 {
		if d, err := strconv.ParseFloat(f[1], 64); err == nil {
			pts += d
		}
	}
	if pts > p.max {
		p.max = pts
	}
}

// Span is how long an input really is, from its packets' timestamps rather than its header.
type Span struct {
	Total   time.Duration         // from the earliest packet to where the last one ends
	Streams map[int]time.Duration // the same per stream, by ffprobe's stream index
	// Over is set when the packets went past the stop given to MeasureSpan: reading stopped
	// there, and Total is only known to exceed it.
	Over bool
}

// MeasureSpan reads the packets of an input (demuxing only, no decoding) and returns the span
// their timestamps cover. A header's duration is a claim (a fragmented mp4 may say "unknown"
// as all ones, which reads as 39 h); the packets are what a transcode decodes. It reads src on
// pipe:0, or the local file in.Path when set; it stops as soon as the span passes stop (a
// timestamp gap of hours is known from its first packet past the gap), so the cost is bounded
// by the limit, not by the input.
func (r *Runner) MeasureSpan(ctx context.Context, in Input, src io.Reader, stop time.Duration) (Span, error) {
	if in.Path == "" && src == nil {
		return Span{}, &SpecError{Field: "input", Msg: "neither a path nor a reader"}
	}
	args := append([]string{"-v", "error", "-show_entries", "packet=stream_index,pts_time,dts_time,duration_time", "-of", "csv=p=0"}, inputArgs(in)...)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	spans := &spanFold{stop: stop.Seconds(), over: cancel, first: map[int]float64{}, end: map[int]float64{}}
	// Killed by us at the stop: what was read is the answer.
	if err := r.streamProbe(ctx, args, src, spans, func() bool { return spans.isOver }); err != nil {
		return Span{}, err
	}
	return spans.result(), nil
}

// spanFold folds "stream_index,pts_time,dts_time,duration_time" lines as they stream by.
type spanFold struct {
	line       []byte
	stop       float64
	over       func() // stops ffprobe
	isOver     bool
	first, end map[int]float64
	lo, hi     float64
	seen       bool
}

func (s *spanFold) Write(b []byte) (int, error) {
	return foldLines(&s.line, 256, b, func(line string) bool { s.parse(line); return !s.isOver })
}

func (s *spanFold) parse(line string) {
	f := strings.Split(line, ",")
	if len(f) < 4 {
		return
	}
	idx, err := strconv.Atoi(f[0])
	if err != nil {
		return
	}
	ts, err := strconv.ParseFloat(f[1], 64)
	if err != nil { // no pts (B-frames in some raw streams): the dts still tells the time
		if ts, err = strconv.ParseFloat(f[2], 64); err != nil {
			return
		}
	}
	end := ts
	if d, err := strconv.ParseFloat(f[3], 64); err == nil && d > 0 {
		end += d
	}
	if lo, ok := s.first[idx]; !ok || ts < lo {
		s.first[idx] = ts
	}
	s.end[idx] = max(s.end[idx], end)
	if !s.seen || ts < s.lo {
		s.lo = ts
	}
	s.hi, s.seen = max(s.hi, end), true
	if s.stop > 0 && s.hi-s.lo > s.stop {
		s.isOver = true
		s.over()
	}
}

func (s *spanFold) result() Span {
	sp := Span{Streams: make(map[int]time.Duration, len(s.end)), Over: s.isOver}
	if s.seen {
		sp.Total = secondsDuration(s.hi - s.lo)
	}
	for i, e := range s.end {
		sp.Streams[i] = secondsDuration(e - s.first[i])
	}
	return sp
}

func secondsDuration(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }
