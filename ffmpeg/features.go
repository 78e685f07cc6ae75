package ffmpeg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Loudness normalises an output's audio to an EBU R128 integrated loudness with loudnorm, in
// its linear mode given the input track's measurement (Runner.MeasureLoudness): one gain for
// the whole track, so its dynamics are kept. loudnorm falls back to its dynamic mode (a
// true-peak limiter and a gain that follows the programme) by itself when that gain would take
// the true peak over TruePeak.
type Loudness struct {
	Target   float64 // integrated loudness, LUFS (-70..-5)
	TruePeak float64 // the true peak loudnorm aims under, dBTP (-9.5..0)
	// Limit is the true peak the output may have, as the job states it (dBTP): the verification
	// measures the output against it. TruePeak is under it by the encoder's overshoot.
	Limit float64
	// SampleRate is the rate loudnorm's output (192 kHz: it upsamples to find true peaks) is
	// resampled back to: the output's, else its input's. 0: 48 kHz.
	SampleRate int
	// Measured is the input track's loudness, measured before the run; required.
	Measured *LoudnessMeasure
}

// LoudnessMeasure is an audio stream's loudness, as ffmpeg's ebur128 filter measures it.
type LoudnessMeasure struct {
	I      float64 `json:"integrated"`       // integrated loudness, LUFS; -70 for silence
	TP     float64 `json:"true_peak"`        // true peak, dBTP; -99 for silence
	LRA    float64 `json:"range"`            // loudness range, LU
	Thresh float64 `json:"threshold"`        // the integration's relative gate, LUFS
	Silent bool    `json:"silent,omitempty"` // nothing above the absolute gate (-70 LUFS)
}

// Overlay is an image laid over an output's video: a second input of the run (a local spool
// file, read only with the image demuxer of its format), scaled to Width (its aspect kept) and
// placed at Position, Margin pixels from the edges, at Opacity.
type Overlay struct {
	Path     string  // the image's spool file (absolute)
	Format   string  // png_pipe or jpeg_pipe (OverlayFormats)
	Width    int     // on the output, in pixels: even, 2..MaxVideoSide
	Position string  // top-right, top-left, bottom-right, bottom-left, center
	Margin   int     // pixels, 0..1000
	Opacity  float64 // (0, 1]
}

// OverlayFormats are the demuxers an overlay image may be read with: one PNG or JPEG image, no
// pattern, no sequence (image2 opens other files by pattern).
var OverlayFormats = []string{"png_pipe", "jpeg_pipe"}

// overlayXY are the overlay filter's x and y for each position (M: the margin).
var overlayXY = map[string][2]string{
	"top-left":     {"M", "M"},
	"top-right":    {"W-w-M", "M"},
	"bottom-left":  {"M", "H-h-M"},
	"bottom-right": {"W-w-M", "H-h-M"},
	"center":       {"(W-w)/2", "(H-h)/2"},
}

// HDR is the colour and static metadata an HDR output keeps from its input: it is tagged with
// Colour (container and VUI) and x265 writes the mastering display and content light level
// SEI.
type HDR struct {
	Colour    Colour
	Mastering *MasteringDisplay // nil: the input states none
	Light     *ContentLight     // nil: the input states none
}

// MasteringDisplay is SMPTE ST 2086 mastering display colour volume: chromaticities in units
// of 0.00002, luminances in units of 0.0001 cd/m² (HEVC's SEI and x265's master-display).
type MasteringDisplay struct {
	RedX, RedY, GreenX, GreenY, BlueX, BlueY, WhiteX, WhiteY int
	MaxLuminance, MinLuminance                               int64
}

// ContentLight is CTA-861.3 content light level: MaxCLL and MaxFALL, in cd/m².
type ContentLight struct {
	MaxCLL, MaxFALL int
}

// x265 is the mastering display as x265's master-display takes it.
func (m MasteringDisplay) x265() string {
	return fmt.Sprintf("G(%d,%d)B(%d,%d)R(%d,%d)WP(%d,%d)L(%d,%d)", m.GreenX, m.GreenY, m.BlueX, m.BlueY,
		m.RedX, m.RedY, m.WhiteX, m.WhiteY, m.MaxLuminance, m.MinLuminance)
}

func (m MasteringDisplay) valid() bool {
	for _, c := range []int{m.RedX, m.RedY, m.GreenX, m.GreenY, m.BlueX, m.BlueY, m.WhiteX, m.WhiteY} {
		if c < 0 || c > 50000 {
			return false
		}
	}
	return m.MinLuminance >= 0 && m.MaxLuminance > 0 && m.MaxLuminance <= math.MaxUint32 && m.MinLuminance < m.MaxLuminance
}

func (l ContentLight) valid() bool {
	return l.MaxCLL >= 0 && l.MaxCLL <= math.MaxUint16 && l.MaxFALL >= 0 && l.MaxFALL <= math.MaxUint16
}

// rawHDRSideData are the fields of ffprobe's mastering display and content light side data.
type rawHDRSideData struct {
	RedX       string `json:"red_x"`
	RedY       string `json:"red_y"`
	GreenX     string `json:"green_x"`
	GreenY     string `json:"green_y"`
	BlueX      string `json:"blue_x"`
	BlueY      string `json:"blue_y"`
	WhiteX     string `json:"white_point_x"`
	WhiteY     string `json:"white_point_y"`
	MinLum     string `json:"min_luminance"`
	MaxLum     string `json:"max_luminance"`
	MaxContent int    `json:"max_content"`
	MaxAverage int    `json:"max_average"`
}

// hdrSideData reads the mastering display and content light level out of side data; nil for
// what is absent or out of range.
func hdrSideData(list []rawSideData) (*MasteringDisplay, *ContentLight) {
	var (
		md *MasteringDisplay
		cl *ContentLight
	)
	for _, sd := range list {
		switch sd.Type {
		case "Mastering display metadata":
			m := MasteringDisplay{
				RedX: ratioIn(sd.RedX, 50000), RedY: ratioIn(sd.RedY, 50000),
				GreenX: ratioIn(sd.GreenX, 50000), GreenY: ratioIn(sd.GreenY, 50000),
				BlueX: ratioIn(sd.BlueX, 50000), BlueY: ratioIn(sd.BlueY, 50000),
				WhiteX: ratioIn(sd.WhiteX, 50000), WhiteY: ratioIn(sd.WhiteY, 50000),
				MaxLuminance: int64(ratioIn(sd.MaxLum, 10000)), MinLuminance: int64(ratioIn(sd.MinLum, 10000)),
			}
			if m.valid() {
				md = &m
			}
		case "Content light level metadata":
			if l := (ContentLight{MaxCLL: sd.MaxContent, MaxFALL: sd.MaxAverage}); l.valid() && l.MaxCLL > 0 {
				cl = &l
			}
		}
	}
	return md, cl
}

// ratioIn is ffprobe's "num/den" in units of 1/unit, rounded; -1 when it is not a ratio.
func ratioIn(s string, unit int) int {
	n, d, ok := strings.Cut(s, "/")
	num, err1 := strconv.ParseInt(n, 10, 64)
	den, err2 := strconv.ParseInt(d, 10, 64)
	if !ok || err1 != nil || err2 != nil || den <= 0 || num < 0 {
		return -1
	}
	v := math.Round(float64(num) * float64(unit) / float64(den))
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

// FrameHDR reads the HDR10 static metadata of the input's first video frame (HEVC and AV1
// carry it in the bitstream, where the container may not state it): ffprobe decodes that one
// frame. in is a spool file, or "" for chunks on stdin (the input's head).
func (r *Runner) FrameHDR(ctx context.Context, in Input, chunks [][]byte) (*MasteringDisplay, *ContentLight, error) {
	a := []string{"-hide_banner", "-v", "error", "-print_format", "json", "-select_streams", "V:0",
		"-read_intervals", "%+#1", "-show_frames", "-show_entries", "frame=side_data_list"}
	a = append(append(a, ProbeDepth...), inputArgs(in)...)
	cmd := r.command(ctx, r.cfg.FFprobe, a)
	if in.Path == "" {
		rs := make([]io.Reader, len(chunks))
		for i, c := range chunks {
			rs[i] = bytes.NewReader(c)
		}
		cmd.Stdin = io.MultiReader(rs...) // exec ignores EPIPE: ffprobe stops after the frame
	}
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	out := limitedBuffer{max: maxProbeOutput}
	cmd.Stdout, cmd.Stderr = &out, tail
	if err := runGroup(cmd); err != nil {
		return nil, nil, r.runError(ctx, "probe", a, cmd, err, tail.release())
	}
	var raw struct {
		Frames []struct {
			SideData []rawSideData `json:"side_data_list"`
		} `json:"frames"`
	}
	if err := json.Unmarshal(out.b.Bytes(), &raw); err != nil || out.overflow {
		return nil, nil, &Error{Op: "probe", Args: a, Kind: ErrInternal, Reason: fmt.Sprintf("frame side data: %v", err)}
	}
	if len(raw.Frames) == 0 {
		return nil, nil, nil
	}
	md, cl := hdrSideData(raw.Frames[0].SideData)
	return md, cl, nil
}

// AudioStream is the stream specifier of audio track n (counted among the audio streams of the
// input, or of programme program when > 0), as the run maps it.
func AudioStream(program, n int) string {
	return inputStreams(program) + "a:" + strconv.Itoa(n)
}

var audioStreamRe = regexp.MustCompile(`^0:(p:[0-9]{1,5}:)?a:[0-9]{1,2}$`)

// MeasureLoudness measures the integrated loudness, loudness range and true peak of one audio
// stream (stream: AudioStream) of a local file, with ffmpeg's ebur128 filter: it decodes that
// stream only (the video is neither decoded nor read further than the demuxer must). start and
// length, when > 0, measure only that range (a clip), which ffmpeg seeks to and cuts to the
// sample.
func (r *Runner) MeasureLoudness(ctx context.Context, path, stream string, start, length time.Duration) (LoudnessMeasure, error) {
	if !strings.HasPrefix(path, "/") || strings.ContainsRune(path, 0) || !audioStreamRe.MatchString(stream) || start < 0 || length < 0 {
		return LoudnessMeasure{}, &SpecError{Field: "loudness", Msg: "an absolute local file, an audio stream specifier, a range"}
	}
	a := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"}
	a = append(a, ProbeDepth...)
	if start > 0 {
		a = append(a, "-ss", strconv.FormatFloat(start.Seconds(), 'f', -1, 64))
	}
	if length > 0 {
		a = append(a, "-t", strconv.FormatFloat(length.Seconds(), 'f', -1, 64))
	}
	a = append(a, inputArgs(Input{Path: path})...)
	a = append(a, "-map", stream, "-vn", "-sn", "-dn", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-")
	cmd := r.command(ctx, r.cfg.FFmpeg, a)
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	cmd.Stderr = tail
	if err := runGroup(cmd); err != nil {
		return LoudnessMeasure{}, r.runError(ctx, "loudness", a, cmd, err, tail.release())
	}
	m, err := parseEBUR128(tail.String())
	if err != nil {
		return LoudnessMeasure{}, &Error{Op: "loudness", Args: a, Kind: ErrInternal, Reason: err.Error(), StderrTail: tail.release()}
	}
	return m, nil
}

// parseEBUR128 reads the summary ebur128 logs when its stream ends:
//
//	Integrated loudness:
//	  I:         -21.8 LUFS
//	  Threshold: -31.8 LUFS
//	Loudness range:
//	  LRA:         0.0 LU
//	  ...
//	True peak:
//	  Peak:      -16.1 dBFS
func parseEBUR128(log string) (LoudnessMeasure, error) {
	i := strings.LastIndex(log, "Summary:")
	if i < 0 {
		return LoudnessMeasure{}, errors.New("ebur128 printed no summary")
	}
	var (
		m       LoudnessMeasure
		section string
		found   int
	)
	for _, line := range strings.Split(log[i:], "\n") {
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, ":") {
			section = line
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64) // "-inf" parses, as -Inf
		if err != nil {
			continue
		}
		switch {
		case section == "Integrated loudness:" && key == "I":
			m.I, found = v, found+1
		case section == "Integrated loudness:" && key == "Threshold":
			m.Thresh, found = v, found+1
		case section == "Loudness range:" && key == "LRA":
			m.LRA, found = v, found+1
		case section == "True peak:" && key == "Peak":
			m.TP, found = v, found+1
		}
	}
	if found != 4 {
		return LoudnessMeasure{}, errors.New("ebur128's summary lacks a figure")
	}
	// Silence (or near it) has no integrated loudness: ebur128 reports the gate, and -inf peaks.
	m.Silent = m.I <= -70 || math.IsInf(m.TP, -1)
	m.TP = max(m.TP, -99)
	return m, nil
}

// loudnormFilter is the audio chain of a normalised output: loudnorm linear with the measured
// values (clamped to the ranges loudnorm takes), then back to the output's sample rate. A
// silent track is left as it is: no gain makes silence -16 LUFS.
func loudnormFilter(l *Loudness) string {
	rate := l.SampleRate
	if rate == 0 {
		rate = 48000
	}
	m := l.Measured
	if m.Silent {
		return "anull"
	}
	num := func(v, lo, hi float64) string { return strconv.FormatFloat(min(hi, max(lo, v)), 'f', 2, 64) }
	// The target range must hold the measured one, or loudnorm goes dynamic for it; a measured
	// range of 0 reads as "not measured" to loudnorm (dynamic again), so it is at least 0.1.
	lra := min(50, max(7, math.Ceil(m.LRA)))
	return "loudnorm=I=" + num(l.Target, -70, -5) + ":TP=" + num(l.TruePeak, -9, 0) + ":LRA=" + num(lra, 1, 50) +
		":measured_I=" + num(m.I, -99, 0) + ":measured_TP=" + num(m.TP, -99, 99) +
		":measured_LRA=" + num(m.LRA, 0.1, 99) + ":measured_thresh=" + num(m.Thresh, -99, 0) +
		":linear=true:print_format=none,aresample=" + strconv.Itoa(rate)
}

func (l *Loudness) validate(f string) error {
	switch {
	case l.Measured == nil:
		return specErr(f, "the input's loudness must be measured first (Measured)")
	case l.Target != l.Target || l.Target < -70 || l.Target > -5:
		return specErr(f+".Target", "must be -70..-5 LUFS, got %v", l.Target)
	case l.TruePeak != l.TruePeak || l.TruePeak < -9.5 || l.TruePeak > 0:
		return specErr(f+".TruePeak", "must be -9.5..0 dBTP, got %v", l.TruePeak)
	case l.SampleRate < 0 || l.SampleRate > 192000:
		return specErr(f+".SampleRate", "must be 0..192000, got %d", l.SampleRate)
	}
	return nil
}

func (o *Overlay) validate(f string) error {
	switch {
	case !strings.HasPrefix(o.Path, "/") || strings.ContainsRune(o.Path, 0):
		return specErr(f+".Path", "an absolute local file")
	case !slices.Contains(OverlayFormats, o.Format):
		return specErr(f+".Format", "want %s, got %q", strings.Join(OverlayFormats, " or "), o.Format)
	case o.Width < 2 || o.Width > MaxVideoSide || o.Width%2 != 0:
		return specErr(f+".Width", "must be an even number 2..%d, got %d", MaxVideoSide, o.Width)
	case o.Margin < 0 || o.Margin > 1000:
		return specErr(f+".Margin", "must be 0..1000, got %d", o.Margin)
	case o.Opacity != o.Opacity || o.Opacity <= 0 || o.Opacity > 1:
		return specErr(f+".Opacity", "must be in (0, 1], got %v", o.Opacity)
	}
	if _, ok := overlayXY[o.Position]; !ok {
		return specErr(f+".Position", "unknown position %q", o.Position)
	}
	return nil
}

func (h *HDR) validate(f string) error {
	if err := h.Colour.validate(f + ".Colour"); err != nil {
		return err
	}
	if !h.Colour.HDR() {
		return specErr(f+".Colour.Transfer", "an HDR transfer (smpte2084, arib-std-b67), got %q", h.Colour.Transfer)
	}
	if h.Mastering != nil && !h.Mastering.valid() {
		return specErr(f+".Mastering", "out of range")
	}
	if h.Light != nil && !h.Light.valid() {
		return specErr(f+".Light", "out of range")
	}
	return nil
}

// overlayInputArgs read the overlay image: the file protocol and its image demuxer only.
func overlayInputArgs(o *Overlay) []string {
	return []string{"-protocol_whitelist", "file", "-format_whitelist", o.Format, "-f", o.Format, "-i", "file:" + o.Path}
}

// overlayGraph is the filter graph of a video output with an overlay: [in] through the
// output's chain (chain, its format last), the image from input n scaled to its width (its
// aspect kept) in RGBA (its alpha kept, times the opacity), laid over the frame, then the
// output's pixel format; out is the output pad.
func overlayGraph(in string, chain []string, ov *Overlay, n int, out string) string {
	pix := chain[len(chain)-1] // format=...
	xy := overlayXY[ov.Position]
	m := strconv.Itoa(ov.Margin)
	img := "[" + strconv.Itoa(n) + ":v:0]scale=" + strconv.Itoa(ov.Width) + ":-2,format=rgba"
	if ov.Opacity < 1 {
		img += ",colorchannelmixer=aa=" + strconv.FormatFloat(ov.Opacity, 'f', 3, 64)
	}
	return "[" + in + "]" + strings.Join(chain[:len(chain)-1], ",") + "[" + out + "m];" +
		img + "[" + out + "i];" +
		"[" + out + "m][" + out + "i]overlay=x=" + strings.ReplaceAll(xy[0], "M", m) + ":y=" + strings.ReplaceAll(xy[1], "M", m) +
		":format=auto:eof_action=repeat," + pix + "[" + out + "]"
}

// hdrEncodeArgs tag an HDR output with its input's colour, and give x265 its mastering metadata.
func hdrEncodeArgs(h *HDR) (args []string, x265 string) {
	c := h.Colour
	args = []string{"-color_primaries", c.Primaries, "-color_trc", c.Transfer, "-colorspace", c.Matrix, "-color_range", c.Range}
	if h.Mastering != nil {
		x265 += ":master-display=" + h.Mastering.x265()
	}
	if h.Light != nil {
		x265 += ":max-cll=" + strconv.Itoa(h.Light.MaxCLL) + "," + strconv.Itoa(h.Light.MaxFALL)
	}
	return args, x265
}
