package ffmpeg

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Splitting a long video into chunks that many workers encode at once, and stitching the
// encoded chunks back (see media's split.go for the plan). The source's video is copied, not
// re-encoded, into one MPEG-TS file per GOP (CutGOPs); a chunk's input is the GOPs that hold
// its frames and what they reference; its encode keeps the frames of its window of
// presentation time (Output.Window) on the source's own clock (-copyts), so that the encoded
// chunks, concatenated, carry the source's timestamps, continuous and in order. MPEG-TS is the
// carrier because its files concatenate byte for byte (each one's first packets marked as a
// discontinuity) and it keeps every timestamp exact at 90 kHz.

// TSClock is MPEG-TS's clock rate: Window bounds are in its ticks.
const TSClock = 90000

// TSOffset is what CutGOPs adds to the source's timestamps: a copied stream's first decode
// timestamps are negative (B-frames), which MPEG-TS cannot carry.
const TSOffset = 10 * time.Second

// Splittable are the video codecs MPEG-TS carries, and so the sources that can be cut.
var Splittable = []string{"h264", "hevc", "mpeg2video", "mpeg1video", "mpeg4"}

// Stitchable are the encoders whose chunks join into one stream: every chunk starts with an
// IDR and the same parameter sets (x264's stitchable), and MPEG-TS carries them.
var Stitchable = []string{"libx264", "libx265"}

// Window keeps the decoded frames whose timestamps are in [From, To), in TSClock ticks on the
// chunk input's clock. The encode also ends at To (-to, on the same clock with -copyts), so that
// ffmpeg stops decoding there instead of at the end of the window's last GOP.
//
// KeyEvery > 0 forces keyframes on a grid of that step from Origin (ticks on the same clock):
// a ladder's segment boundaries, the same instants in every chunk and every rung as in a whole
// run. The window of such a chunk starts on the grid, at step KeyIndex.
type Window struct {
	From, To int64
	Origin   int64         `json:",omitempty"`
	KeyEvery time.Duration `json:",omitempty"`
	KeyIndex int           `json:",omitempty"`
}

// VideoPacket is one packet of a file's video stream, in decode order.
type VideoPacket struct {
	PTS, DTS int64 // in the stream's time base
	Key      bool
	// NoPTS: the container gives no presentation time (PTS is the decode time then): an AVI
	// with B-frames, where decode order is not presentation order.
	NoPTS bool `json:",omitempty"`
	// NoDTS: the container gives no decode time (DTS is the presentation time then):
	// matroska's first packets.
	NoDTS bool `json:",omitempty"`
}

// VideoPackets lists the packets of a local file's first video stream (not cover art), in
// decode order, with the stream's time base as num/den. Demuxing only.
func (r *Runner) VideoPackets(ctx context.Context, path string) (num, den int64, pkts []VideoPacket, err error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return 0, 0, nil, &SpecError{Field: "path", Msg: "empty or contains NUL"}
	}
	args := []string{"-v", "error", "-select_streams", "V:0", "-show_entries", "stream=time_base:packet=pts,dts,flags",
		"-of", "compact=p=1", "-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "file:" + path}
	p := &packetParser{}
	if err := r.streamProbe(ctx, args, nil, p, nil); err != nil {
		return 0, 0, nil, err
	}
	if p.den <= 0 || p.num <= 0 {
		return 0, 0, nil, fmt.Errorf("ffmpeg: %s: no video stream", path)
	}
	return p.num, p.den, p.pkts, nil
}

type packetParser struct {
	line     []byte
	num, den int64
	pkts     []VideoPacket
}

func (p *packetParser) Write(b []byte) (int, error) {
	return foldLines(&p.line, 256, b, func(line string) bool { p.parse(line); return true })
}

func (p *packetParser) parse(line string) {
	section, rest, _ := strings.Cut(line, "|")
	var pk VideoPacket
	okPTS, okDTS := false, false
	for _, f := range strings.Split(rest, "|") {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "pts":
			pk.PTS, okPTS = atoi64(v)
		case "dts":
			pk.DTS, okDTS = atoi64(v)
		case "flags":
			pk.Key = strings.HasPrefix(v, "K")
		case "time_base":
			n, d, _ := strings.Cut(v, "/")
			p.num, _ = atoi64(n)
			p.den, _ = atoi64(d)
		}
	}
	if section == "packet" {
		if !okPTS {
			pk.PTS, pk.NoPTS = pk.DTS, true
		}
		if !okDTS {
			pk.DTS, pk.NoDTS = pk.PTS, true
		}
		if okPTS || okDTS {
			p.pkts = append(p.pkts, pk)
		}
	}
}

func atoi64(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// CutGOPs copies the first video stream (of codec, one of Splittable) of a local file into dir,
// one MPEG-TS file per GOP (gop00000.ts, ...: a file starts at each keyframe, in decode order),
// with the source's timestamps plus TSOffset. Every file starts with the stream's parameter
// sets, so that it decodes without the ones before; an open GOP's keyframe is no IDR, before
// which alone they are otherwise repeated. It returns the files in order.
func (r *Runner) CutGOPs(ctx context.Context, src, codec, dir string) ([]string, error) {
	bsf := "dump_extra=freq=keyframe"
	switch codec {
	case "h264", "hevc":
		bsf = codec + "_mp4toannexb," + bsf
	}
	if strings.ContainsRune(src, 0) || strings.ContainsRune(dir, 0) {
		return nil, &SpecError{Field: "path", Msg: "contains NUL"}
	}
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error", "-copyts",
		"-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "file:" + src,
		"-map", "0:V:0", "-c", "copy", "-bsf:v", bsf, "-output_ts_offset", strconv.FormatFloat(TSOffset.Seconds(), 'f', -1, 64),
		"-muxdelay", "0", "-muxpreload", "0",
		// A new segment at every keyframe: a segment time shorter than any GOP.
		"-f", "segment", "-segment_time", "0.000001", "-segment_format", "mpegts",
		"-segment_format_options", "mpegts_flags=+initial_discontinuity",
		"file:" + filepath.Join(dir, "gop%05d.ts")}
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	cmd := r.command(ctx, r.cfg.FFmpeg, args)
	cmd.Stderr = tail
	if err := runGroup(cmd); err != nil {
		return nil, r.runError(ctx, "cut", args, cmd, err, tail.release())
	}
	files, err := filepath.Glob(filepath.Join(dir, "gop*.ts"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	return files, nil
}

// AudioInput is a second input a run takes its audio from (a split job's audio, encoded once
// whole), delayed by Offset.
type AudioInput struct {
	Path   string
	Offset time.Duration
}

// appendGridKeyframes puts a keyframe at the first frame of every grid step of w that the
// window holds, and, for x264, no scene-cut keyframes, as a ladder's whole run does. The grid
// goes as a list of instants on the chunk's clock: with -copyts, an expression's t is not that
// clock, but a list's times are.
func appendGridKeyframes(a []string, codec string, w *Window) []string {
	var times []string
	step := int64(w.KeyEvery.Seconds() * TSClock)
	for g := w.Origin + int64(w.KeyIndex)*step; g < w.To && len(times) < 100000; g += step {
		// A tick early: the instant in seconds must not round past a frame that is on it.
		times = append(times, strconv.FormatFloat(float64(g-1)/TSClock, 'f', 6, 64))
	}
	if len(times) > 0 {
		a = append(a, "-force_key_frames", strings.Join(times, ","))
	}
	if codec == "libx264" {
		a = append(a, "-sc_threshold", "0")
	}
	return a
}

// windowFilter keeps the frames of w.
func windowFilter(w *Window) string {
	return fmt.Sprintf("select='gte(pts,%d)*lt(pts,%d)'", w.From, w.To)
}

// appendChunkMux adds what an encoded chunk needs to join the next: no mux delay (its
// timestamps stay the source's) and its first packets marked as a discontinuity, so that the
// concatenated files demux cleanly.
func appendChunkMux(a []string, w *Window) []string {
	a = append(a, "-to", strconv.FormatFloat(float64(w.To)/TSClock, 'f', 6, 64))
	return append(a, "-muxdelay", "0", "-muxpreload", "0", "-mpegts_flags", "+initial_discontinuity")
}
