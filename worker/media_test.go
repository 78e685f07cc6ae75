package worker_test

import (
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/job"
)

// Fast encoder settings for the matrix: the presets' speeds are for production, these keep the
// whole test within seconds on two cores. They change speed, not the decisions under test.
var (
	fastH264 = &job.Video{Preset: "ultrafast"}
	fastHEVC = &job.Video{Preset: "ultrafast"}
	fastAV1  = &job.Video{Preset: "12"}
	fastVP9  = &job.Video{Preset: "realtime"}
)

// mediaStream is what the matrix reads back from ffprobe.
type mediaStream struct {
	Type       string `json:"codec_type"`
	Codec      string `json:"codec_name"`
	Tag        string `json:"codec_tag_string"`
	Profile    string `json:"profile"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	PixFmt     string `json:"pix_fmt"`
	SAR        string `json:"sample_aspect_ratio"`
	FieldOrder string `json:"field_order"`
	AvgRate    string `json:"avg_frame_rate"`
	Channels   int    `json:"channels"`
	Packets    string `json:"nb_read_packets"`
	SideData   []struct {
		Type     string `json:"side_data_type"`
		Rotation *int   `json:"rotation"`
	} `json:"side_data_list"`
	Tags map[string]string `json:"tags"`
}

type mediaProbe struct {
	Streams []mediaStream `json:"streams"`
	Format  struct {
		Name     string `json:"format_name"`
		Duration string `json:"duration"`
	} `json:"format"`
}

func probeMedia(t *testing.T, path string) mediaProbe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p mediaProbe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p mediaProbe) of(kind string) []mediaStream {
	var out []mediaStream
	for _, s := range p.Streams {
		if s.Type == kind {
			out = append(out, s)
		}
	}
	return out
}

func (p mediaProbe) kinds() string {
	var k []string
	for _, s := range p.Streams {
		k = append(k, s.Type)
	}
	return strings.Join(k, ",")
}

func (p mediaProbe) duration(t *testing.T) float64 {
	t.Helper()
	d, err := strconv.ParseFloat(p.Format.Duration, 64)
	if err != nil {
		t.Fatalf("duration %q: %v", p.Format.Duration, err)
	}
	return d
}

// rotation is the display-matrix rotation of s, or its legacy rotate tag; 0 when upright.
func (s mediaStream) rotation() int {
	for _, sd := range s.SideData {
		if sd.Rotation != nil && *sd.Rotation != 0 {
			return *sd.Rotation
		}
	}
	r, _ := strconv.Atoi(s.Tags["rotate"])
	return r
}

func (s mediaStream) packets() int {
	n, _ := strconv.Atoi(s.Packets)
	return n
}

// genMedia runs ffmpeg to make an input in dir.
func genMedia(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	base := []string{"-hide_banner", "-v", "error", "-y"}
	if out, err := exec.Command("ffmpeg", append(append(base, args...), p)...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v: %s", name, err, out)
	}
	return p
}

// Sources for genMedia: tiny test pattern and tone.
func srcVideo(size string, rate int, secs float64) []string {
	return []string{"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=" + strconv.Itoa(rate) + ":duration=" + strconv.FormatFloat(secs, 'f', -1, 64)}
}

func srcAudio(freq int, secs float64) []string {
	return []string{"-f", "lavfi", "-i", "sine=frequency=" + strconv.Itoa(freq) + ":sample_rate=48000:duration=" + strconv.FormatFloat(secs, 'f', -1, 64)}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var x264Fast = []string{"-c:v", "libx264", "-preset", "ultrafast"}

// mediaCase is one input kind of the matrix: how to make it, the outputs asked for (URL is a
// file name), and what each output must be.
type mediaCase struct {
	name    string
	input   func(t *testing.T, dir string) string
	outputs []job.Output
	// fails, when set, is the reason the job must fail with (class invalid_input).
	fails string
	check func(t *testing.T, in mediaProbe, outs []mediaProbe, paths []string)
}

// TestMediaMatrix: each input kind that phones, cameras and editors produce, generated with
// lavfi, through a real worker and the relevant presets, and the decision of README.md's
// "Media decisions" checked on the output with ffprobe.
func TestMediaMatrix(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("media-1")
	e.startWorker("media-2")

	h264 := func(url string) job.Output { return job.Output{URL: url, Preset: "h264-480p", Video: fastH264} }
	plain := func(t *testing.T, dir string) string { // 320x240 h264 + aac, 1 s
		return genMedia(t, dir, "plain.mp4", cat(srcVideo("320x240", 25, 1), srcAudio(440, 1), x264Fast, []string{"-c:a", "aac", "-movflags", "+faststart"})...)
	}
	cases := []mediaCase{
		{
			name: "rotation",
			input: func(t *testing.T, dir string) string {
				// A phone's portrait video: landscape frames with a 90 degree display matrix.
				return genMedia(t, dir, "rotated.mp4", "-i", plain(t, dir), "-c", "copy", "-metadata:s:v:0", "rotate=90", "-movflags", "+faststart")
			},
			outputs: []job.Output{h264("rot.mp4"), {URL: "rot-hevc.mp4", Preset: "hevc-720p", Video: fastHEVC}},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				if r := in.of("video")[0].rotation(); r != 90 && r != -90 {
					t.Fatalf("input rotation %d, want 90", r)
				}
				for i, o := range outs {
					v := o.of("video")[0]
					if v.Width != 240 || v.Height != 320 {
						t.Errorf("output %d: %dx%d, want upright 240x320", i, v.Width, v.Height)
					}
					if r := v.rotation(); r != 0 {
						t.Errorf("output %d: rotation %d left", i, r)
					}
				}
			},
		},
		{
			name: "odd-dimensions",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "odd.mp4", cat(srcVideo("161x121", 25, 1), x264Fast, []string{"-pix_fmt", "yuv444p", "-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("odd.mp4")},
			check: func(t *testing.T, _ mediaProbe, outs []mediaProbe, _ []string) {
				if v := outs[0].of("video")[0]; v.Width != 160 || v.Height != 120 {
					t.Errorf("%dx%d, want 160x120 (the odd pixel dropped)", v.Width, v.Height)
				}
			},
		},
		{
			name: "non-square-pixels",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "anamorphic.mp4", cat(srcVideo("320x240", 25, 1), []string{"-vf", "setsar=2/1"}, x264Fast, []string{"-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("square.mp4")},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				if sar := in.of("video")[0].SAR; sar != "2:1" {
					t.Fatalf("input SAR %s, want 2:1", sar)
				}
				if v := outs[0].of("video")[0]; v.Width != 640 || v.Height != 240 {
					t.Errorf("%dx%d, want 640x240 (320x240 at 2:1 in square pixels)", v.Width, v.Height)
				}
			},
		},
		{
			name: "10bit-422",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "10bit.mp4", cat(srcVideo("160x120", 25, 1), srcAudio(440, 1), x264Fast, []string{"-pix_fmt", "yuv422p10le", "-c:a", "aac", "-movflags", "+faststart"})...)
			},
			outputs: []job.Output{
				// The preset's own x264 speed: ultrafast streams conform to Constrained Baseline.
				{URL: "h264.mp4", Preset: "h264-480p"},
				{URL: "hevc.mp4", Preset: "hevc-720p", Video: fastHEVC},
				{URL: "av1.mp4", Preset: "av1-720p", Video: fastAV1},
				{URL: "vp9.webm", Preset: "vp9-720p", Video: fastVP9},
			},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				if pf := in.of("video")[0].PixFmt; pf != "yuv422p10le" {
					t.Fatalf("input pix_fmt %s", pf)
				}
				for i, want := range []struct{ codec, profile string }{{"h264", "Main"}, {"hevc", "Main"}, {"av1", "Main"}, {"vp9", "Profile 0"}} {
					v := outs[i].of("video")[0]
					if v.Codec != want.codec || v.Profile != want.profile {
						t.Errorf("output %d: %s %s, want %s %s", i, v.Codec, v.Profile, want.codec, want.profile)
					}
				}
			},
		},
		{
			name: "variable-frame-rate",
			input: func(t *testing.T, dir string) string {
				// 25 fps for a second, then 5 fps: 30 frames over 1.84 s.
				return genMedia(t, dir, "vfr.mp4", cat(srcVideo("160x120", 25, 2), []string{"-vf", `select='lt(n\,25)+not(mod(n\,5))'`, "-fps_mode", "vfr"}, x264Fast, []string{"-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("kept.mp4"), {URL: "cfr.mp4", Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast", FPS: 10}}},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				n := in.of("video")[0].packets()
				if n != 30 {
					t.Fatalf("input has %d frames, want 30", n)
				}
				if got := outs[0].of("video")[0].packets(); got != n {
					t.Errorf("kept: %d frames, want the input's %d (no duplicates)", got, n)
				}
				cfr := outs[1].of("video")[0]
				if cfr.AvgRate != "10/1" || cfr.packets() < 17 || cfr.packets() > 19 {
					t.Errorf("fps 10: avg rate %s, %d frames; want 10/1 and 18", cfr.AvgRate, cfr.packets())
				}
			},
		},
		{
			name: "interlaced",
			input: func(t *testing.T, dir string) string {
				// 50p made into 25i: fields of different instants, flagged top field first.
				return genMedia(t, dir, "interlaced.mp4", cat(srcVideo("160x120", 50, 1), []string{"-vf", "interlace=scan=tff", "-flags", "+ildct+ilme"}, x264Fast, []string{"-x264opts", "tff=1", "-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("deint.mp4")},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, paths []string) {
				if fo := in.of("video")[0].FieldOrder; fo != "tt" {
					t.Fatalf("input field order %q, want tt", fo)
				}
				v := outs[0].of("video")[0]
				if v.FieldOrder != "progressive" || v.packets() != 25 {
					t.Errorf("field order %q, %d frames; want progressive, 25 (one frame per frame)", v.FieldOrder, v.packets())
				}
				tff, prog := idet(t, paths[0])
				if prog <= tff {
					t.Errorf("idet: %d frames look interlaced, %d progressive: not deinterlaced", tff, prog)
				}
			},
		},
		{
			name: "video-without-audio",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "silent.mp4", cat(srcVideo("160x120", 25, 1), x264Fast, []string{"-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("silent.mp4"), {URL: "silent.webm", Preset: "vp9-720p", Video: fastVP9}},
			check: func(t *testing.T, _ mediaProbe, outs []mediaProbe, _ []string) {
				for i, o := range outs {
					if k := o.kinds(); k != "video" {
						t.Errorf("output %d: streams %s, want video only", i, k)
					}
				}
			},
		},
		{
			name: "audio-without-video",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "tone.m4a", cat(srcAudio(440, 1), []string{"-c:a", "aac"})...)
			},
			outputs: []job.Output{h264("tone.mp4"), {URL: "tone.ogg", Preset: "opus-audio"}},
			check: func(t *testing.T, _ mediaProbe, outs []mediaProbe, _ []string) {
				for i, o := range outs {
					if k := o.kinds(); k != "audio" {
						t.Errorf("output %d: streams %s, want audio only", i, k)
					}
				}
				if a := outs[1].of("audio")[0]; a.Codec != "opus" || outs[1].Format.Name != "ogg" {
					t.Errorf("opus-audio: %s in %s", a.Codec, outs[1].Format.Name)
				}
			},
		},
		{
			name: "multichannel",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "surround.mp4", cat(srcVideo("160x120", 25, 1), srcAudio(440, 1), x264Fast, []string{"-c:a", "aac", "-ac", "6", "-movflags", "+faststart"})...)
			},
			outputs: []job.Output{
				h264("stereo.mp4"),
				{URL: "six.mp4", Preset: "h264-480p", Video: fastH264, Audio: &job.Audio{Channels: 6}},
				// No preset and no channels: stereo all the same.
				{URL: "custom.mkv", Container: "mkv", Video: &job.Video{Codec: "h264", Preset: "ultrafast"}, Audio: &job.Audio{Codec: "opus"}},
			},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				if c := in.of("audio")[0].Channels; c != 6 {
					t.Fatalf("input has %d channels", c)
				}
				for i, want := range []int{2, 6, 2} {
					if c := outs[i].of("audio")[0].Channels; c != want {
						t.Errorf("output %d: %d channels, want %d", i, c, want)
					}
				}
			},
		},
		{
			name: "several-audio-tracks",
			input: func(t *testing.T, dir string) string {
				// Two tracks, the second flagged default: the plan takes the default one from
				// the probe, which a video output of an input that is not 8-bit H.264 mp4 with
				// one audio track has before ffmpeg starts (README.md, "Media decisions").
				return genMedia(t, dir, "tracks.mkv", cat(srcVideo("160x120", 25, 1), srcAudio(440, 1), srcAudio(880, 1),
					[]string{"-map", "0", "-map", "1", "-map", "2"}, x264Fast, []string{"-c:a", "aac",
						"-metadata:s:a:0", "title=first", "-metadata:s:a:1", "title=second", "-disposition:a:0", "0", "-disposition:a:1", "default"})...)
			},
			outputs: []job.Output{
				{URL: "one.mkv", Preset: "h264-480p", Container: "mkv", Video: fastH264},
				{URL: "all.mkv", Preset: "h264-480p", Container: "mkv", Video: fastH264, Audio: &job.Audio{AllTracks: true}},
			},
			check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
				if n := len(in.of("audio")); n != 2 {
					t.Fatalf("input has %d audio tracks", n)
				}
				for i, want := range []string{"second", "first,second"} {
					var titles []string
					for _, a := range outs[i].of("audio") {
						titles = append(titles, a.Tags["title"])
						if a.Channels != 2 {
							t.Errorf("output %d: track %s has %d channels", i, a.Tags["title"], a.Channels)
						}
					}
					if got := strings.Join(titles, ","); got != want {
						t.Errorf("output %d: audio tracks %q, want %q", i, got, want)
					}
				}
			},
		},
		{
			name: "one-frame",
			input: func(t *testing.T, dir string) string {
				return genMedia(t, dir, "frame.mp4", cat(srcVideo("160x120", 25, 1), []string{"-frames:v", "1"}, x264Fast, []string{"-movflags", "+faststart"})...)
			},
			outputs: []job.Output{h264("frame.mp4"), {URL: "frame-av1.mp4", Preset: "av1-720p", Video: fastAV1}},
			check: func(t *testing.T, _ mediaProbe, outs []mediaProbe, _ []string) {
				for i, o := range outs {
					if v := o.of("video"); len(v) != 1 || v[0].packets() != 1 {
						t.Errorf("output %d: %+v, want one video frame", i, v)
					}
				}
			},
		},
		{
			name: "longer-than-the-limit",
			input: func(t *testing.T, dir string) string {
				// The container says 13 hours; the probe refuses it before any output is kept.
				return genMedia(t, dir, "gap.mkv", cat(srcVideo("64x48", 10, 2), []string{"-vf", "setpts='if(gte(N,10),PTS+46800/TB,PTS)'"}, x264Fast)...)
			},
			outputs: []job.Output{h264("long.mp4")},
			fails:   "more than the limit of 12h",
		},
		// One case per new preset, on the plain clip.
		presetCase("preset-hevc-1080p", plain, job.Output{URL: "p.mp4", Preset: "hevc-1080p", Video: fastHEVC}, "mov,mp4,m4a,3gp,3g2,mj2", "hevc/hvc1", "aac", 2),
		presetCase("preset-hevc-720p", plain, job.Output{URL: "p.mp4", Preset: "hevc-720p", Video: fastHEVC}, "mov,mp4,m4a,3gp,3g2,mj2", "hevc/hvc1", "aac", 2),
		presetCase("preset-av1-720p", plain, job.Output{URL: "p.mp4", Preset: "av1-720p", Video: fastAV1}, "mov,mp4,m4a,3gp,3g2,mj2", "av1/av01", "aac", 2),
		presetCase("preset-opus-audio", plain, job.Output{URL: "p.ogg", Preset: "opus-audio"}, "ogg", "", "opus", 2),
		presetCase("preset-remux-mkv", plain, job.Output{URL: "p.mkv", Preset: "remux-mkv"}, "matroska,webm", "h264", "aac", 1), // copied: the clip's mono tone
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			in := c.input(t, dir)
			j := &job.Job{Input: "file://" + in, Metadata: map[string]string{"test": t.Name()}}
			var outs []string
			for _, o := range c.outputs {
				o.URL = "file://" + filepath.Join(dir, "out", o.URL)
				outs = append(outs, o.URL[len("file://"):])
				j.Outputs = append(j.Outputs, o)
			}
			id, err := e.client.Submit(context.Background(), j)
			if err != nil {
				t.Fatal(err)
			}
			ev := e.events.terminal(t, id)
			if c.fails != "" {
				if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidInput || !strings.Contains(ev.Error.Reason, c.fails) {
					t.Fatalf("ended %s %+v; want failed invalid_input %q", ev.Type, ev.Error, c.fails)
				}
				return
			}
			if ev.Type != job.EventSucceeded {
				t.Fatalf("ended %s %+v", ev.Type, ev.Error)
			}
			inProbe := probeMedia(t, in)
			var probes []mediaProbe
			for i, o := range outs {
				p := probeMedia(t, o)
				checkCommon(t, i, c.outputs[i], inProbe, p, ev.Outputs[i])
				probes = append(probes, p)
			}
			c.check(t, inProbe, probes, outs)
		})
	}
}

// checkCommon asserts what every output owes whatever its input: encoded video is upright,
// 8-bit 4:2:0, square-pixel, with even sides; hevc in mp4 is tagged hvc1; the output is as
// long as the input.
func checkCommon(t *testing.T, i int, o job.Output, in, out mediaProbe, res job.OutputResult) {
	t.Helper()
	copied := o.Preset == "remux-mkv"
	for _, v := range out.of("video") {
		if copied {
			continue
		}
		if v.PixFmt != "yuv420p" || (v.SAR != "" && v.SAR != "1:1") || v.Width%2 != 0 || v.Height%2 != 0 || v.rotation() != 0 {
			t.Errorf("output %d: video %s %dx%d %s sar %s rotation %d; want even, yuv420p, 1:1, upright", i, v.Codec, v.Width, v.Height, v.PixFmt, v.SAR, v.rotation())
		}
		if v.Codec == "hevc" && strings.HasPrefix(out.Format.Name, "mov") && v.Tag != "hvc1" {
			t.Errorf("output %d: hevc tagged %s, want hvc1", i, v.Tag)
		}
	}
	if d, want := res.Duration, in.duration(t); math.Abs(d-want) > 0.15 {
		t.Errorf("output %d: %.3f s long, input %.3f s", i, d, want)
	}
}

// presetCase is a subtest for one preset on the plain clip (320x240, mono tone): container,
// codecs (video as "codec/tag" where the tag matters), streams, channels and duration.
func presetCase(name string, input func(*testing.T, string) string, o job.Output, format, video, audio string, channels int) mediaCase {
	return mediaCase{
		name: name, input: input, outputs: []job.Output{o},
		check: func(t *testing.T, in mediaProbe, outs []mediaProbe, _ []string) {
			out := outs[0]
			if out.Format.Name != format {
				t.Errorf("format %s, want %s", out.Format.Name, format)
			}
			wantKinds := "audio"
			if video != "" {
				wantKinds = "video,audio"
				v := out.of("video")[0]
				got := v.Codec
				if strings.Contains(video, "/") {
					got += "/" + v.Tag
				}
				if got != video || v.Width != 320 || v.Height != 240 {
					t.Errorf("video %s %dx%d, want %s 320x240", got, v.Width, v.Height, video)
				}
			}
			if k := out.kinds(); k != wantKinds {
				t.Errorf("streams %s, want %s", k, wantKinds)
			}
			if a := out.of("audio"); len(a) != 1 || a[0].Codec != audio || a[0].Channels != channels {
				t.Errorf("audio %+v, want one %s, %d channels", a, audio, channels)
			}
		},
	}
}

// idet counts the frames ffmpeg's interlace detector finds interlaced (either field order)
// and progressive in the file.
func idet(t *testing.T, path string) (interlaced, progressive int) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-i", path, "-vf", "idet", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("idet: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		_, rest, ok := strings.Cut(line, "Multi frame detection:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // TFF: n BFF: n Progressive: n Undetermined: n
		for k := 0; k+1 < len(f); k += 2 {
			n, _ := strconv.Atoi(f[k+1])
			switch f[k] {
			case "TFF:", "BFF:":
				interlaced += n
			case "Progressive:":
				progressive = n
			}
		}
		return interlaced, progressive
	}
	t.Fatalf("no idet summary in %s", out)
	return 0, 0
}
