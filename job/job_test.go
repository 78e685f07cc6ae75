package job_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

func presets(t *testing.T) job.Presets {
	t.Helper()
	p, err := job.ParsePresets(configs.Presets)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuiltinPresets(t *testing.T) {
	p := presets(t)
	for _, name := range []string{"h264-1080p", "h264-720p", "h264-480p", "vp9-720p", "aac-audio"} {
		if _, ok := p[name]; !ok {
			t.Errorf("preset %s missing", name)
		}
	}
}

func TestParsePresetsErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":         "presets: {}\n",
		"unknown key":   "presets:\n  x:\n    container: mp4\n    colour: red\n",
		"bad container": "presets:\n  x:\n    container: avi\n    video: {codec: h264}\n",
		"bad codec":     "presets:\n  x:\n    container: webm\n    video: {codec: h264}\n",
		"nothing":       "presets:\n  x:\n    container: mp4\n",
		"bad name":      "presets:\n  'a b':\n    container: m4a\n    audio: {codec: aac}\n",
		"smuggled opt":  "presets:\n  x:\n    container: mp4\n    video: {codec: h264, preset: '-vf'}\n",
	} {
		if _, err := job.ParsePresets([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"minimal", `{"input":"file:///a.mp4","preset":"h264-720p","outputs":[{"url":"file:///b.mp4"}]}`, true},
		{"timeout string", `{"input":"/a.mp4","outputs":[],"timeout":"30m"}`, true},
		{"timeout seconds", `{"input":"/a.mp4","outputs":[],"timeout":90}`, true},
		{"bad timeout", `{"input":"/a.mp4","timeout":"soon"}`, false},
		{"unknown field", `{"input":"/a.mp4","ouputs":[]}`, false},
		{"truncated", `{"input":`, false},
		{"trailing", `{"input":"/a"} {}`, false},
		{"not an object", `[1,2]`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := job.Decode([]byte(c.in))
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, job.ErrInvalid) {
				t.Errorf("decode error %v does not wrap ErrInvalid", err)
			}
		})
	}
	j, _ := job.Decode([]byte(`{"input":"/a.mp4","outputs":[],"timeout":90}`))
	if time.Duration(j.Timeout) != 90*time.Second {
		t.Errorf("timeout %v", time.Duration(j.Timeout))
	}
}

func TestValidate(t *testing.T) {
	p := presets(t)
	good := func() *job.Job {
		return &job.Job{Input: "file:///in/a.mp4", Preset: "h264-720p", Outputs: []job.Output{{URL: "file:///out/a.mp4"}}}
	}
	cases := []struct {
		name  string
		edit  func(j *job.Job)
		field string // "" means valid
	}{
		{"good", func(j *job.Job) {}, ""},
		{"plain path", func(j *job.Job) { j.Input = "/in/a.mp4" }, ""},
		{"bad version", func(j *job.Job) { j.Version = 2 }, "version"},
		{"bad id", func(j *job.Job) { j.ID = "a.b" }, "id"},
		{"id with space", func(j *job.Job) { j.ID = "a b" }, "id"},
		{"no input", func(j *job.Job) { j.Input = "" }, "input"},
		{"relative", func(j *job.Job) { j.Input = "in/a.mp4" }, "input"},
		{"concat", func(j *job.Job) { j.Input = "concat:/a.mp4|/b.mp4" }, "input"},
		{"subfile", func(j *job.Job) { j.Input = "subfile,,start,0,end,0,,:/etc/passwd" }, "input"},
		{"data", func(j *job.Job) { j.Input = "data:video/mp4;base64,AAAA" }, "input"},
		{"dash", func(j *job.Job) { j.Input = "-i" }, "input"},
		{"file host", func(j *job.Job) { j.Input = "file://evil/a.mp4" }, "input"},
		{"ftp scheme", func(j *job.Job) { j.Input = "ftp://example.com/a.mp4" }, "input"},
		{"nats without key", func(j *job.Job) { j.Input = "nats://bucket/" }, "input"},
		{"s3 key with dot-dot", func(j *job.Job) { j.Input = "s3://bucket/a/../b.mp4" }, "input"},
		{"http with credentials", func(j *job.Job) { j.Input = "http://user:pw@example.com/a.mp4" }, "input"},
		{"unknown preset", func(j *job.Job) { j.Preset = "nope" }, "preset"},
		{"no outputs", func(j *job.Job) { j.Outputs = nil }, "outputs"},
		{"too many outputs", func(j *job.Job) {
			for i := range 9 {
				j.Outputs = append(j.Outputs, job.Output{URL: fmt.Sprintf("/o/%d.mp4", i)})
			}
		}, "outputs"},
		{"output no url", func(j *job.Job) { j.Outputs[0].URL = "" }, "outputs[0].url"},
		{"output = input", func(j *job.Job) { j.Outputs[0].URL = j.Input }, "outputs[0].url"},
		{"duplicate outputs", func(j *job.Job) { j.Outputs = append(j.Outputs, j.Outputs[0]) }, "outputs[1].url"},
		{"no preset no spec", func(j *job.Job) { j.Preset = "" }, "outputs[0].container"},
		{"explicit spec", func(j *job.Job) {
			j.Preset = ""
			j.Outputs[0] = job.Output{URL: "/o.webm", Container: "webm", Video: &job.Video{Codec: "vp9", Height: 360}}
		}, ""},
		{"codec vs container", func(j *job.Job) { j.Outputs[0].Container = "webm" }, "outputs[0].video.codec"},
		{"absurd size", func(j *job.Job) { j.Outputs[0].Video = &job.Video{Width: 100000} }, "outputs[0].video.width"},
		{"smuggled bitrate", func(j *job.Job) { j.Outputs[0].Audio = &job.Audio{Bitrate: "1k -vf x"} }, "outputs[0].audio.bitrate"},
		{"negative timeout", func(j *job.Job) { j.Timeout = job.Duration(-time.Second) }, "timeout"},
		{"huge timeout", func(j *job.Job) { j.Timeout = job.Duration(48 * time.Hour) }, "timeout"},
		{"bad priority", func(j *job.Job) { j.Priority = "urgent" }, "priority"},
		{"big metadata", func(j *job.Job) { j.Metadata = map[string]string{"k": strings.Repeat("x", 2000)} }, "metadata"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := good()
			c.edit(j)
			err := j.Validate(p)
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *job.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want a FieldError on %s", err, c.field)
			}
			if fe.Field != c.field {
				t.Errorf("field = %q (%v), want %q", fe.Field, err, c.field)
			}
			if !errors.Is(err, job.ErrInvalid) {
				t.Error("does not wrap ErrInvalid")
			}
		})
	}
}

func TestFitBox(t *testing.T) {
	cases := []struct{ w, h, bw, bh, ww, wh int }{
		{1280, 720, 854, 480, 854, 480},
		{1920, 1080, 1280, 720, 1280, 720},
		{640, 360, 854, 480, 640, 360},     // never upscale
		{641, 361, 854, 480, 640, 360},     // odd sizes drop a pixel, never add one
		{1080, 1920, 1280, 720, 720, 1280}, // portrait: the box turns
		{720, 576, 1280, 720, 720, 576},
		{1440, 1080, 1280, 720, 960, 720},
		{4000, 1000, 1280, 720, 1280, 320}, // wide: width bounds
		{3, 3, 1280, 720, 2, 2},
		{1920, 1080, 0, 480, 854, 480}, // only a height
	}
	for _, c := range cases {
		gw, gh := job.FitBox(c.w, c.h, c.bw, c.bh)
		if gw != c.ww || gh != c.wh {
			t.Errorf("FitBox(%dx%d in %dx%d) = %dx%d, want %dx%d", c.w, c.h, c.bw, c.bh, gw, gh, c.ww, c.wh)
		}
	}
}

func TestPlan(t *testing.T) {
	p := presets(t)
	for _, c := range []struct {
		preset        string
		codec, acodec string
		container     string
		boxW, boxH    int
		video, audio  bool
	}{
		{"h264-720p", "libx264", "aac", "mp4", 1280, 720, true, true},
		{"h264-480p", "libx264", "aac", "mp4", 854, 480, true, true},
		{"vp9-720p", "libvpx-vp9", "libopus", "webm", 1280, 720, true, true},
		{"aac-audio", "", "aac", "m4a", 0, 0, false, true},
		{"hevc-1080p", "libx265", "aac", "mp4", 1920, 1080, true, true},
		{"hevc-720p", "libx265", "aac", "mp4", 1280, 720, true, true},
		{"av1-720p", "libsvtav1", "aac", "mp4", 1280, 720, true, true},
		{"opus-audio", "", "libopus", "ogg", 0, 0, false, true},
	} {
		t.Run(c.preset, func(t *testing.T) {
			j := &job.Job{Input: "/in.mp4", Preset: c.preset, Outputs: []job.Output{{URL: "/out"}}}
			s, err := j.Plan(p, ffmpeg.Input{}, job.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			o := s.Outputs[0]
			if o.Container != c.container || (o.Video != nil) != c.video || (o.Audio != nil) != c.audio {
				t.Fatalf("output %+v", o)
			}
			if v := o.Video; v != nil && (v.Codec != c.codec || !v.Fit || v.Width != c.boxW || v.Height != c.boxH || v.PixFmt != "yuv420p" || !v.Deinterlace) {
				t.Errorf("video %+v", v)
			}
			if o.Audio.Codec != c.acodec {
				t.Errorf("audio %+v", o.Audio)
			}
			if _, err := s.Args(); err != nil {
				t.Errorf("planned spec does not build an argv: %v", err)
			}
		})
	}
	j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{{URL: "/o.mkv", Container: "mkv", Video: &job.Video{Codec: "copy"}, Audio: &job.Audio{Codec: "copy"}}}}
	if s, err := j.Plan(p, ffmpeg.Input{}, job.Limits{}); err != nil || s.Outputs[0].Video.Fit || s.Outputs[0].Video.Codec != "copy" {
		t.Errorf("copy: %+v %v", s.Outputs, err)
	}
}

// TestPlanMediaDecisions: the defaults README.md's "Media decisions" promises, on the argv.
func TestPlanMediaDecisions(t *testing.T) {
	p := presets(t)
	plan := func(t *testing.T, o job.Output) []string {
		t.Helper()
		j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{o}}
		if err := j.Validate(p); err != nil {
			t.Fatal(err)
		}
		s, err := j.Plan(p, ffmpeg.Input{}, job.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		args, err := s.Args()
		if err != nil {
			t.Fatal(err)
		}
		return args
	}
	has := func(args []string, seq ...string) bool {
		for i := 0; i+len(seq) <= len(args); i++ {
			if slices.Equal(args[i:i+len(seq)], seq) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		name string
		out  job.Output
		want [][]string
		not  [][]string
	}{
		{"hevc in mp4 is hvc1", job.Output{URL: "/o.mp4", Preset: "hevc-720p"},
			[][]string{{"-c:v", "libx265"}, {"-tag:v", "hvc1"}, {"-preset", "fast"}, {"-profile:v", "main"}, {"-fps_mode", "passthrough"}}, nil},
		{"hevc in mkv is not tagged", job.Output{URL: "/o.mkv", Preset: "hevc-720p", Container: "mkv"},
			[][]string{{"-c:v", "libx265"}, {"-f", "matroska", "-live", "1"}}, [][]string{{"-tag:v", "hvc1"}}},
		{"custom hevc gets a speed", job.Output{URL: "/o.ts", Container: "mpegts", Video: &job.Video{Codec: "hevc"}},
			[][]string{{"-preset", "fast"}}, nil},
		{"custom av1 gets a speed", job.Output{URL: "/o.webm", Container: "webm", Video: &job.Video{Codec: "av1"}},
			[][]string{{"-c:v", "libsvtav1"}, {"-preset", "8"}, {"-f", "webm", "-live", "1"}}, nil},
		{"fps makes it constant", job.Output{URL: "/o.mp4", Preset: "h264-480p", Video: &job.Video{FPS: 30}},
			[][]string{{"-fps_mode", "cfr"}}, [][]string{{"-fps_mode", "passthrough"}}},
		{"audio without channels is stereo", job.Output{URL: "/o.mkv", Container: "mkv", Audio: &job.Audio{Codec: "opus"}},
			[][]string{{"-ac", "2"}, {"-map", "0:a:0?"}}, nil},
		{"channels asked are kept", job.Output{URL: "/o.mp4", Preset: "h264-480p", Audio: &job.Audio{Channels: 6}},
			[][]string{{"-ac", "6"}}, nil},
		{"remux copies", job.Output{URL: "/o.mkv", Preset: "remux-mkv"},
			[][]string{{"-c:v", "copy"}, {"-c:a", "copy"}}, [][]string{{"-ac", "2"}, {"-fps_mode", "passthrough"}}},
		{"opus in ogg", job.Output{URL: "/o.ogg", Preset: "opus-audio"},
			[][]string{{"-vn"}, {"-c:a", "libopus"}, {"-f", "ogg"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := plan(t, c.out)
			for _, w := range c.want {
				if !has(args, w...) {
					t.Errorf("no %q in %q", w, args)
				}
			}
			for _, n := range c.not {
				if has(args, n...) {
					t.Errorf("%q in %q", n, args)
				}
			}
		})
	}
	for _, c := range []struct {
		name, field string
		out         job.Output
	}{
		{"video in ogg", "outputs[0].video.codec", job.Output{URL: "/o.ogg", Container: "ogg", Video: &job.Video{Codec: "h264"}, Audio: &job.Audio{Codec: "opus"}}},
		{"aac in ogg", "outputs[0].audio.codec", job.Output{URL: "/o.ogg", Preset: "opus-audio", Audio: &job.Audio{Codec: "aac"}}},
		{"av1 with an x264 speed", "outputs[0].video.preset", job.Output{URL: "/o.mp4", Preset: "av1-720p", Video: &job.Video{Preset: "veryfast"}}},
		{"av1 speed out of range", "outputs[0].video.preset", job.Output{URL: "/o.mp4", Preset: "av1-720p", Video: &job.Video{Preset: "14"}}},
		{"hevc with a vpx speed", "outputs[0].video.preset", job.Output{URL: "/o.mp4", Preset: "hevc-720p", Video: &job.Video{Preset: "realtime"}}},
		{"hevc in webm", "outputs[0].video.codec", job.Output{URL: "/o.webm", Preset: "vp9-720p", Video: &job.Video{Codec: "hevc"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{c.out}}
			var fe *job.FieldError
			if err := j.Validate(p); !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("err = %v, want a field error on %s", err, c.field)
			}
		})
	}
}

func TestCheckMedia(t *testing.T) {
	p := presets(t)
	video := ffmpeg.Stream{Type: "video", Codec: "h264", Width: 1920, Height: 1080, SAR: "1:1"}
	audio := ffmpeg.Stream{Type: "audio", Codec: "aac", Channels: 2, SampleRate: 48000}
	cases := []struct {
		name    string
		preset  string
		streams []ffmpeg.Stream
		ok      bool
		w, h    int // OutputSize under the preset's box
	}{
		{"720p", "h264-720p", []ffmpeg.Stream{video, audio}, true, 1280, 720},
		{"rotated phone video", "h264-720p", []ffmpeg.Stream{{Type: "video", Width: 1920, Height: 1080, Rotation: 90}, audio}, true, 720, 1280},
		{"anamorphic", "h264-720p", []ffmpeg.Stream{{Type: "video", Width: 720, Height: 576, SAR: "16:15"}, audio}, true, 768, 576},
		{"no audio", "h264-480p", []ffmpeg.Stream{video}, true, 854, 480},
		{"no video", "h264-480p", []ffmpeg.Stream{audio}, true, 0, 0},
		{"audio preset, no audio", "aac-audio", []ffmpeg.Stream{video}, false, 0, 0},
		{"nothing", "h264-720p", nil, false, 0, 0},
		{"16K", "h264-720p", []ffmpeg.Stream{{Type: "video", Width: 15360, Height: 8640}}, false, 0, 0},
		{"no dimensions", "h264-720p", []ffmpeg.Stream{{Type: "video"}}, false, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := &job.Job{Input: "/in.mp4", Preset: c.preset, Outputs: []job.Output{{URL: "/out.mp4"}}}
			probe := &ffmpeg.ProbeResult{Streams: c.streams}
			err := j.CheckMedia(p, probe, job.Limits{})
			if c.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && !errors.Is(err, job.ErrUnsupportedMedia) {
				t.Errorf("err %v does not wrap ErrUnsupportedMedia", err)
			}
			if v, ok := probe.Video(); ok && c.w > 0 {
				box := p[c.preset].Video
				if w, h, err := job.OutputSize(v, box.Width, box.Height); err != nil || w != c.w || h != c.h {
					t.Errorf("OutputSize = %dx%d, %v; want %dx%d", w, h, err, c.w, c.h)
				}
			}
		})
	}
}

func ExampleParseLocation() {
	for _, s := range []string{"/media/in.mp4", "file:///media/my%20clip.mp4", "concat:/a|/b"} {
		loc, err := job.ParseLocation(s)
		fmt.Println(loc.Path, err)
	}
	// Output:
	// /media/in.mp4 <nil>
	// /media/my clip.mp4 <nil>
	//  ffmpeg protocol "concat" is not allowed (use file:///abs/path)
}

func ExampleFitBox() {
	fmt.Println(job.FitBox(1920, 1080, 1280, 720)) // landscape into a 720p box
	fmt.Println(job.FitBox(1080, 1920, 1280, 720)) // portrait: the box turns
	fmt.Println(job.FitBox(640, 360, 1280, 720))   // never upscaled
	// Output:
	// 1280 720
	// 720 1280
	// 640 360
}
