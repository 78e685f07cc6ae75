package segment

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Cue is one timed subtitle: its text lines joined by "\n".
type Cue struct {
	Start, End time.Duration
	Text       string
}

// Limits of a parsed subtitle file.
const (
	MaxCues     = 100000
	maxCueBytes = 4096
)

// ErrSubtitles is matched by every error of ParseSubtitles: the file is not SRT or WebVTT.
var ErrSubtitles = errors.New("segment: not an SRT or WebVTT file")

// ParseSubtitles reads an SRT or WebVTT file (which, by its "WEBVTT" header) into its cues,
// in the file's order. It checks what a player needs: valid UTF-8, well-formed timings that do
// not run backwards within a cue, text without control characters, at least one cue. WebVTT
// comments, styles and regions are skipped; cue settings (position, alignment) are dropped.
func ParseSubtitles(data []byte) ([]Cue, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8 text", ErrSubtitles)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(string(data), "\r\n", "\n"), "\r", "\n")
	vtt := strings.HasPrefix(text, "WEBVTT")
	blocks := strings.Split(text, "\n\n")
	if vtt {
		blocks = blocks[1:] // the header block
	}
	var cues []Cue
	for i, b := range blocks {
		b = strings.Trim(b, "\n")
		if b == "" {
			continue
		}
		lines := strings.Split(b, "\n")
		if vtt && (strings.HasPrefix(lines[0], "NOTE") || lines[0] == "STYLE" || lines[0] == "REGION") {
			continue
		}
		if !strings.Contains(lines[0], "-->") && len(lines) > 1 {
			lines = lines[1:] // the cue's number (SRT) or identifier (WebVTT)
		}
		c, err := parseTiming(lines[0])
		if err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrSubtitles, i+1, err)
		}
		c.Text = strings.Join(lines[1:], "\n")
		if len(c.Text) > maxCueBytes || strings.ContainsFunc(c.Text, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
			return nil, fmt.Errorf("%w: block %d: cue text longer than %d bytes or with control characters", ErrSubtitles, i+1, maxCueBytes)
		}
		if strings.TrimSpace(c.Text) == "" {
			continue
		}
		if len(cues) == MaxCues {
			return nil, fmt.Errorf("%w: more than %d cues", ErrSubtitles, MaxCues)
		}
		cues = append(cues, c)
	}
	if len(cues) == 0 {
		return nil, fmt.Errorf("%w: no cue", ErrSubtitles)
	}
	return cues, nil
}

// parseTiming reads "00:00:01,000 --> 00:00:02,500" (SRT) or "00:01.000 --> 00:02.500 line:0"
// (WebVTT, settings after the end time).
func parseTiming(line string) (Cue, error) {
	from, to, ok := strings.Cut(line, "-->")
	if !ok {
		return Cue{}, fmt.Errorf("no timing line (%q)", trunc(line))
	}
	fields := strings.Fields(to)
	if len(fields) == 0 {
		return Cue{}, fmt.Errorf("timing %q has no end", trunc(line))
	}
	start, err := parseClock(strings.TrimSpace(from))
	if err != nil {
		return Cue{}, err
	}
	end, err := parseClock(fields[0])
	if err != nil {
		return Cue{}, err
	}
	if end < start {
		return Cue{}, fmt.Errorf("cue ends (%s) before it starts (%s)", end, start)
	}
	return Cue{Start: start, End: end}, nil
}

// parseClock reads [HH:]MM:SS(,|.)mmm.
func parseClock(s string) (time.Duration, error) {
	bad := fmt.Errorf("bad time %q", trunc(s))
	s = strings.Replace(s, ",", ".", 1)
	hms, frac, ok := strings.Cut(s, ".")
	if !ok || len(frac) == 0 || len(frac) > 3 {
		return 0, bad
	}
	parts := strings.Split(hms, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var d time.Duration
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 1e5 || i > 0 && n > 59 {
			return 0, bad
		}
		d = d*60 + time.Duration(n)*time.Second
	}
	ms, err := strconv.Atoi(frac + strings.Repeat("0", 3-len(frac)))
	if err != nil || ms < 0 {
		return 0, bad
	}
	return d + time.Duration(ms)*time.Millisecond, nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// WriteSRT writes cues as an SRT file.
func WriteSRT(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	for i, c := range cues {
		fmt.Fprintf(bw, "%d\n%s --> %s\n%s\n\n", i+1, clock(c.Start, ','), clock(c.End, ','), c.Text)
	}
	return bw.Flush()
}

// clock formats HH:MM:SS<sep>mmm.
func clock(d time.Duration, sep byte) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%02d:%02d:%02d%c%03d", ms/3600000, ms/60000%60, ms/1000%60, sep, ms%1000)
}

// TextTrack collects a WebVTT stream (what ffmpeg's webvtt muxer writes) as its cues, to be cut
// into segments once the presentation's length is known. Its cues are held in memory, at most
// MaxTextBytes of text: subtitles are small, and a segment's cues can only be written once
// every cue that overlaps it has arrived.
type TextTrack struct {
	line  []byte
	block []string
	cues  []Cue
	size  int
	err   error
}

// MaxTextBytes bounds the text a TextTrack holds.
const MaxTextBytes = 8 << 20

// Write parses the stream as it comes.
func (t *TextTrack) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	for _, b := range p {
		if b != '\n' {
			if len(t.line) > maxCueBytes {
				t.err = fmt.Errorf("%w: a line longer than %d bytes", ErrSubtitles, maxCueBytes)
				return 0, t.err
			}
			t.line = append(t.line, b)
			continue
		}
		t.endLine()
		if t.err != nil {
			return 0, t.err
		}
	}
	return len(p), nil
}

func (t *TextTrack) endLine() {
	l := strings.TrimRight(string(t.line), "\r")
	t.line = t.line[:0]
	if l != "" {
		t.block = append(t.block, l)
		return
	}
	t.endBlock()
}

func (t *TextTrack) endBlock() {
	b := t.block
	t.block = nil
	if len(b) == 0 || strings.HasPrefix(b[0], "WEBVTT") || strings.HasPrefix(b[0], "NOTE") || b[0] == "STYLE" || b[0] == "REGION" {
		return
	}
	if !strings.Contains(b[0], "-->") && len(b) > 1 {
		b = b[1:]
	}
	c, err := parseTiming(b[0])
	if err != nil {
		t.err = fmt.Errorf("%w: %w", ErrSubtitles, err)
		return
	}
	c.Text = strings.Join(b[1:], "\n")
	t.size += len(c.Text) + 32
	if t.size > MaxTextBytes || len(t.cues) >= MaxCues {
		t.err = fmt.Errorf("%w: a subtitle track of more than %d bytes or %d cues", ErrSubtitles, MaxTextBytes, MaxCues)
		return
	}
	t.cues = append(t.cues, c)
}

// Close ends the stream.
func (t *TextTrack) Close() error {
	if t.err == nil {
		if len(t.line) > 0 {
			t.endLine()
		}
		t.endBlock()
	}
	return t.err
}

// Cues are the cues read so far.
func (t *TextTrack) Cues() []Cue { return t.cues }

// TextSegment is one WebVTT segment: its number (from 1), span and file.
type TextSegment struct {
	N        int
	Start    time.Duration
	Duration time.Duration
	Data     []byte
}

// CutText cuts cues into WebVTT segments of target length covering [0, total): every segment
// holds each cue that overlaps it (a cue across a boundary is in both, as HLS asks), and has
// an X-TIMESTAMP-MAP that puts the cues on the media's clock (cue time 0 is media time 0).
func CutText(cues []Cue, target, total time.Duration) []TextSegment {
	if target <= 0 {
		return nil
	}
	for _, c := range cues {
		total = max(total, min(c.End, c.Start+target)) // a cue past the media still shows
	}
	var segs []TextSegment
	var b bytes.Buffer
	for n, from := 1, time.Duration(0); from < total || n == 1; n, from = n+1, from+target {
		to := min(from+target, max(total, from+time.Millisecond))
		b.Reset()
		b.WriteString("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n")
		for _, c := range cues {
			if c.Start < to && (c.End > from || c.End == c.Start && c.Start >= from) {
				fmt.Fprintf(&b, "\n%s --> %s\n%s\n", clock(c.Start, '.'), clock(c.End, '.'), c.Text)
			}
		}
		segs = append(segs, TextSegment{N: n, Start: from, Duration: to - from, Data: bytes.Clone(b.Bytes())})
	}
	return segs
}

// WriteVTT writes cues as one WebVTT file (a DASH text representation).
func WriteVTT(w io.Writer, cues []Cue) error {
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString("WEBVTT\n") // a write error stays in bw, and Flush returns it
	for _, c := range cues {
		fmt.Fprintf(bw, "\n%s --> %s\n%s\n", clock(c.Start, '.'), clock(c.End, '.'), c.Text)
	}
	return bw.Flush()
}

// TextSegmentName is the file name of WebVTT segment n.
func TextSegmentName(n int) string { return fmt.Sprintf("seg-%05d.vtt", n) }
