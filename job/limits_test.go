package job_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// TestValidateRefusesFFmpegSyntax: nothing ffmpeg could read as a protocol or an option gets
// through validation, in the input or in an output URL.
func TestValidateRefusesFFmpegSyntax(t *testing.T) {
	t.Parallel()
	p := presets(t)
	hostile := map[string]string{
		"concat":            "concat:/in/a.mp4|/etc/passwd",
		"concat upper":      "CONCAT:/in/a.mp4|/etc/passwd",
		"concatf":           "concatf:/tmp/list.txt",
		"subfile":           "subfile,,start,0,end,100,,:/etc/passwd",
		"subfile colon":     "subfile:/etc/passwd",
		"file no slashes":   "file:/etc/passwd",
		"file one slash":    "file:/in/a.mp4",
		"file relative":     "file:in/a.mp4",
		"file upper":        "FILE:/etc/passwd",
		"data":              "data:video/mp4;base64,AAAAIGZ0eXBpc29t",
		"data upper":        "DATA:text/plain,hello",
		"dash option":       "-i",
		"dash filter":       "-filter_complex",
		"dash path":         "-/in/a.mp4",
		"pipe":              "pipe:0",
		"fd":                "fd:3",
		"crypto":            "crypto:/in/a.mp4",
		"crypto+http":       "crypto+http://127.0.0.1/a.mp4",
		"tee":               "tee:/a.mp4|/b.mp4",
		"hls+http":          "hls+http://127.0.0.1/a.m3u8",
		"file with host":    "file://127.0.0.1/in/a.mp4",
		"relative":          "in/a.mp4",
		"newline":           "/in/a.mp4\n-i",
		"nul":               "/in/a.mp4\x00.txt",
		"space dash option": " -i",
	}
	for name, url := range hostile {
		for _, field := range []string{"input", "outputs[0].url"} {
			t.Run(name+"/"+field, func(t *testing.T) {
				t.Parallel()
				j := &job.Job{Input: "file:///in/a.mp4", Preset: "h264-720p", Outputs: []job.Output{{URL: "file:///out/a.mp4"}}}
				if field == "input" {
					j.Input = url
				} else {
					j.Outputs[0].URL = url
				}
				err := j.Validate(p)
				var fe *job.FieldError
				if !errors.As(err, &fe) || fe.Field != field || !errors.Is(err, job.ErrInvalid) {
					t.Fatalf("Validate(%q in %s) = %v; want a FieldError on %s", url, field, err, field)
				}
			})
		}
	}
	// What ffmpeg would parse as a protocol is fine as a file name: the worker opens it.
	for _, ok := range []string{"/in/concat:a.mp4", "file:///in/data:x.mp4", "/in/-i.mp4", "file://localhost/in/a.mp4", "FILE:///in/a.mp4"} {
		if _, err := job.ParseLocation(ok); err != nil {
			t.Errorf("ParseLocation(%q) = %v; want it accepted", ok, err)
		}
	}
}

func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	d := job.DefaultLimits()
	want := job.Limits{MaxWidth: 8192, MaxHeight: 8192, MaxPixels: 8192 * 4320, MaxStreams: 16, MaxSideStreams: 1000, MaxDuration: 12 * time.Hour, MaxOutputBytes: 64 << 30}
	if d != want {
		t.Errorf("DefaultLimits = %+v, want %+v", d, want)
	}
	if got := (job.Limits{}).WithDefaults(); got != want {
		t.Errorf("zero WithDefaults = %+v", got)
	}
	if got := (job.Limits{MaxStreams: -1, MaxDuration: -time.Second, MaxOutputBytes: -1}).WithDefaults(); got != want {
		t.Errorf("negative WithDefaults = %+v", got)
	}
	custom := job.Limits{MaxStreams: 4, MaxDuration: time.Minute, MaxOutputBytes: 1 << 20}
	if got := custom.WithDefaults(); got.MaxStreams != 4 || got.MaxDuration != time.Minute || got.MaxOutputBytes != 1<<20 || got.MaxWidth != 8192 {
		t.Errorf("custom WithDefaults = %+v", got)
	}
}

// TestCheckMediaBombs: what a hostile header announces is refused from the probe.
func TestCheckMediaBombs(t *testing.T) {
	t.Parallel()
	p := presets(t)
	j := &job.Job{Input: "/in/a.mp4", Preset: "h264-480p", Outputs: []job.Output{{URL: "/out/a.mp4"}}}
	video := func(w, h int) ffmpeg.Stream { return ffmpeg.Stream{Type: "video", Codec: "h264", Width: w, Height: h} }
	audio := ffmpeg.Stream{Type: "audio", Codec: "aac", Channels: 2, SampleRate: 48000}
	many := func(n int) []ffmpeg.Stream {
		s := []ffmpeg.Stream{video(320, 240)}
		for len(s) < n {
			s = append(s, audio)
		}
		return s
	}
	cases := []struct {
		name  string
		probe ffmpeg.ProbeResult
		lim   job.Limits
		want  string // "" = accepted; else a substring of the error
	}{
		{"ok", ffmpeg.ProbeResult{Duration: time.Minute, Streams: []ffmpeg.Stream{video(1920, 1080), audio}}, job.Limits{}, ""},
		{"8K ok", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{video(8192, 4320)}}, job.Limits{}, ""},
		{"wider than 8K", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{video(8448, 64)}}, job.Limits{}, "8448x64"},
		{"15000x15000", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{video(15000, 15000)}}, job.Limits{}, "15000x15000"},
		{"more pixels than 8K", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{video(8192, 8192)}}, job.Limits{}, "8192x8192"},
		{"huge cover art", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{audio, {Type: "video", Codec: "png", Width: 16000, Height: 16000, AttachedPic: true}}}, job.Limits{}, "16000x16000"},
		{"huge second video", ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{video(320, 240), video(20000, 20000)}}, job.Limits{}, "20000x20000"},
		{"16 streams", ffmpeg.ProbeResult{Streams: many(16)}, job.Limits{}, ""},
		{"17 streams", ffmpeg.ProbeResult{Streams: many(17)}, job.Limits{}, "17 streams"},
		{"stream cap configured", ffmpeg.ProbeResult{Streams: many(3)}, job.Limits{MaxStreams: 2}, "3 streams"},
		{"12h ok", ffmpeg.ProbeResult{Duration: 12 * time.Hour, Streams: []ffmpeg.Stream{video(320, 240)}}, job.Limits{}, ""},
		{"13h gap", ffmpeg.ProbeResult{Duration: 46802 * time.Second, Streams: []ffmpeg.Stream{video(64, 48)}}, job.Limits{}, "13h0m2s long"},
		{"long stream", ffmpeg.ProbeResult{Duration: time.Second, Streams: []ffmpeg.Stream{video(64, 48), {Type: "audio", Codec: "aac", Duration: 100 * time.Hour}}}, job.Limits{}, "100h0m0s long"},
		{"duration cap configured", ffmpeg.ProbeResult{Duration: 2 * time.Minute, Streams: []ffmpeg.Stream{video(64, 48)}}, job.Limits{MaxDuration: time.Minute}, "2m0s long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := j.CheckMedia(p, &c.probe, c.lim)
			wantMediaErr(t, err, c.want)
		})
	}
}

// TestPlanOutputCaps: every output carries -t and -fs from the limits.
func TestPlanOutputCaps(t *testing.T) {
	t.Parallel()
	p := presets(t)
	j := &job.Job{Input: "/in/a.mp4", Preset: "h264-480p", Outputs: []job.Output{{URL: "/out/a.mp4"}, {URL: "/out/b.m4a", Preset: "aac-audio"}}}
	for _, c := range []struct {
		lim       job.Limits
		wantT     string
		wantBytes string
	}{
		{job.Limits{}, "43200", "68719476736"},
		{job.Limits{MaxDuration: 90 * time.Second, MaxOutputBytes: 10 << 20}, "90", "10485760"},
	} {
		spec, err := j.Plan(p, ffmpeg.Input{}, c.lim)
		if err != nil {
			t.Fatal(err)
		}
		args, err := spec.Args()
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range spec.Outputs {
			lim := c.lim.WithDefaults()
			if o.Duration != lim.MaxDuration || o.MaxBytes != lim.MaxOutputBytes {
				t.Errorf("output %d: Duration %v MaxBytes %d; want %v, %d", i, o.Duration, o.MaxBytes, lim.MaxDuration, lim.MaxOutputBytes)
			}
		}
		for _, flag := range [][]string{{"-t", c.wantT}, {"-fs", c.wantBytes}} {
			n := 0
			for i := range args[:len(args)-1] {
				if args[i] == flag[0] && args[i+1] == flag[1] {
					n++
				}
			}
			if n != len(spec.Outputs) {
				t.Errorf("%s %s appears %d times in %q; want once per output", flag[0], flag[1], n, args)
			}
		}
		if i := slices.Index(args, "-max_pixels"); i < 0 || args[i+1] != "35389440" {
			t.Errorf("no -max_pixels 35389440 in %q", args)
		}
	}
}

// wantMediaErr: CheckMedia's verdict is nil when want is "", else ErrUnsupportedMedia saying
// want.
func wantMediaErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("CheckMedia = %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), want) {
		t.Fatalf("CheckMedia = %v, want ErrUnsupportedMedia saying %q", err, want)
	}
}
