package job_test

import (
	"errors"
	"testing"

	"github.com/transcoder/transcoder/job"
)

// TestValidateEncoderOptions: an encoder option the argv builder (package ffmpeg) would refuse
// is refused by Validate, as a FieldError on the option, before any input is opened: a job with
// a bad option is the job's fault (invalid_job), not the input's. One case or more per encoder
// the job's codec names map to.
func TestValidateEncoderOptions(t *testing.T) {
	t.Parallel()
	p := presets(t)
	video := func(container string, v job.Video) job.Output {
		return job.Output{URL: "/out/o." + container, Container: container, Video: &v}
	}
	audio := func(container string, a job.Audio) job.Output {
		return job.Output{URL: "/out/o." + container, Container: container, Audio: &a}
	}
	for _, c := range []struct {
		name, field string
		out         job.Output
	}{
		// libx264
		{"x264 unknown preset", "outputs[0].video.preset", video("mp4", job.Video{Codec: "h264", Preset: "turbo"})},
		{"x264 preset on a preset", "outputs[0].video.preset", job.Output{URL: "/out/o.mp4", Preset: "h264-480p", Video: &job.Video{Preset: "turbo"}}},
		{"x264 profile not a profile token", "outputs[0].video.profile", video("mp4", job.Video{Codec: "h264", Profile: "High"})},
		{"x264 bitrate not a rate", "outputs[0].video.bitrate", video("mp4", job.Video{Codec: "h264", Bitrate: "fast"})},
		{"x264 pix_fmt not a token", "outputs[0].video.pix_fmt", video("mkv", job.Video{Codec: "h264", PixFmt: "yuv420p.x"})},
		// libx265
		{"x265 bufsize not a rate", "outputs[0].video.bufsize", video("mp4", job.Video{Codec: "hevc", BufSize: "big"})},
		{"x265 maxrate not a rate", "outputs[0].video.maxrate", video("mkv", job.Video{Codec: "hevc", MaxRate: "1.5.5k"})},
		// libvpx-vp9: -deadline takes realtime, good or best
		{"vp9 x264 preset", "outputs[0].video.preset", video("webm", job.Video{Codec: "vp9", Preset: "veryfast"})},
		{"vp9 unknown preset", "outputs[0].video.preset", video("webm", job.Video{Codec: "vp9", Preset: "turbo"})},
		// libsvtav1
		{"svt-av1 profile not a token", "outputs[0].video.profile", video("mp4", job.Video{Codec: "av1", Profile: "Main"})},
		{"svt-av1 bitrate not a rate", "outputs[0].video.bitrate", video("webm", job.Video{Codec: "av1", Bitrate: "2..5M"})},
		// rawvideo takes no speed preset
		{"rawvideo preset", "outputs[0].video.preset", video("nut", job.Video{Codec: "raw", Preset: "fast"})},
		// video copy takes no encoding options
		{"video copy with crf", "outputs[0].video", video("mkv", job.Video{Codec: "copy", CRF: 20})},
		{"video copy with a box", "outputs[0].video", video("mkv", job.Video{Codec: "copy", Width: 640})},
		// aac
		{"aac sample rate too low", "outputs[0].audio.sample_rate", audio("m4a", job.Audio{Codec: "aac", SampleRate: 100})},
		{"aac bitrate not a rate", "outputs[0].audio.bitrate", audio("m4a", job.Audio{Codec: "aac", Bitrate: "loud"})},
		// libopus
		{"opus bitrate not a rate", "outputs[0].audio.bitrate", audio("ogg", job.Audio{Codec: "opus", Bitrate: "1.2.3k"})},
		{"opus sample rate too low", "outputs[0].audio.sample_rate", audio("webm", job.Audio{Codec: "opus", SampleRate: 4000})},
		// pcm_s16le
		{"pcm sample rate too low", "outputs[0].audio.sample_rate", audio("nut", job.Audio{Codec: "pcm", SampleRate: 7999})},
		// audio copy takes no encoding options
		{"audio copy with a bitrate", "outputs[0].audio", audio("mkv", job.Audio{Codec: "copy", Bitrate: "64k"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := &job.Job{Input: "/in/a.mp4", Outputs: []job.Output{c.out}}
			err := j.Validate(p)
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, job.ErrInvalid) {
				t.Fatalf("Validate = %v; want a FieldError on %s (invalid_job)", err, c.field)
			}
		})
	}
}

// TestPresetEncoderOptions: a preset file is held to the same rules as a job, rung by rung.
func TestPresetEncoderOptions(t *testing.T) {
	t.Parallel()
	for field, doc := range map[string]string{
		"presets.x.video.preset":           "presets:\n  x:\n    container: webm\n    video: {codec: vp9, preset: turbo}\n",
		"presets.x.audio.sample_rate":      "presets:\n  x:\n    container: m4a\n    audio: {codec: aac, sample_rate: 100}\n",
		"presets.x.ladder[0].video.preset": "presets:\n  x:\n    container: dash\n    ladder: [{name: a, video: {codec: vp9, height: 360, preset: turbo}}]\n",
	} {
		_, err := job.ParsePresets([]byte(doc))
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("ParsePresets = %v; want a FieldError on %s", err, field)
		}
	}
}

// TestCodecOverride: an output that names another codec than its preset keeps the preset's
// other settings but not its speed preset and profile, which belong to the preset's encoder:
// README's job, a vp9 output under an h264 preset, validates and gets no x264 speed.
func TestCodecOverride(t *testing.T) {
	t.Parallel()
	p := presets(t)
	j := &job.Job{Input: "/in/a.mp4", Preset: "h264-720p", Outputs: []job.Output{
		{URL: "/out/custom.webm", Container: "webm", Video: &job.Video{Codec: "vp9", Height: 360, CRF: 35}, Audio: &job.Audio{Codec: "opus", Bitrate: "64k"}},
		{URL: "/out/hevc.mp4", Video: &job.Video{Codec: "hevc"}},
	}}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	for i, want := range []job.Video{{Codec: "vp9", Width: 1280, Height: 360, CRF: 35}, {Codec: "hevc", Width: 1280, Height: 720, CRF: 23}} {
		r, err := j.Resolve(i, p)
		if err != nil || r.Video == nil || *r.Video != want {
			t.Errorf("output %d resolves to %+v (%v), want %+v", i, r.Video, err, want)
		}
	}
}

// TestValidateBucketNames: a nats:// or s3:// URL is held to its store's bucket naming rules
// (package storage's), so a bucket the store would refuse fails validation, not the upload.
func TestValidateBucketNames(t *testing.T) {
	t.Parallel()
	p := presets(t)
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"nats://media/in.mp4", true},
		{"nats://my_bucket-1/in.mp4", true},
		{"s3://videos.example/in.mp4", true},
		{"nats://bad.bucket/in.mp4", false}, // JetStream object stores take no '.'
		{"s3://Videos/in.mp4", false},       // S3 buckets are lowercase
		{"s3://ab/in.mp4", false},           // and 3 to 63 characters
		{"s3://a..b/in.mp4", false},
	} {
		j := &job.Job{Input: c.url, Preset: "h264-480p", Outputs: []job.Output{{URL: "/out/a.mp4"}}}
		err := j.Validate(p)
		var fe *job.FieldError
		if c.ok && err != nil || !c.ok && (!errors.As(err, &fe) || fe.Field != "input") {
			t.Errorf("Validate(input %s) = %v; want ok=%v (a FieldError on input)", c.url, err, c.ok)
		}
	}
}
