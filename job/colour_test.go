package job_test

import (
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// TestPlanToneMap: with an HDR input's probe, the 8-bit (SDR) outputs tone-map, a ladder's rungs
// too; an output in a 10-bit format, a copy and a raw intermediate keep the input's colour; an
// SDR input changes nothing.
func TestPlanToneMap(t *testing.T) {
	p := presets(t)
	hlg := ffmpeg.Stream{Type: "video", Codec: "hevc", Width: 1920, Height: 1080, PixFmt: "yuv420p10le",
		ColorTransfer: "arib-std-b67", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc", ColorRange: "tv"}
	sdr := ffmpeg.Stream{Type: "video", Codec: "h264", Width: 1920, Height: 1080, PixFmt: "yuv420p", ColorTransfer: "bt709"}
	j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{
		{URL: "/h264.mp4", Preset: "h264-720p"},
		{URL: "/vp9.webm", Preset: "vp9-720p"},
		{URL: "/hdr.mp4", Preset: "hevc-720p", Video: &job.Video{PixFmt: "yuv420p10le", Profile: "main10"}},
		{URL: "/copy.mkv", Preset: "remux-mkv"},
		{URL: "/raw.nut", Container: "nut", Video: &job.Video{Codec: "raw"}},
		{URL: "/hls", Preset: "hls-abr"},
	}}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	if !j.EncodesSDR(p) {
		t.Error("EncodesSDR false for a job with h264 outputs")
	}
	for _, tt := range []struct {
		name string
		in   ffmpeg.Stream
		want []bool // per ffmpeg output: tone-mapped
	}{
		{"HLG", hlg, []bool{true, true, false, false, false, true, true, true, true}},
		{"SDR", sdr, []bool{false, false, false, false, false, false, false, false, false}},
	} {
		mp, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, &ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{tt.in}})
		if err != nil {
			t.Fatal(err)
		}
		var got []bool
		for _, o := range mp.Spec.Outputs {
			if o.Video != nil {
				got = append(got, o.Video.ToneMap != nil)
			}
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d video outputs, want %d", tt.name, len(got), len(tt.want))
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: video output %d tone-mapped %v, want %v", tt.name, i, got[i], tt.want[i])
			}
		}
		if tt.want[0] && *mp.Spec.Outputs[0].Video.ToneMap != (ffmpeg.Colour{Transfer: "arib-std-b67", Primaries: "bt2020", Matrix: "bt2020nc", Range: "tv"}) {
			t.Errorf("%s: colour %+v", tt.name, *mp.Spec.Outputs[0].Video.ToneMap)
		}
		if _, err := mp.Spec.Args(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestEncodesSDR: only outputs that encode 8-bit video need the input's colour before ffmpeg.
func TestEncodesSDR(t *testing.T) {
	p := presets(t)
	for _, tt := range []struct {
		out  job.Output
		want bool
	}{
		{job.Output{URL: "/o.mp4", Preset: "h264-480p"}, true},
		{job.Output{URL: "/o.mp4", Preset: "hevc-720p", Video: &job.Video{PixFmt: "yuv420p10le"}}, false},
		{job.Output{URL: "/o.m4a", Preset: "aac-audio"}, false},
		{job.Output{URL: "/o.mkv", Preset: "remux-mkv"}, false},
		{job.Output{URL: "/o.mp4", Preset: "h264-480p", NoVideo: true}, false},
	} {
		j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{tt.out}}
		if got := j.EncodesSDR(p); got != tt.want {
			t.Errorf("%+v: EncodesSDR %v, want %v", tt.out, got, tt.want)
		}
	}
}
