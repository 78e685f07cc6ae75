package media_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// gen runs ffmpeg to make a test input in dir.
func gen(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	argv := append(append([]string{"-hide_banner", "-v", "error", "-y"}, args...), p)
	if out, err := exec.Command("ffmpeg", argv...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v: %s", name, err, out)
	}
	return p
}

// Sources for gen: one second of test pattern and tone.
func vsrc(size string) []string {
	return []string{"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25:duration=1"}
}

func asrc() []string {
	return []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"}
}

func join(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// probed is what ffprobe says of a file: each stream's type and size, and the duration.
type probed struct {
	Streams []struct {
		Type   string `json:"codec_type"`
		Width  int    `json:"width"`
		Height int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func probeFile(t *testing.T, path string) probed {
	t.Helper()
	return ffprobeJSON[probed](t, path, "-show_streams", "-show_format")
}

// ffprobeJSON is ffprobe's JSON of path with the show options, decoded into a T.
func ffprobeJSON[T any](t *testing.T, path string, show ...string) T {
	t.Helper()
	out, err := exec.Command("ffprobe", append(append([]string{"-v", "error"}, show...), "-of", "json", path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p T
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// kinds lists the video and audio streams (an mp4 of an mxf or gxf also carries the source's
// timecode as a data track).
func (p probed) kinds() string {
	k := make([]string, 0, len(p.Streams))
	for _, s := range p.Streams {
		if s.Type == "video" || s.Type == "audio" {
			k = append(k, s.Type)
		}
	}
	return strings.Join(k, ",")
}

// argvObserver keeps the argv ffmpeg ran with.
type argvObserver struct{ argv *[]string }

func (o argvObserver) Probed(*ffmpeg.ProbeResult) {}
func (o argvObserver) Phase(string)               {}
func (o argvObserver) FirstByte()                 {}
func (o argvObserver) Started(argv []string, _ int) {
	*o.argv = argv
}

// transcode runs one job of input through the media core into one h264-480p mp4.
func transcode(t *testing.T, in string, program int) (string, error) {
	t.Helper()
	out, _, err := transcodeArgv(t, in, program, job.Output{})
	return out, err
}

// transcodeArgv is transcode, with the argv ffmpeg ran.
// The output's URL, preset and video speed are set here; the rest comes from o.
func transcodeArgv(t *testing.T, in string, program int, o job.Output) (string, []string, error) {
	t.Helper()
	var argv []string
	e := engine(t)
	_, res := reservation(t, e)
	out := filepath.Join(t.TempDir(), "out.mp4")
	o.URL, o.Preset, o.Video = "file://"+out, "h264-480p", &job.Video{Preset: "ultrafast"}
	task := &media.Task{ID: "formats", Attempt: 1, Buffers: res, Observer: argvObserver{&argv}, Job: &job.Job{Input: "file://" + in, Program: program, Outputs: []job.Output{o}}}
	if err := task.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	_, err := e.Run(context.Background(), task)
	return out, argv, err
}

// TestFormats: containers and raw streams that cameras, broadcasters, editors and old PCs
// write, and that ffmpeg reads from their own bytes alone, transcode end to end (issue 12,
// class 6; before, each was "not on whitelist").
func TestFormats(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pcm := []string{"-c:a", "pcm_s16le"}
	sd := vsrc("720x576") // the frame size DV and GXF carry
	cases := []struct {
		name string
		args []string
		want string // stream kinds of the output
		// noAudio drops the audio of the output: the A/V start offset of these (B-frame
		// reordering, priming) and gxf's padded audio are issue 12's classes 1 and 3, not
		// this test's; the demuxer is what is tested.
		noAudio bool
	}{
		{"x.mxf", join(vsrc("320x240"), asrc(), []string{"-c:v", "mpeg2video"}, pcm), "video", true},
		{"x.wmv", join(vsrc("320x240"), asrc(), []string{"-c:v", "wmv2", "-c:a", "wmav2"}), "video", true},
		{"x.gxf", join(sd, asrc(), []string{"-c:v", "mpeg2video"}, pcm), "video", true},
		{"x.dv", join(sd, asrc(), []string{"-c:v", "dvvideo", "-pix_fmt", "yuv420p", "-ac", "2"}, pcm), "video,audio", false},
		{"x.wtv", join(vsrc("320x240"), asrc(), []string{"-c:v", "mpeg2video", "-c:a", "mp2"}), "video,audio", false},
		{"x.rm", join(vsrc("320x240"), asrc(), []string{"-c:v", "rv10", "-c:a", "ac3"}), "video,audio", false},
		{"x.y4m", join(vsrc("320x240"), []string{"-pix_fmt", "yuv420p"}), "video", false},
		{"x.m4v", join(vsrc("320x240"), []string{"-c:v", "mpeg4", "-f", "m4v"}), "video", false},
		{"x.m2v", join(vsrc("320x240"), []string{"-c:v", "mpeg2video", "-f", "mpeg2video"}), "video", false},
		{"x.caf", join(asrc(), pcm), "audio", false},
		{"x.aiff", asrc(), "audio", false},
		{"x.w64", asrc(), "audio", false},
		{"x.ac3", join(asrc(), []string{"-c:a", "ac3"}), "audio", false},
		{"x.eac3", join(asrc(), []string{"-c:a", "eac3"}), "audio", false},
		{"x.dts", join(asrc(), []string{"-c:a", "dca", "-strict", "-2", "-ac", "2"}), "audio", false},
		{"x.thd", join(asrc(), []string{"-c:a", "truehd", "-strict", "-2", "-f", "truehd"}), "audio", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, _, err := transcodeArgv(t, gen(t, dir, c.name, c.args...), 0, job.Output{NoAudio: c.noAudio})
			if err != nil {
				t.Fatal(err)
			}
			p := probeFile(t, out)
			if got := p.kinds(); got != c.want {
				t.Errorf("output streams %s, want %s", got, c.want)
			}
			if d, _ := strconv.ParseFloat(p.Format.Duration, 64); d < 0.9 || d > 1.2 {
				t.Errorf("output %.3f s long, want 1", d)
			}
		})
	}
}

// TestCoverArt: an attached picture is not video (issue 12, class 5). A video preset on an
// audio file with cover art gives audio only (before, the picture was encoded as video and the
// mp4 muxer failed: internal), and a video file with cover art keeps its real video track.
func TestCoverArt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cover := gen(t, dir, "cover.png", "-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1")
	pic := []string{"-i", cover, "-map", "0", "-map", "1", "-c:v:0", "png", "-disposition:v:0", "attached_pic"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"cover.flac", join(asrc(), pic, []string{"-c:a", "flac"}), "audio"},
		{"cover.mp3", join(asrc(), pic, []string{"-c:a", "libmp3lame", "-c:v:0", "mjpeg", "-id3v2_version", "3"}), "audio"},
		{"cover.m4a", join(asrc(), pic, []string{"-c:a", "aac"}), "audio"},
		// A film with its poster: the video track is 320x240, the picture 64x64.
		{"cover.mp4", join(vsrc("320x240"), asrc(), []string{"-i", cover, "-map", "0", "-map", "1", "-map", "2",
			"-c:v:0", "libx264", "-preset", "ultrafast", "-c:v:1", "png", "-disposition:v:1", "attached_pic", "-c:a", "aac"}), "video,audio"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, err := transcode(t, gen(t, dir, c.name, c.args...), 0)
			if err != nil {
				t.Fatal(err)
			}
			p := probeFile(t, out)
			if got := p.kinds(); got != c.want {
				t.Fatalf("output streams %s, want %s", got, c.want)
			}
			if v := p.Streams[0]; v.Type == "video" && (v.Width != 320 || v.Height != 240) {
				t.Errorf("video %dx%d: the cover art, not the 320x240 track", v.Width, v.Height)
			}
		})
	}
}

// multiplex writes a broadcast-like MPEG-TS: a radio programme (audio only) first, then two
// television ones of different sizes, each video with its audio.
func multiplex(t *testing.T, dir string) string {
	t.Helper()
	return gen(t, dir, "mux.ts", join(
		asrc(), vsrc("320x240"), asrc(), vsrc("160x120"), asrc(),
		[]string{"-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4",
			"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
			"-program", "title=radio:st=0", "-program", "title=tv1:st=1:st=2", "-program", "title=tv2:st=3:st=4",
			"-f", "mpegts"})...)
}

// TestStreamCaps: cheap streams do not count against the 16-stream cap, and a multiplex gives
// the streams of one programme (issue 12, class 7; before, both inputs were refused, and a
// radio programme's audio went with a television programme's video).
func TestStreamCaps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srt := filepath.Join(dir, "one.srt")
	if err := os.WriteFile(srt, []byte("1\n00:00:00,000 --> 00:00:00,900\nhello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("100-subtitle-tracks", func(t *testing.T) {
		t.Parallel()
		args := join(vsrc("320x240"), asrc(), []string{"-i", srt, "-map", "0", "-map", "1"})
		for range 100 {
			args = append(args, "-map", "2")
		}
		in := gen(t, dir, "subs.mkv", append(args, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt")...)
		if n := len(probeFile(t, in).Streams); n != 102 {
			t.Fatalf("input has %d streams, want 102", n)
		}
		out, err := transcode(t, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := probeFile(t, out).kinds(); got != "video,audio" {
			t.Errorf("output streams %s, want video,audio", got)
		}
	})
	// The muxer numbers the programmes 1 (radio), 2 and 3.
	for _, c := range []struct {
		name    string
		program int
		size    int    // the width of the programme's video
		audio   string // the map of its audio
	}{{"first-with-video", 0, 320, "0:p:2:a:0?"}, {"named", 3, 160, "0:p:3:a:0?"}} {
		t.Run("multiplex-"+c.name, func(t *testing.T) {
			t.Parallel()
			out, argv, err := transcodeArgv(t, multiplex(t, t.TempDir()), c.program, job.Output{})
			if err != nil {
				t.Fatal(err)
			}
			p := probeFile(t, out)
			if got := p.kinds(); got != "video,audio" || p.Streams[0].Width != c.size {
				t.Errorf("output %s, %dx%d; want video %d wide and audio", got, p.Streams[0].Width, p.Streams[0].Height, c.size)
			}
			if !strings.Contains(strings.Join(argv, " "), "-map "+c.audio) {
				t.Errorf("argv %q does not map the programme's audio %s", argv, c.audio)
			}
		})
	}
	t.Run("multiplex-no-such-programme", func(t *testing.T) {
		t.Parallel()
		_, err := transcode(t, multiplex(t, t.TempDir()), 9)
		if !errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), "program 9") {
			t.Fatalf("err %v, want unsupported media naming program 9", err)
		}
	})
}
