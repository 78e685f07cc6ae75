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

// TestFeaturesValidate: a bad clip, loudness or overlay is refused with the field it is about,
// before anything runs.
func TestFeaturesValidate(t *testing.T) {
	p := presets(t)
	for _, c := range []struct {
		name, json, field string
	}{
		{"clip end before start", `"clip":{"start":"5s","end":"2s"},"outputs":[{"url":"/o.mp4"}]`, "clip.end"},
		{"clip empty", `"clip":{},"outputs":[{"url":"/o.mp4"}]`, "clip"},
		{"clip negative", `"clip":{"start":"-1s"},"outputs":[{"url":"/o.mp4"}]`, "clip.start"},
		{"clip and thumbnails", `"clip":{"start":"1s"},"outputs":[{"url":"/o.jpg","preset":"poster"}]`, "clip"},
		{"clip split on", `"clip":{"start":"1s"},"split":{"mode":"on"},"outputs":[{"url":"/o.mp4"}]`, "split.mode"},
		{"loudness target", `"outputs":[{"url":"/o.mp4","loudness":{"target":3}}]`, "outputs[0].loudness.target"},
		{"loudness no target", `"outputs":[{"url":"/o.mp4","loudness":{}}]`, "outputs[0].loudness.target"},
		{"loudness peak", `"outputs":[{"url":"/o.mp4","loudness":{"target":-16,"true_peak":2}}]`, "outputs[0].loudness.true_peak"},
		{"loudness no audio", `"outputs":[{"url":"/o.mp4","no_audio":true,"loudness":{"target":-16}}]`, "outputs[0].loudness"},
		{"loudness copy", `"outputs":[{"url":"/o.mkv","preset":"remux-mkv","loudness":{"target":-16}}]`, "outputs[0].loudness"},
		{"loudness all tracks", `"outputs":[{"url":"/o.mp4","audio":{"all_tracks":true},"loudness":{"target":-16}}]`, "outputs[0].loudness"},
		{"loudness audio_tracks all", `"outputs":[{"url":"/o.mp4","audio_tracks":"all","loudness":{"target":-16}}]`, "outputs[0].loudness"},
		{"loudness two languages", `"outputs":[{"url":"/o.mp4","audio_tracks":["eng","fra"],"loudness":{"target":-16}}]`, "outputs[0].loudness"},
		{"overlay no url", `"outputs":[{"url":"/o.mp4","overlay":{}}]`, "outputs[0].overlay.url"},
		{"overlay bad url", `"outputs":[{"url":"/o.mp4","overlay":{"url":"concat:/a|/b"}}]`, "outputs[0].overlay.url"},
		{"overlay position", `"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png","position":"middle"}}]`, "outputs[0].overlay.position"},
		{"overlay width", `"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png","width":"120%"}}]`, "outputs[0].overlay.width"},
		{"overlay width junk", `"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png","width":"big"}}]`, "outputs[0].overlay.width"},
		{"overlay margin", `"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png","margin":-1}}]`, "outputs[0].overlay.margin"},
		{"overlay opacity", `"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png","opacity":0}}]`, "outputs[0].overlay.opacity"},
		{"overlay ladder", `"outputs":[{"url":"/hls","preset":"hls-abr","overlay":{"url":"/l.png"}}]`, "outputs[0].overlay"},
		{"overlay audio only", `"outputs":[{"url":"/o.m4a","preset":"aac-audio","overlay":{"url":"/l.png"}}]`, "outputs[0].overlay"},
		{"overlay split on", `"split":{"mode":"on"},"outputs":[{"url":"/o.mp4","overlay":{"url":"/l.png"}}]`, "split.mode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			j, err := job.Decode([]byte(`{"input":"/in.mp4","preset":"h264-480p",` + c.json + `}`))
			if err == nil {
				err = j.Validate(p)
			}
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field {
				t.Fatalf("err = %v, want a FieldError on %s", err, c.field)
			}
			if !errors.Is(err, job.ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
		})
	}
}

// TestFeaturesDecode: the contract's JSON decodes into the fields, with the defaults filled by
// Resolve.
func TestFeaturesDecode(t *testing.T) {
	p := presets(t)
	j, err := job.Decode([]byte(`{"input":"file:///in.mkv","clip":{"start":"2s","end":5.5},"outputs":[
		{"url":"file:///loud.mp4","preset":"h264-480p","loudness":{"target":-16}},
		{"url":"file:///logo.mp4","preset":"h264-480p","overlay":{"url":"file:///logo.png","position":"top-right","width":"20%","margin":10}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	if j.Clip.Start != job.Duration(2*time.Second) || j.Clip.End != job.Duration(5500*time.Millisecond) {
		t.Errorf("clip %+v", j.Clip)
	}
	r, err := j.Resolve(0, p)
	if err != nil || r.Loudness == nil || *r.Loudness.TruePeak != job.DefaultTruePeak {
		t.Errorf("loudness resolved to %+v, %v; want the default true peak", r.Loudness, err)
	}
	r, err = j.Resolve(1, p)
	if err != nil || r.Overlay == nil || *r.Overlay.Opacity != 1 || *r.Overlay.Margin != 10 {
		t.Errorf("overlay resolved to %+v, %v", r.Overlay, err)
	}
	if j.Splittable() {
		t.Error("a clipped job is splittable")
	}
}

// TestFeaturesPlan: the plan puts a clip on every output (-ss, -t), loudness on the audio
// (after the engine's measurement), an overlay sized on the output, and HDR metadata on an HDR
// preset's video of an HDR input; an SDR preset of the same input is tone-mapped.
func TestFeaturesPlan(t *testing.T) {
	p := presets(t)
	md := &ffmpeg.MasteringDisplay{RedX: 34000, RedY: 16000, GreenX: 13250, GreenY: 34500, BlueX: 7500, BlueY: 3000, WhiteX: 15635, WhiteY: 16450, MaxLuminance: 10000000, MinLuminance: 1}
	probe := &ffmpeg.ProbeResult{Duration: 6 * time.Second, Streams: []ffmpeg.Stream{
		{Type: "video", Width: 1920, Height: 1080, SAR: "1:1", FrameRate: 24, Duration: 6 * time.Second,
			ColorTransfer: "smpte2084", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc", ColorRange: "tv",
			Mastering: md, Light: &ffmpeg.ContentLight{MaxCLL: 1000, MaxFALL: 400}},
		{Type: "audio", SampleRate: 44100, Channels: 2, Duration: 6 * time.Second},
	}}
	tp := -2.0
	j := &job.Job{Input: "/in.mp4", Clip: &job.Clip{Start: job.Duration(2 * time.Second), End: job.Duration(5 * time.Second)}, Outputs: []job.Output{
		{URL: "/hdr.mp4", Preset: "hevc-1080p-hdr"},
		{URL: "/sdr.mp4", Preset: "h264-480p", Loudness: &job.Loudness{Target: -16, TruePeak: &tp},
			Overlay: &job.Overlay{URL: "/logo.png", Width: "25%", Position: "bottom-left"}},
	}}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	if !j.NeedsProbe(p) || !j.KeepsHDR(p) || !j.NormalisesLoudness() {
		t.Fatal("the job's plan needs the probe, HDR metadata and a loudness measurement")
	}
	if err := j.CheckMedia(p, probe, job.Limits{}); err != nil {
		t.Fatal(err)
	}
	mp, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, probe)
	if err != nil {
		t.Fatal(err)
	}
	hdr, sdr := mp.Spec.Outputs[0], mp.Spec.Outputs[1]
	for _, o := range []ffmpeg.Output{hdr, sdr} {
		if o.Start != 2*time.Second || o.Duration != 3*time.Second {
			t.Errorf("clip: start %s duration %s, want 2s and 3s", o.Start, o.Duration)
		}
	}
	if h := hdr.Video.HDR; h == nil || h.Colour.Transfer != "smpte2084" || h.Mastering != md || h.Light.MaxCLL != 1000 || hdr.Video.ToneMap != nil {
		t.Errorf("HDR output: %+v, tone map %v", h, hdr.Video.ToneMap)
	}
	if sdr.Video.HDR != nil || sdr.Video.ToneMap == nil {
		t.Errorf("SDR output of HDR: HDR %v, tone map %v; want tone-mapped", sdr.Video.HDR, sdr.Video.ToneMap)
	}
	l := sdr.Audio.Loudness
	if l == nil || l.Target != -16 || l.Limit != -2 || l.TruePeak >= -2 || l.SampleRate != 48000 || l.Measured != nil {
		t.Errorf("loudness %+v: want target -16, limit -2 with a margin under it, 48 kHz, not yet measured", l)
	}
	if ov := sdr.Video.Overlay; ov == nil || ov.Width != 214 || ov.Position != "bottom-left" || sdr.Video.Width != 854 || sdr.Video.Fit {
		t.Errorf("overlay %+v on %dx%d (fit %v): want 214 px (25%% of 854) on an exact 854x480", ov, sdr.Video.Width, sdr.Video.Height, sdr.Video.Fit)
	}
	// Measured (the engine's part) and spooled, the spec builds its argv.
	l.Measured = &ffmpeg.LoudnessMeasure{I: -21.8, TP: -16.1, LRA: 0, Thresh: -31.8}
	sdr.Video.Overlay.Path, sdr.Video.Overlay.Format = "/tmp/logo", "png_pipe"
	args, err := mp.Spec.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := ffmpeg.Quote(args)
	for _, want := range []string{"-ss 2 -t 3", "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400",
		"-color_trc smpte2084", "measured_I=-21.80", "linear=true", "-format_whitelist png_pipe -f png_pipe -i file:/tmp/logo",
		"overlay=x=10:y=H-h-10"} {
		if !strings.Contains(line, want) {
			t.Errorf("argv lacks %q:\n%s", want, line)
		}
	}
}

// TestFeaturesCheckMedia: a clip outside the input is refused from its probe, naming the bound.
func TestFeaturesCheckMedia(t *testing.T) {
	p := presets(t)
	probe := &ffmpeg.ProbeResult{Duration: 6 * time.Second, Streams: []ffmpeg.Stream{{Type: "video", Width: 640, Height: 360, FrameRate: 25, Duration: 6 * time.Second}}}
	for _, c := range []struct {
		clip  job.Clip
		field string // "" ok
	}{
		{job.Clip{Start: job.Duration(2 * time.Second), End: job.Duration(5 * time.Second)}, ""},
		{job.Clip{End: job.Duration(6*time.Second + 20*time.Millisecond)}, ""}, // within a frame of the end
		{job.Clip{Start: job.Duration(6 * time.Second)}, "clip.start"},
		{job.Clip{Start: job.Duration(time.Second), End: job.Duration(7 * time.Second)}, "clip.end"},
	} {
		j := &job.Job{Input: "/in.mp4", Preset: "h264-480p", Clip: &c.clip, Outputs: []job.Output{{URL: "/o.mp4"}}}
		err := j.CheckMedia(p, probe, job.Limits{})
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%+v: %v", c.clip, err)
		case c.field != "" && (!errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), c.field)):
			t.Errorf("%+v: err = %v, want unsupported media naming %s", c.clip, err, c.field)
		}
	}
}

// TestHDRPresets: the HDR presets are 10-bit HEVC, and a ladder of them.
func TestHDRPresets(t *testing.T) {
	p := presets(t)
	if v := p["hevc-1080p-hdr"].Video; v == nil || v.Codec != "hevc" || !ffmpeg.HighBitDepth(v.PixFmt) {
		t.Errorf("hevc-1080p-hdr: %+v", v)
	}
	l := p["hls-abr-hdr"]
	if l.Container != job.ContainerHLS || len(l.Ladder) == 0 || slices.ContainsFunc(l.Ladder, func(r job.Rung) bool { return !ffmpeg.HighBitDepth(r.Video.PixFmt) }) {
		t.Errorf("hls-abr-hdr: %+v", l)
	}
}
