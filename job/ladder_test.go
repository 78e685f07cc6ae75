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

func TestKeptRungs(t *testing.T) {
	ladder := presets(t)["hls-abr"].Ladder
	names := func(rs []job.Rung) string {
		var n []string
		for _, r := range rs {
			n = append(n, r.Name)
		}
		return strings.Join(n, ",")
	}
	for _, tt := range []struct {
		name string
		w, h int
		want string
	}{
		{"1080p input keeps every rung", 1920, 1080, "1080p,720p,480p,360p"},
		{"4K input keeps every rung", 3840, 2160, "1080p,720p,480p,360p"},
		{"720p input: 1080p would only repeat 720p", 1280, 720, "720p,480p,360p"},
		{"cinemascope 1280x536: the 720p box is the one for that size", 1280, 536, "720p,480p,360p"},
		{"portrait 1080x1920 turns the boxes", 1080, 1920, "1080p,720p,480p,360p"},
		{"portrait 720x1280", 720, 1280, "720p,480p,360p"},
		{"tiny input keeps the smallest rung only", 320, 240, "360p"},
		{"between rungs: 1000x560 keeps the 720p rung at its own size", 1000, 560, "720p,480p,360p"},
		{"no video", 0, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(job.KeptRungs(ladder, tt.w, tt.h)); got != tt.want {
				t.Errorf("KeptRungs(%dx%d) = %q, want %q", tt.w, tt.h, got, tt.want)
			}
		})
	}
}

func TestLadderPlan(t *testing.T) {
	p := presets(t)
	j := &job.Job{Input: "/in.mp4", Preset: "hls-abr", Outputs: []job.Output{{URL: "file:///out/hls"}}}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	if !j.NeedsProbe(p) {
		t.Fatal("a ladder needs the probe")
	}
	if _, err := j.Plan(p, ffmpeg.Input{}, job.Limits{}); err == nil {
		t.Fatal("a ladder planned without a probe")
	}
	probe := &ffmpeg.ProbeResult{Duration: 10 * time.Second, Streams: []ffmpeg.Stream{
		{Type: "video", Codec: "h264", Width: 1280, Height: 720}, {Type: "audio", Codec: "aac", Channels: 6},
	}}
	mp, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, probe)
	if err != nil {
		t.Fatal(err)
	}
	po := mp.Outputs[0]
	var names []string
	for _, r := range po.Renditions {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "720p,480p,360p,audio" {
		t.Errorf("renditions %s", got)
	}
	if !mp.Spec.SplitVideo || len(mp.Spec.Outputs) != 4 || !slices.Equal(po.Spec, []int{0, 1, 2, 3}) {
		t.Errorf("spec: split %v, %d outputs, map %v", mp.Spec.SplitVideo, len(mp.Spec.Outputs), po.Spec)
	}
	for i, o := range mp.Spec.Outputs {
		if o.Segment != 4*time.Second || o.Container != "mp4" {
			t.Errorf("output %d: segment %v container %s", i, o.Segment, o.Container)
		}
	}
	if a := mp.Spec.Outputs[3].Audio; a == nil || a.Channels != 2 || mp.Spec.Outputs[3].Video != nil {
		t.Errorf("audio rendition %+v: want stereo audio only", mp.Spec.Outputs[3])
	}
	if _, err := mp.Spec.Args(); err != nil {
		t.Fatal(err)
	}

	// Video-only and audio-only inputs make a ladder of what they have.
	probe.Streams = probe.Streams[:1]
	if mp, err = j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, probe); err != nil || len(mp.Outputs[0].Renditions) != 3 {
		t.Errorf("video-only input: %v, %+v", err, mp)
	}
	probe.Streams = []ffmpeg.Stream{{Type: "audio", Codec: "aac"}}
	if mp, err = j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, probe); err != nil || len(mp.Outputs[0].Renditions) != 1 || mp.Spec.SplitVideo {
		t.Errorf("audio-only input: %v, %+v", err, mp)
	}
}

func TestLadderValidation(t *testing.T) {
	p := presets(t)
	for _, tt := range []struct {
		name  string
		out   job.Output
		field string
	}{
		{"video override", job.Output{URL: "/o", Preset: "hls-abr", Video: &job.Video{Codec: "h264"}}, "outputs[0].video"},
		{"opus in hls", job.Output{URL: "/o", Preset: "hls-abr", Audio: &job.Audio{Codec: "opus"}}, "outputs[0].audio.codec"},
		{"container change", job.Output{URL: "/o", Preset: "hls-abr", Container: "dash"}, "outputs[0].container"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := &job.Job{Input: "/in.mp4", Outputs: []job.Output{tt.out}}
			err := j.Validate(p)
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("err = %v, want a FieldError on %s", err, tt.field)
			}
		})
	}
	for name, doc := range map[string]string{
		"rung without box":   "presets:\n  x:\n    container: hls\n    ladder: [{name: a, video: {codec: h264}}]\n",
		"vp9 rung in hls":    "presets:\n  x:\n    container: hls\n    ladder: [{name: a, video: {codec: vp9, height: 360}}]\n",
		"duplicate names":    "presets:\n  x:\n    container: dash\n    ladder: [{name: a, video: {codec: h264, height: 360}}, {name: a, video: {codec: h264, height: 240}}]\n",
		"rung named audio":   "presets:\n  x:\n    container: dash\n    ladder: [{name: audio, video: {codec: h264, height: 360}}]\n",
		"segment too short":  "presets:\n  x:\n    container: hls\n    segment: 0.1\n    ladder: [{name: a, video: {codec: h264, height: 360}}]\n",
		"ladder on mp4":      "presets:\n  x:\n    container: mp4\n    video: {codec: h264}\n    ladder: [{name: a, video: {codec: h264, height: 360}}]\n",
		"video beside rungs": "presets:\n  x:\n    container: hls\n    video: {codec: h264}\n    ladder: [{name: a, video: {codec: h264, height: 360}}]\n",
	} {
		if _, err := job.ParsePresets([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
