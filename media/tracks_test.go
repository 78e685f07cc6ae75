package media_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// multiTrack makes the acceptance script's input: 6 s of 1280x720 video, audio in eng and fra,
// SRT subtitles in eng and spa, two chapters.
func multiTrack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	en := write("en.srt", "1\n00:00:00,500 --> 00:00:02,500\nHello subtitle\n\n2\n00:00:03,000 --> 00:00:05,000\nSecond line\n")
	es := write("es.srt", "1\n00:00:00,500 --> 00:00:02,500\nHola subtitulo\n")
	ch := write("ch.txt", ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=3000\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=3000\nEND=6000\ntitle=Two\n")
	out := filepath.Join(dir, "multi.mkv")
	cmd := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
		"-i", en, "-i", es, "-i", ch, "-t", "6", "-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-map_chapters", "5",
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt",
		"-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra", "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=spa",
		"-metadata", "title=Multi", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("making the input: %v: %s", err, b)
	}
	return out
}

type trackProbe struct {
	Streams []struct {
		Type  string            `json:"codec_type"`
		Codec string            `json:"codec_name"`
		Tags  map[string]string `json:"tags"`
		Disp  map[string]int    `json:"disposition"`
	} `json:"streams"`
	Chapters []json.RawMessage `json:"chapters"`
	Format   struct {
		Tags map[string]string `json:"tags"`
	} `json:"format"`
}

func probeTracks(t *testing.T, path string) trackProbe {
	t.Helper()
	return ffprobeJSON[trackProbe](t, path, "-show_streams", "-show_chapters", "-show_format")
}

// tracksOf lists codec:language of the streams of a type.
func (p trackProbe) tracksOf(typ string) []string {
	var out []string
	for _, s := range p.Streams {
		if s.Type == typ {
			out = append(out, s.Codec+":"+s.Tags["language"])
		}
	}
	return out
}

// runJob validates and runs j on e through a reservation of its own, and checks that the ring
// has every buffer back.
func runJob(t *testing.T, e *media.Engine, j *job.Job, obs media.Observer) ([]job.OutputResult, error) {
	t.Helper()
	if err := j.Validate(e.Config().Presets); err != nil {
		return nil, err
	}
	pool, res := reservation(t, e)
	results, err := e.Run(context.Background(), &media.Task{ID: "tracks", Attempt: 1, Buffers: res, Job: j, Observer: obs})
	if st := pool.Stats(); st.InUse != 0 || st.Misuse != 0 {
		t.Errorf("ring after the task: %+v", st)
	}
	return results, err
}

// TestTracksFiles: one decode of a two-language, two-subtitle, two-chapter input makes an mp4
// (mov_text), an mkv (SRT copied) and a webm (WebVTT) that each keep every audio and subtitle
// track with its language and default flag, and the chapters and title where the container
// carries them; a language list keeps only those.
func TestTracksFiles(t *testing.T) {
	e := engine(t)
	in := multiTrack(t)
	dir := t.TempDir()
	u := func(n string) string { return "file://" + filepath.Join(dir, n) }
	all := &job.TrackSelect{Mode: job.TracksAll}
	j := &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: u("all.mp4"), Preset: "h264-480p", AudioTracks: all, Subtitles: all},
		{URL: u("all.mkv"), Preset: "h264-480p", Container: "mkv", AudioTracks: all},
		{URL: u("fra.webm"), Preset: "vp9-720p", Video: &job.Video{Width: 320, Height: 180, Preset: "realtime"}, AudioTracks: &job.TrackSelect{Languages: []string{"fr"}}, Subtitles: &job.TrackSelect{Languages: []string{"spa"}}},
	}}
	results, err := runJob(t, e, j, nil)
	if err != nil {
		t.Fatal(err)
	}
	mp4 := probeTracks(t, filepath.Join(dir, "all.mp4"))
	if got := mp4.tracksOf("audio"); !slices.Equal(got, []string{"aac:eng", "aac:fra"}) {
		t.Errorf("mp4 audio %v", got)
	}
	if got := mp4.tracksOf("subtitle"); !slices.Equal(got, []string{"mov_text:eng", "mov_text:spa"}) {
		t.Errorf("mp4 subtitles %v", got)
	}
	if len(mp4.Chapters) != 2 || mp4.Format.Tags["title"] != "Multi" {
		t.Errorf("mp4: %d chapters, title %q; want 2, Multi", len(mp4.Chapters), mp4.Format.Tags["title"])
	}
	for _, s := range mp4.Streams {
		if s.Type == "audio" && (s.Disp["default"] == 1) != (s.Tags["language"] == "eng") {
			t.Errorf("mp4 audio %s default=%d: want only eng (the input's default)", s.Tags["language"], s.Disp["default"])
		}
	}
	mkv := probeTracks(t, filepath.Join(dir, "all.mkv"))
	if got := mkv.tracksOf("subtitle"); !slices.Equal(got, []string{"subrip:eng", "subrip:spa"}) || len(mkv.tracksOf("audio")) != 2 || len(mkv.Chapters) != 2 {
		t.Errorf("mkv: subtitles %v, audio %v, %d chapters", got, mkv.tracksOf("audio"), len(mkv.Chapters))
	}
	webm := probeTracks(t, filepath.Join(dir, "fra.webm"))
	if a, s := webm.tracksOf("audio"), webm.tracksOf("subtitle"); !slices.Equal(a, []string{"opus:fra"}) || !slices.Equal(s, []string{"webvtt:spa"}) {
		t.Errorf("webm: audio %v subtitles %v, want opus:fra, webvtt:spa", a, s)
	}
	var subs int
	for _, st := range results[0].Streams {
		if st.Type == "subtitle" {
			subs++
		}
	}
	if subs != 2 {
		t.Errorf("mp4 result streams %+v: want 2 subtitle streams verified", results[0].Streams)
	}
}

// TestTracksHLS: an HLS ladder of the same input has an alternate audio rendition per language
// and a WebVTT subtitle rendition per subtitle track, segmented, with the cues; DASH has an
// AdaptationSet per audio language and a text one per subtitle track.
func TestTracksHLS(t *testing.T) {
	e := engine(t)
	in := multiTrack(t)
	dir := t.TempDir()
	all := &job.TrackSelect{Mode: job.TracksAll}
	for _, kind := range []string{"hls", "dash"} {
		j := &job.Job{Input: "file://" + in, Outputs: []job.Output{
			{URL: "file://" + filepath.Join(dir, kind) + "/", Preset: kind + "-abr", AudioTracks: all},
		}}
		if _, err := runJob(t, e, j, nil); err != nil {
			t.Fatal(err)
		}
	}
	master, err := os.ReadFile(filepath.Join(dir, "hls", "master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	m := string(master)
	for _, want := range []string{`TYPE=AUDIO,GROUP-ID="audio",NAME="eng",LANGUAGE="en",DEFAULT=YES`, `TYPE=AUDIO,GROUP-ID="audio",NAME="fra",LANGUAGE="fr",DEFAULT=NO`,
		`TYPE=SUBTITLES,GROUP-ID="subs",NAME="eng",LANGUAGE="en"`, `TYPE=SUBTITLES,GROUP-ID="subs",NAME="spa",LANGUAGE="es"`, `SUBTITLES="subs"`} {
		if !strings.Contains(m, want) {
			t.Errorf("master playlist lacks %s:\n%s", want, m)
		}
	}
	vtt, _ := filepath.Glob(filepath.Join(dir, "hls", "subtitles-spa", "*.vtt"))
	var cues bytes.Buffer
	for _, f := range vtt {
		b, _ := os.ReadFile(f)
		cues.Write(b)
	}
	if len(vtt) < 2 || !strings.Contains(cues.String(), "Hola subtitulo") {
		t.Errorf("spa WebVTT segments %v: %q", vtt, cues.String())
	}
	mpd, err := os.ReadFile(filepath.Join(dir, "dash", "manifest.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`contentType="audio" mimeType="audio/mp4" lang="en"`, `contentType="audio" mimeType="audio/mp4" lang="fr"`, `contentType="text" mimeType="text/vtt" lang="es"`} {
		if !strings.Contains(string(mpd), want) {
			t.Errorf("MPD lacks %s:\n%s", want, mpd)
		}
	}
}

// TestTracksBadSelection: a language or a stream index the input does not have fails as
// invalid_job naming the field, before ffmpeg runs.
func TestTracksBadSelection(t *testing.T) {
	e := engine(t)
	in := multiTrack(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		out   job.Output
		field string
	}{
		{job.Output{AudioTracks: &job.TrackSelect{Languages: []string{"deu"}}}, "outputs[0].audio_tracks"},
		{job.Output{Subtitles: &job.TrackSelect{Languages: []string{"jpn"}}}, "outputs[0].subtitles"},
		{job.Output{BurnSubtitles: &job.TrackRef{Index: 1}}, "outputs[0].burn_subtitles"},
		{job.Output{BurnSubtitles: &job.TrackRef{Language: "ita", Index: -1}}, "outputs[0].burn_subtitles"},
	} {
		tc.out.URL, tc.out.Preset = "file://"+filepath.Join(dir, "x.mp4"), "h264-480p"
		_, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{tc.out}}, nil)
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: err %v, want a FieldError on %s", tc.out, err, tc.field)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.mp4")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an output was left: %v", err)
	}
}

// lowerBand is the grey bytes of the lower fifth of the frame at 1.5 s.
func lowerBand(t *testing.T, path string) []byte {
	t.Helper()
	return grey(t, path, "1.5", "crop=iw:ih/5:0:ih*4/5,")
}

// grey is the frame at ss, through filter, as grey bytes.
func grey(t *testing.T, path, ss, filter string) []byte {
	t.Helper()
	b, err := exec.Command("ffmpeg", "-v", "error", "-ss", ss, "-i", path, "-frames:v", "1", "-vf", filter+"format=gray", "-f", "rawvideo", "-").Output()
	if err != nil || len(b) == 0 {
		t.Fatalf("frame of %s: %v", path, err)
	}
	return b
}

func meanDiff(a, b []byte) float64 {
	var d float64
	for i := range min(len(a), len(b)) {
		d += float64(max(a[i], b[i]) - min(a[i], b[i]))
	}
	return d / float64(max(1, min(len(a), len(b))))
}

// TestTracksBurnAndSidecar: burn_subtitles draws the input's eng track into the picture (the
// plain output of the same run has no text there); a sidecar WebVTT file comes through storage
// and is kept as a mov_text track in its language, and can be burned itself; a sidecar that is
// not a subtitle file is invalid_input.
func TestTracksBurnAndSidecar(t *testing.T) {
	e := engine(t)
	in := multiTrack(t)
	dir := t.TempDir()
	vtt := filepath.Join(dir, "fr.vtt")
	if err := os.WriteFile(vtt, []byte("WEBVTT\n\nNOTE a comment\n\n00:00.400 --> 00:02.600 align:center\nBonjour sous-titre\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := func(n string) string { return "file://" + filepath.Join(dir, n) }
	none := &job.TrackSelect{Mode: job.TracksNone}
	side := []job.SubtitleIn{{URL: "file://" + vtt, Language: "fr"}}
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: u("burn.mp4"), Preset: "h264-480p", BurnSubtitles: &job.TrackRef{Language: "eng", Index: -1}, Subtitles: none},
		{URL: u("plain.mp4"), Preset: "h264-480p", Subtitles: none},
		{URL: u("side.mp4"), Preset: "h264-480p", SubtitlesIn: side},
		{URL: u("sideburn.mp4"), Preset: "h264-480p", Subtitles: none, SubtitlesIn: side, BurnSubtitles: &job.TrackRef{Language: "fra", Index: -1}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain := lowerBand(t, filepath.Join(dir, "plain.mp4"))
	for _, name := range []string{"burn.mp4", "sideburn.mp4"} {
		if d := meanDiff(lowerBand(t, filepath.Join(dir, name)), plain); d < 2 {
			t.Errorf("%s: lower band differs from the plain output's by %.2f: no burned text", name, d)
		}
	}
	if got := probeTracks(t, filepath.Join(dir, "side.mp4")).tracksOf("subtitle"); !slices.Equal(got, []string{"mov_text:eng", "mov_text:spa", "mov_text:fra"}) {
		t.Errorf("side.mp4 subtitles %v", got)
	}
	if len(results) != 4 {
		t.Fatalf("results %+v", results)
	}
	if err := os.WriteFile(vtt, []byte("not subtitles at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: u("bad.mp4"), Preset: "h264-480p", SubtitlesIn: side}}}, nil)
	if job.ClassOf(err) != job.ClassInvalidInput || !strings.Contains(err.Error(), "outputs[0].subtitles_in") {
		t.Errorf("bad sidecar: %v, want invalid_input naming outputs[0].subtitles_in", err)
	}
	if left, _ := filepath.Glob(filepath.Join(e.Config().SpoolDir, "transcoder-*")); len(left) > 0 {
		t.Errorf("spool files left: %q", left)
	}
}

// TestTracksRealMedia: real files: a VobSub track is copied into mkv, dropped from mp4 with
// a warning, and burned in by its stream index (overlay); a phone-style mp4's chapters are
// kept; an mp4 with an AC-3 and an AAC track keeps both; CEA-608 captions stay in the video.
func TestTracksRealMedia(t *testing.T) {
	e := engine(t)
	dir := t.TempDir()
	u := func(n string) string { return "file://" + filepath.Join(dir, n) }
	vob := "file://" + corpus(t, "mkv_sample_with_vobsub.mkv")
	results, err := runJob(t, e, &job.Job{Input: vob, Outputs: []job.Output{
		{URL: u("vob.mkv"), Preset: "h264-480p", Container: "mkv"},
		{URL: u("vob.mp4"), Preset: "h264-480p"},
		{URL: u("vobburn.mp4"), Preset: "h264-480p", BurnSubtitles: &job.TrackRef{Index: 2}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := probeTracks(t, filepath.Join(dir, "vob.mkv")).tracksOf("subtitle"); !slices.Equal(got, []string{"dvd_subtitle:eng"}) {
		t.Errorf("mkv subtitles %v, want the VobSub track copied", got)
	}
	if got := probeTracks(t, filepath.Join(dir, "vob.mp4")).tracksOf("subtitle"); len(got) != 0 || len(results[1].Warnings) != 1 || !strings.Contains(results[1].Warnings[0], "dvd_subtitle") {
		t.Errorf("mp4 subtitles %v, warnings %q: want none, and a warning", got, results[1].Warnings)
	}
	if d := meanDiff(grey(t, filepath.Join(dir, "vobburn.mp4"), "0", ""), grey(t, filepath.Join(dir, "vob.mp4"), "0", "")); d < 0.5 {
		t.Errorf("vobburn.mp4 differs from vob.mp4 by %.2f: no VobSub overlaid", d)
	}
	_, err = runJob(t, e, &job.Job{Input: "file://" + corpus(t, "mp4_sample_with_chapters.mp4"), Outputs: []job.Output{
		{URL: u("ch.mp4"), Preset: "h264-480p"}, {URL: u("ch.mkv"), Preset: "h264-480p", Container: "mkv"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"ch.mp4", "ch.mkv"} {
		if c := len(probeTracks(t, filepath.Join(dir, n)).Chapters); c != 3 {
			t.Errorf("%s: %d chapters, want the input's 3", n, c)
		}
	}
	_, err = runJob(t, e, &job.Job{Input: "file://" + corpus(t, "mp4_sample_ac3_aac.mp4"), Outputs: []job.Output{
		{URL: u("two.m4a"), Preset: "aac-audio", AudioTracks: &job.TrackSelect{Mode: job.TracksAll}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := probeTracks(t, filepath.Join(dir, "two.m4a")).tracksOf("audio"); len(got) != 2 {
		t.Errorf("m4a audio %v, want both tracks", got)
	}
	// CEA-608 captions in the H.264 video of a broadcast capture stay in the encoded video.
	_, err = runJob(t, e, &job.Job{Input: "file://" + corpus(t, "hls_cea608_sd-hls0000000000.ts"), Outputs: []job.Output{{URL: u("cc.mp4"), Preset: "h264-480p"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "movie="+filepath.Join(dir, "cc.mp4")+"[out0+subcc]", "-map", "0:1", "-f", "webvtt", "-").Output()
	if err != nil || !strings.Contains(string(cc), "First subtitle") {
		t.Errorf("captions of cc.mp4: %q, %v; want the input's CEA-608 cues", cc, err)
	}
}
