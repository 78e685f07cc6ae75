package job_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// tracksProbe is an input with audio eng (not default) and fra (default), subtitles eng (SRT),
// spa (SRT) and eng (PGS), as ffprobe lists them.
var tracksProbe = &ffmpeg.ProbeResult{Duration: 6e9, Streams: []ffmpeg.Stream{
	{Index: 0, Type: "video", Codec: "h264", Width: 1280, Height: 720},
	{Index: 1, Type: "audio", Codec: "aac", Language: "eng"},
	{Index: 2, Type: "audio", Codec: "aac", Language: "fra", Default: true},
	{Index: 3, Type: "subtitle", Codec: "subrip", Language: "eng", Default: true},
	{Index: 4, Type: "subtitle", Codec: "subrip", Language: "spa"},
	{Index: 5, Type: "subtitle", Codec: "hdmv_pgs_subtitle", Language: "eng"},
}}

// TestTracksJSON: the wire forms of audio_tracks, subtitles, subtitles_in and burn_subtitles.
func TestTracksJSON(t *testing.T) {
	j, err := job.Decode([]byte(`{"input":"/in.mkv","outputs":[{"url":"/o.mp4","preset":"h264-480p","audio_tracks":"all","subtitles":["eng","es"],
		"subtitles_in":[{"url":"/s.srt","language":"fra"}],"burn_subtitles":"eng"},{"url":"/p.mp4","preset":"h264-480p","burn_subtitles":5}]}`))
	if err != nil {
		t.Fatal(err)
	}
	o := j.Outputs[0]
	if o.AudioTracks.Mode != "all" || !slices.Equal(o.Subtitles.Languages, []string{"eng", "es"}) || o.SubtitlesIn[0].Language != "fra" ||
		o.BurnSubtitles.Language != "eng" || j.Outputs[1].BurnSubtitles.Index != 5 {
		t.Errorf("decoded %+v", j.Outputs)
	}
	b, err := json.Marshal(o)
	if err != nil || !strings.Contains(string(b), `"audio_tracks":"all","subtitles":["eng","es"]`) || !strings.Contains(string(b), `"burn_subtitles":"eng"`) {
		t.Errorf("encoded %s, %v", b, err)
	}
	if _, err := job.Decode([]byte(`{"input":"/in.mkv","outputs":[{"url":"/o.mp4","audio_tracks":3}]}`)); err == nil {
		t.Error("audio_tracks 3 decoded")
	}
}

// TestTracksValidate: each field is checked, before any probe, with its name in the error.
func TestTracksValidate(t *testing.T) {
	p := presets(t)
	sel := func(mode string, langs ...string) *job.TrackSelect {
		return &job.TrackSelect{Mode: mode, Languages: langs}
	}
	for _, c := range []struct {
		out   job.Output
		field string
	}{
		{job.Output{Preset: "h264-480p", AudioTracks: sel("none")}, "outputs[0].audio_tracks"},
		{job.Output{Preset: "h264-480p", Subtitles: sel("default")}, "outputs[0].subtitles"},
		{job.Output{Preset: "h264-480p", AudioTracks: sel("", "english")}, "outputs[0].audio_tracks"},
		{job.Output{Preset: "h264-480p", AudioTracks: sel("", "xx")}, "outputs[0].audio_tracks"},
		{job.Output{Preset: "h264-480p", Subtitles: sel("")}, "outputs[0].subtitles"},
		{job.Output{Preset: "aac-audio", Subtitles: sel("all")}, "outputs[0].subtitles"},
		{job.Output{Preset: "remux-mkv", BurnSubtitles: &job.TrackRef{Language: "eng", Index: -1}}, "outputs[0].burn_subtitles"},
		{job.Output{Preset: "h264-480p", BurnSubtitles: &job.TrackRef{Language: "e1", Index: -1}}, "outputs[0].burn_subtitles"},
		{job.Output{Preset: "h264-480p", SubtitlesIn: []job.SubtitleIn{{URL: "concat:/a|/b"}}}, "outputs[0].subtitles_in[0].url"},
		{job.Output{Preset: "h264-480p", SubtitlesIn: []job.SubtitleIn{{URL: "/s.srt", Language: "french"}}}, "outputs[0].subtitles_in[0].language"},
		{job.Output{Preset: "aac-audio", SubtitlesIn: []job.SubtitleIn{{URL: "/s.srt"}}}, "outputs[0].subtitles_in[0]"},
	} {
		c.out.URL = "/o." + map[string]string{"aac-audio": "m4a", "remux-mkv": "mkv"}[c.out.Preset]
		if c.out.URL == "/o." {
			c.out.URL = "/o.mp4"
		}
		err := (&job.Job{Input: "/in.mkv", Outputs: []job.Output{c.out}}).Validate(p)
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a FieldError on %s", c.out, err, c.field)
		}
	}
}

// TestPlanTracks: against the probe, the selection maps the right streams in the right codec,
// keeps the input's default audio track the default, warns of the image subtitle an mp4 drops,
// and needs the probe first.
func TestPlanTracks(t *testing.T) {
	p := presets(t)
	all := &job.TrackSelect{Mode: job.TracksAll}
	j := &job.Job{Input: "/in.mkv", Outputs: []job.Output{
		{URL: "/all.mp4", Preset: "h264-480p", AudioTracks: all},
		{URL: "/all.mkv", Preset: "h264-480p", Container: "mkv", Audio: &job.Audio{AllTracks: true}},
		{URL: "/eng.mp4", Preset: "h264-480p", AudioTracks: &job.TrackSelect{Languages: []string{"en"}}, Subtitles: &job.TrackSelect{Languages: []string{"spa"}},
			SubtitlesIn: []job.SubtitleIn{{URL: "/fr.srt", Language: "fre"}}, BurnSubtitles: &job.TrackRef{Language: "fr", Index: -1}},
		{URL: "/pgs.mp4", Preset: "h264-480p", Subtitles: &job.TrackSelect{Mode: job.TracksNone}, BurnSubtitles: &job.TrackRef{Index: 5}},
		{URL: "/plain.m4a", Preset: "aac-audio"},
	}}
	if err := j.Validate(p); err != nil {
		t.Fatal(err)
	}
	if need, head := j.TracksNeedProbe(p); !need || head {
		t.Errorf("TracksNeedProbe = %v, %v; want true, false (languages are asked for)", need, head)
	}
	if !j.BurnsInputSubtitles() {
		t.Error("BurnsInputSubtitles false: output 3 burns the input's PGS track")
	}
	mp, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, tracksProbe)
	if err != nil {
		t.Fatal(err)
	}
	outs := mp.Spec.Outputs
	if got := outs[0].Audio.Tracks; !slices.Equal(got, []ffmpeg.AudioTrack{{N: 0}, {N: 1, Default: true}}) {
		t.Errorf("mp4 audio tracks %+v", got)
	}
	if got := outs[0].Subtitles; len(got) != 2 || got[0].Codec != "mov_text" || got[1].Language != "spa" || len(mp.Outputs[0].Warnings) != 1 {
		t.Errorf("mp4 subtitles %+v, warnings %q: want eng and spa as mov_text, the PGS track warned of", got, mp.Outputs[0].Warnings)
	}
	if got := outs[1].Subtitles; len(got) != 3 || got[2].Codec != "copy" || len(outs[1].Audio.Tracks) != 2 || len(mp.Outputs[1].Warnings) != 0 {
		t.Errorf("mkv: subtitles %+v, audio %+v: want every track copied", got, outs[1].Audio.Tracks)
	}
	if got := outs[2].Subtitles; len(got) != 2 || got[0].N != 1 || got[1].Input != 1 || got[1].Language != "fra" {
		t.Errorf("eng.mp4 subtitles %+v: want spa and the sidecar", got)
	}
	if a := outs[2].Audio.Tracks; len(a) != 1 || a[0].N != 0 || !a[0].Default {
		t.Errorf("eng.mp4 audio %+v", a)
	}
	if b := mp.Outputs[2].BurnText; b == nil || b.Input != 1 || outs[2].Video.Burn == nil {
		t.Errorf("eng.mp4 burns %+v: want the sidecar", b)
	}
	if b := outs[3].Video.Burn; b == nil || !b.Image || b.N != 2 || len(outs[3].Subtitles) != 0 {
		t.Errorf("pgs.mp4 burn %+v subtitles %+v: want the image track s:2 overlaid, no subtitles", b, outs[3].Subtitles)
	}
	if len(outs[4].Subtitles) != 0 || len(mp.Sidecars) != 1 || len(mp.Spec.SubtitleInputs) != 1 {
		t.Errorf("m4a subtitles %+v; sidecars %+v", outs[4].Subtitles, mp.Sidecars)
	}
	// A ladder: an audio rendition per track, a WebVTT rendition per text subtitle.
	l := &job.Job{Input: "/in.mkv", Outputs: []job.Output{{URL: "/hls/", Preset: "hls-abr", AudioTracks: all}}}
	lp, err := l.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, tracksProbe)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range lp.Outputs[0].Renditions {
		names = append(names, r.Name)
	}
	if want := []string{"720p", "480p", "360p", "audio-eng", "audio-fra", "subtitles-eng", "subtitles-spa"}; !slices.Equal(names, want) {
		t.Errorf("renditions %q, want %q", names, want)
	}
	if job.BCP47("fra") != "fr" || job.BCP47("fre") != "fr" || job.BCP47("") != "" || job.BCP47("tlh") != "tlh" {
		t.Error("BCP47")
	}
}
