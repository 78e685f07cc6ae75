package ffmpeg

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stream is one stream as ffprobe reports it.
type Stream struct {
	Index  int
	Type   string // video | audio | subtitle | data | attachment
	Codec  string
	Width  int
	Height int
	PixFmt string
	// Rotation is how many degrees clockwise the frames must be turned
	// for display (0, 90, 180 or 270): the legacy "rotate" tag's
	// convention. ffprobe's displaymatrix "rotation" is counterclockwise,
	// so it is negated. ffmpeg autorotates by default when transcoding,
	// so scaling applies to the rotated frame.
	Rotation   int
	SAR        string
	FrameRate  float64 // avg_frame_rate
	FieldOrder string
	Channels   int
	SampleRate int
	Duration   time.Duration // duration, else the matroska DURATION tag; 0 if unknown
	// Start is the stream's start_time; HasStart is false when ffprobe states none.
	Start       time.Duration
	HasStart    bool
	AttachedPic bool // cover art: a video stream that is not a video
	Default     bool // disposition default: the track a player picks first
	// Language is the stream's language tag (ISO 639-2, as containers store it; "" when
	// untagged or "und"), Title its title tag.
	Language, Title string
	// Colour as ffprobe names it (color_transfer, color_primaries, color_space, color_range);
	// "" or "unknown" when the stream states none. WideColour reads them.
	ColorTransfer, ColorPrimaries, ColorSpace, ColorRange string
	// DVProfile and DVCompat are the Dolby Vision configuration record's profile and base
	// layer compatibility id (1 HDR10, 2 SDR, 4 HLG); 0 without Dolby Vision.
	DVProfile, DVCompat int
	// Mastering and Light are the HDR10 static metadata (mastering display colour volume,
	// content light level) that the container states for the stream (an mp4's mdcv and clli,
	// Matroska's MasteringMetadata), or, when it states none, that the first frame carries
	// (HEVC SEI): see Runner.FrameHDR. Nil when not stated.
	Mastering *MasteringDisplay
	Light     *ContentLight
}

// ProbeResult is ffprobe's view of a file.
type ProbeResult struct {
	FormatName string // e.g. "mov,mp4,m4a,3gp,3g2,mj2"
	Duration   time.Duration
	BitRate    int64
	Streams    []Stream
	Size       int64
	// Programs are the input's programmes (an MPEG-TS multiplex has one per channel); most
	// containers have none.
	Programs []Program
}

// Program is one programme of the input.
type Program struct {
	ID      int   // program_id: the N of ffmpeg's stream specifier p:N
	Streams []int // stream indexes, in the programme's order (the order p:N:a:K counts in)
}

// Video returns the first video stream that is not cover art.
func (p *ProbeResult) Video() (Stream, bool) {
	for _, s := range p.Streams {
		if s.Type == "video" && !s.AttachedPic {
			return s, true
		}
	}
	return Stream{}, false
}

// Audio returns the first audio stream.
func (p *ProbeResult) Audio() (Stream, bool) {
	for _, s := range p.Streams {
		if s.Type == "audio" {
			return s, true
		}
	}
	return Stream{}, false
}

// InProgram is the probe seen through programme id: only its streams, in its order, so that
// Video, Audio and track numbers mean what ffmpeg's p:id specifiers select. ok is false when the
// input has no such programme.
func (p *ProbeResult) InProgram(id int) (*ProbeResult, bool) {
	i := slices.IndexFunc(p.Programs, func(pr Program) bool { return pr.ID == id })
	if i < 0 {
		return nil, false
	}
	v := *p
	v.Streams = make([]Stream, 0, len(p.Programs[i].Streams))
	for _, idx := range p.Programs[i].Streams {
		if k := slices.IndexFunc(p.Streams, func(s Stream) bool { return s.Index == idx }); k >= 0 {
			v.Streams = append(v.Streams, p.Streams[k])
		}
	}
	return &v, true
}

// MainProgram is the programme used when a job names none: of an input with several, the first
// with video, else the first with audio. 0 when the input has fewer than two programmes (all
// its streams are used) or none of them has audio or video.
func (p *ProbeResult) MainProgram() int {
	if len(p.Programs) < 2 {
		return 0
	}
	for _, want := range []func(*ProbeResult) bool{
		func(v *ProbeResult) bool { _, ok := v.Video(); return ok },
		func(v *ProbeResult) bool { _, ok := v.Audio(); return ok },
	} {
		for _, pr := range p.Programs {
			if v, _ := p.InProgram(pr.ID); want(v) {
				return pr.ID
			}
		}
	}
	return 0
}

// ProbeDepth is how many bytes ffmpeg and ffprobe may read into an input to find its streams'
// parameters: 16 MiB (the default is 5 MB). A broadcast capture starts anywhere in a GOP, and a
// stream's size is only known from its first keyframe: at 16 Mbit/s with a 4 s GOP that can be
// 8 MB in, and with the default ffprobe reports no size ("video stream has no dimensions") and
// ffmpeg decodes before it knows the stream ("Error while decoding stream", taken for damage).
// The time bound (-analyzeduration, 5 s) is left as it is: an MPEG-TS may always add streams,
// so ffmpeg reads it up to one of the two bounds before it starts, and a longer one would delay
// every TS input. The probe beside ffmpeg is given at most Config.ProbeBytes anyway.
var ProbeDepth = []string{"-probesize", "16777216"}

// maxProbeOutput bounds ffprobe's JSON.
const maxProbeOutput = 4 << 20

func probeArgs(in Input) []string {
	a := []string{
		"-hide_banner", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
		"-show_entries", "program=program_id:program_stream=index",
	}
	return append(append(a, ProbeDepth...), inputArgs(in)...)
}

// ProbeChunks runs ffprobe on pipe:0, writing chunks (the head of the
// input, typically the ring buffers read so far) to its stdin and then
// closing it. ffprobe may stop reading early; that is not an error.
func (r *Runner) ProbeChunks(ctx context.Context, chunks [][]byte) (*ProbeResult, error) {
	args := probeArgs(Input{})
	stdinR, stdinW, err := newPipe(r.cfg.PipeSize)
	if err != nil {
		return nil, &Error{Op: "probe", Args: args, Kind: ErrInternal, Reason: err.Error()}
	}
	cmd := r.command(ctx, r.cfg.FFprobe, args)
	cmd.Stdin = stdinR
	var wg sync.WaitGroup
	defer wg.Wait()
	defer func() { _ = stdinW.Close() }() // unblocks the writer whatever happens
	started := func() {
		_ = stdinR.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { _ = stdinW.Close() }()
			for _, c := range chunks {
				// EPIPE: ffprobe had enough and exited.
				if _, err := stdinW.Write(c); err != nil {
					return
				}
			}
		}()
	}
	res, err := r.probe(ctx, cmd, args, started)
	_ = stdinR.Close()
	return res, err
}

// ProbeFile runs ffprobe on a local (spool) file.
func (r *Runner) ProbeFile(ctx context.Context, path string) (*ProbeResult, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, &SpecError{Field: "path", Msg: "empty or contains NUL"}
	}
	args := probeArgs(Input{Path: path})
	cmd := r.command(ctx, r.cfg.FFprobe, args)
	return r.probe(ctx, cmd, args, func() {})
}

// probe runs an ffprobe command; started runs once the child exists.
func (r *Runner) probe(ctx context.Context, cmd *exec.Cmd, args []string, started func()) (*ProbeResult, error) {
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	out := limitedBuffer{max: maxProbeOutput}
	cmd.Stdout, cmd.Stderr = &out, tail
	g := &group{}
	cmd.Cancel = func() error { g.signal(syscall.SIGKILL); return nil }
	if err := g.start(cmd); err != nil {
		return nil, startErr(ctx, "probe", args, err)
	}
	started()
	g.awaitExit()
	if err := cmd.Wait(); err != nil {
		return nil, r.runError(ctx, "probe", args, cmd, err, tail.release())
	}
	if out.overflow {
		return nil, &Error{Op: "probe", Args: args, Reason: "ffprobe printed more than " + strconv.Itoa(maxProbeOutput) + " bytes", StderrTail: tail.release(), Kind: ErrInvalidInput}
	}
	res, err := ParseProbe(out.b.Bytes())
	if err != nil {
		return nil, &Error{Op: "probe", Args: args, Reason: err.Error(), StderrTail: tail.release(), Kind: ErrInternal}
	}
	_, hasVideo := res.Video()
	_, hasAudio := res.Audio()
	if !hasVideo && !hasAudio {
		reason := "no audio or video stream"
		if _, line := matchStderr(tail.String()); line != "" {
			reason += ": " + line
		}
		return nil, &Error{Op: "probe", Args: args, Reason: reason, StderrTail: tail.release(), Kind: ErrInvalidInput}
	}
	return res, nil
}

// ParseProbe parses the JSON of "ffprobe -print_format json -show_format
// -show_streams". Absent or "N/A" numbers are zero.
func ParseProbe(jsonBytes []byte) (*ProbeResult, error) {
	var raw struct {
		Streams  []rawStream `json:"streams"`
		Programs []struct {
			ID      int `json:"program_id"`
			Streams []struct {
				Index int `json:"index"`
			} `json:"streams"`
		} `json:"programs"`
		Format struct {
			FormatName string `json:"format_name"`
			Duration   string `json:"duration"`
			BitRate    string `json:"bit_rate"`
			Size       string `json:"size"`
		} `json:"format"`
	}
	if err := json.Unmarshal(jsonBytes, &raw); err != nil {
		return nil, fmt.Errorf("ffmpeg: parse ffprobe json: %w", err)
	}
	res := &ProbeResult{
		FormatName: raw.Format.FormatName,
		Duration:   seconds(raw.Format.Duration),
		BitRate:    parseInt(raw.Format.BitRate),
		Size:       parseInt(raw.Format.Size),
		Streams:    make([]Stream, 0, len(raw.Streams)),
	}
	for _, pr := range raw.Programs {
		prog := Program{ID: pr.ID}
		for _, s := range pr.Streams {
			prog.Streams = append(prog.Streams, s.Index)
		}
		res.Programs = append(res.Programs, prog)
	}
	for _, s := range raw.Streams {
		res.Streams = append(res.Streams, s.stream())
	}
	return res, nil
}

// rawStream is one stream of ffprobe's JSON.
type rawStream struct {
	Index          int               `json:"index"`
	CodecType      string            `json:"codec_type"`
	CodecName      string            `json:"codec_name"`
	Width          int               `json:"width"`
	Height         int               `json:"height"`
	PixFmt         string            `json:"pix_fmt"`
	SAR            string            `json:"sample_aspect_ratio"`
	AvgFrameRate   string            `json:"avg_frame_rate"`
	FieldOrder     string            `json:"field_order"`
	Channels       int               `json:"channels"`
	SampleRate     string            `json:"sample_rate"`
	ColorTransfer  string            `json:"color_transfer"`
	ColorPrimaries string            `json:"color_primaries"`
	ColorSpace     string            `json:"color_space"`
	ColorRange     string            `json:"color_range"`
	Duration       string            `json:"duration"`
	StartTime      string            `json:"start_time"`
	Tags           map[string]string `json:"tags"`
	Disposition    map[string]int    `json:"disposition"`
	SideData       []rawSideData     `json:"side_data_list"`
}

// rawSideData is one entry of a stream's (or a frame's) side data in ffprobe's JSON.
type rawSideData struct {
	Type      string   `json:"side_data_type"`
	Rotation  *float64 `json:"rotation"`
	DVProfile int      `json:"dv_profile"`
	DVCompat  int      `json:"dv_bl_signal_compatibility_id"`
	rawHDRSideData
}

// stream is what the worker needs of a raw stream.
func (s rawStream) stream() Stream {
	st := Stream{
		Index:       s.Index,
		Type:        s.CodecType,
		Codec:       s.CodecName,
		Width:       s.Width,
		Height:      s.Height,
		PixFmt:      s.PixFmt,
		SAR:         s.SAR,
		FrameRate:   rational(s.AvgFrameRate),
		FieldOrder:  s.FieldOrder,
		Channels:    s.Channels,
		SampleRate:  int(parseInt(s.SampleRate)),
		Duration:    seconds(s.Duration),
		AttachedPic: s.Disposition["attached_pic"] == 1,
		Default:     s.Disposition["default"] == 1,
		Language:    language(s.Tags["language"]),
		Title:       s.Tags["title"],

		ColorTransfer: s.ColorTransfer, ColorPrimaries: s.ColorPrimaries,
		ColorSpace: s.ColorSpace, ColorRange: s.ColorRange,
	}
	if v, err := strconv.ParseFloat(s.StartTime, 64); err == nil && math.Abs(v) < maxClock.Seconds() {
		st.Start, st.HasStart = time.Duration(math.Round(v*1e9)), true
	}
	if st.Duration == 0 {
		// DURATION, else the longest DURATION-<lang>: the same answer whatever the
		// map order.
		for k, v := range s.Tags {
			if !strings.HasPrefix(strings.ToUpper(k), "DURATION") {
				continue
			}
			if d, ok := parseClock(v); ok && (strings.EqualFold(k, "DURATION") || d > st.Duration) {
				st.Duration = d
				if strings.EqualFold(k, "DURATION") {
					break
				}
			}
		}
	}
	rot, found := 0.0, false
	for _, sd := range s.SideData {
		if sd.Type == "Display Matrix" && sd.Rotation != nil {
			rot, found = -*sd.Rotation, true
		}
		if sd.Type == "DOVI configuration record" {
			st.DVProfile, st.DVCompat = sd.DVProfile, sd.DVCompat
		}
	}
	st.Mastering, st.Light = hdrSideData(s.SideData)
	if !found {
		if v, ok := s.Tags["rotate"]; ok {
			rot = parseFloat(v)
		}
	}
	st.Rotation = normRotation(rot)
	return st
}

// normRotation rounds to a quarter turn in [0, 360).
func normRotation(deg float64) int {
	q := int(math.Round(deg/90)) % 4
	if q < 0 {
		q += 4
	}
	return q * 90
}

func seconds(s string) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	if f >= maxClock.Seconds() { // beyond any real media; a Duration would overflow
		return maxClock
	}
	return time.Duration(math.Round(f * float64(time.Second)))
}

// rational parses "30000/1001"; "0/0" and garbage are 0.
func rational(s string) float64 {
	n, d, ok := strings.Cut(s, "/")
	if !ok {
		return parseFloat(s)
	}
	num, den := parseFloat(n), parseFloat(d)
	if den == 0 {
		return 0
	}
	return num / den
}

// Probe is an ffprobe reading a stream the caller writes to Stdin while the same bytes go to
// ffmpeg: the probe runs beside the transcode instead of before it, so it adds nothing to the
// time to first byte, and it sees as much of the input as it needs.
type Probe struct {
	stdin *os.File
	done  chan struct{}
	res   *ProbeResult
	err   error
}

// StartProbe starts ffprobe on pipe:0. The caller writes the input to Stdin, closes it at the
// end of the input or when it has written enough (a write fails with EPIPE once ffprobe has
// what it needs), and calls Wait.
func (r *Runner) StartProbe(ctx context.Context) (*Probe, error) {
	args := probeArgs(Input{})
	stdinR, stdinW, err := newPipe(r.cfg.PipeSize)
	if err != nil {
		return nil, &Error{Op: "probe", Args: args, Kind: ErrInternal, Reason: err.Error()}
	}
	cmd := r.command(ctx, r.cfg.FFprobe, args)
	cmd.Stdin = stdinR
	p := &Probe{stdin: stdinW, done: make(chan struct{})}
	startedCh := make(chan struct{})
	go func() {
		defer close(p.done)
		p.res, p.err = r.probe(ctx, cmd, args, func() { close(startedCh) })
		_ = stdinR.Close()
	}()
	select {
	case <-startedCh:
		_ = stdinR.Close()
		return p, nil
	case <-p.done:
		_ = stdinW.Close()
		return nil, p.err
	}
}

// Stdin is where the input goes.
func (p *Probe) Stdin() *os.File { return p.stdin }

// Done is closed when ffprobe has exited.
func (p *Probe) Done() <-chan struct{} { return p.done }

// Wait closes Stdin if the caller has not, waits for ffprobe and returns its result.
func (p *Probe) Wait() (*ProbeResult, error) {
	_ = p.stdin.Close()
	<-p.done
	return p.res, p.err
}

// language is a language tag as the worker compares it: lower case, "" for undetermined.
func language(tag string) string {
	l := strings.ToLower(strings.TrimSpace(tag))
	if l == "und" {
		return ""
	}
	return l
}
