package worker_test

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// variant is one EXT-X-STREAM-INF of a master playlist.
type variant struct {
	uri                  string
	bandwidth, average   int
	width, height        int
	codecs, audio, frate string
}

var attrRe = regexp.MustCompile(`([A-Z0-9-]+)=("[^"]*"|[^,]*)`)

// readMaster parses the variants and audio renditions of an HLS master playlist.
func readMaster(t *testing.T, path string) (vars []variant, audio []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	var pending *variant
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			v := variant{}
			for _, m := range attrRe.FindAllStringSubmatch(line[len("#EXT-X-STREAM-INF:"):], -1) {
				val := strings.Trim(m[2], `"`)
				switch m[1] {
				case "BANDWIDTH":
					v.bandwidth, _ = strconv.Atoi(val)
				case "AVERAGE-BANDWIDTH":
					v.average, _ = strconv.Atoi(val)
				case "RESOLUTION":
					_, _ = fmt.Sscanf(val, "%dx%d", &v.width, &v.height)
				case "CODECS":
					v.codecs = val
				case "AUDIO":
					v.audio = val
				case "FRAME-RATE":
					v.frate = val
				}
			}
			pending = &v
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			for _, m := range attrRe.FindAllStringSubmatch(line, -1) {
				if m[1] == "URI" {
					audio = append(audio, strings.Trim(m[2], `"`))
				}
			}
		case pending != nil && line != "" && !strings.HasPrefix(line, "#"):
			pending.uri = line
			vars = append(vars, *pending)
			pending = nil
		}
	}
	return vars, audio
}

// rendition reads back one rendition directory: its segments in order, and the
// presentation time of every keyframe of the concatenated init + segments.
type renditionFiles struct {
	segments  []string
	sizes     []int64
	durations []float64 // EXTINF
	keyframes []float64
}

func readRendition(t *testing.T, dir string) renditionFiles {
	t.Helper()
	var r renditionFiles
	pl, err := os.ReadFile(filepath.Join(dir, "index.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(pl), "\n") {
		if d, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
			f, _ := strconv.ParseFloat(strings.TrimSuffix(d, ","), 64)
			r.durations = append(r.durations, f)
		} else if line != "" && !strings.HasPrefix(line, "#") {
			r.segments = append(r.segments, line)
		}
	}
	whole, err := os.ReadFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.segments {
		b, err := os.ReadFile(filepath.Join(dir, s))
		if err != nil {
			t.Fatal(err)
		}
		r.sizes = append(r.sizes, int64(len(b)))
		whole = append(whole, b...)
	}
	cat := filepath.Join(t.TempDir(), "whole.mp4")
	if err := os.WriteFile(cat, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", cat).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", dir, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 2 {
			continue
		}
		if strings.Contains(f[1], "K") {
			pts, _ := strconv.ParseFloat(f[0], 64)
			r.keyframes = append(r.keyframes, pts)
		}
	}
	return r
}

// TestStreamingOutputs: HLS and DASH ladders and thumbnails through a real worker, checked as a
// player would see them: every rung that does not upscale, keyframes aligned across
// renditions at every segment start, a master playlist with bandwidths that hold the real peak,
// resolutions and codecs as encoded, and ffmpeg playing the whole of it from the master.
func TestStreamingOutputs(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("stream-1")
	e.startWorker("stream-2")

	run := func(t *testing.T, in string, outs ...job.Output) job.Event {
		t.Helper()
		j := &job.Job{Input: "file://" + in, Outputs: outs, Metadata: map[string]string{"test": t.Name()}}
		id, err := e.client.Submit(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventSucceeded {
			t.Fatalf("ended %s %+v", ev.Type, ev.Error)
		}
		return ev
	}

	t.Run("hls-ladder", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// 1280x720, 9 s: the 1080p rung would upscale; 720p, 480p and 360p are made.
		in := genMedia(t, dir, "in.mp4", cat(srcVideo("1280x720", 30, 9), srcAudio(440, 9), x264Fast, []string{"-c:a", "aac", "-ac", "6", "-movflags", "+faststart"})...)
		out := filepath.Join(dir, "hls")
		// Also an mp4 and a poster from the same decode.
		ev := run(t, in, job.Output{URL: "file://" + out, Preset: "hls-abr"},
			job.Output{URL: "file://" + filepath.Join(dir, "plain.mp4"), Preset: "h264-480p", Video: fastH264},
			job.Output{URL: "file://" + filepath.Join(dir, "poster.jpg"), Preset: "poster"})
		res := ev.Outputs[0]
		if res.Kind != "hls" || res.URL != "file://"+out+"/master.m3u8" || res.Width != 1280 || res.Height != 720 || math.Abs(res.Duration-9) > 0.1 {
			t.Errorf("result %+v", res)
		}
		vars, audio := readMaster(t, filepath.Join(out, "master.m3u8"))
		var names []string
		for _, v := range vars {
			names = append(names, strings.TrimSuffix(v.uri, "/index.m3u8"))
		}
		if got := strings.Join(names, ","); got != "720p,480p,360p" || !slices.Equal(audio, []string{"audio/index.m3u8"}) {
			t.Fatalf("variants %s, audio %v; want 720p,480p,360p and one audio rendition", got, audio)
		}
		aud := readRendition(t, filepath.Join(out, "audio"))
		audioPeak := peak(aud)
		var ref []float64
		for i, v := range vars {
			r := readRendition(t, filepath.Join(out, names[i]))
			p := probeMedia(t, filepath.Join(out, names[i], "init.mp4"))
			vs := p.of("video")
			if len(vs) != 1 || vs[0].Width != v.width || vs[0].Height != v.height {
				t.Errorf("%s: init %+v, playlist says %dx%d", names[i], vs, v.width, v.height)
			}
			// The first rung is High, the others Main, as the preset says; the CODECS attribute
			// names the profile and level in hex.
			wantCodec := map[string]string{"720p": "avc1.6400", "480p": "avc1.4d40", "360p": "avc1.4d40"}[names[i]]
			if !strings.HasPrefix(v.codecs, wantCodec) || !strings.HasSuffix(v.codecs, ",mp4a.40.2") || v.audio != "audio" || v.frate != "30.000" {
				t.Errorf("%s: CODECS %q AUDIO %q FRAME-RATE %q", names[i], v.codecs, v.audio, v.frate)
			}
			if pk := peak(r) + audioPeak; v.bandwidth < pk || v.average <= 0 || v.average > v.bandwidth {
				t.Errorf("%s: BANDWIDTH %d AVERAGE %d, measured peak %d", names[i], v.bandwidth, v.average, pk)
			}
			// Every segment starts on a keyframe, at the same instants in every rendition.
			var starts []float64
			var at float64
			for _, d := range r.durations {
				starts = append(starts, math.Round(at*1000)/1000)
				at += d
			}
			// Times are relative to the first frame (which B-frames present a little late).
			for _, s := range starts {
				if len(r.keyframes) == 0 || !slices.ContainsFunc(r.keyframes, func(k float64) bool { return math.Abs(k-r.keyframes[0]-s) < 0.002 }) {
					t.Errorf("%s: no keyframe at segment start %.3f (keyframes %v)", names[i], s, r.keyframes)
				}
			}
			if ref == nil {
				ref = starts
			} else if !slices.Equal(ref, starts) {
				t.Errorf("%s: segments start at %v, %s at %v", names[i], starts, names[0], ref)
			}
			if len(starts) != 3 { // 4 s segments of 9 s
				t.Errorf("%s: %d segments, want 3", names[i], len(starts))
			}
		}
		// The audio is stereo, downmixed from 5.1.
		if a := probeMedia(t, filepath.Join(out, "audio", "init.mp4")).of("audio"); len(a) != 1 || a[0].Channels != 2 {
			t.Errorf("audio rendition %+v, want stereo", a)
		}
		// ffmpeg plays it all from the master playlist: every variant and the audio.
		if outb, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join(out, "master.m3u8"), "-map", "0", "-f", "null", "-").CombinedOutput(); err != nil || len(outb) > 0 {
			t.Errorf("ffmpeg playing the master: %v: %s", err, outb)
		}
		if d := probeMedia(t, filepath.Join(out, "master.m3u8")).duration(t); math.Abs(d-9) > 0.1 {
			t.Errorf("master plays %.3f s, want 9", d)
		}
		if v := probeMedia(t, filepath.Join(dir, "poster.jpg")).of("video"); len(v) != 1 || v[0].Width != 1280 || v[0].Height != 720 {
			t.Errorf("poster %+v", v)
		}
	})

	t.Run("dash-ladder-portrait-video-only", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A phone's portrait clip without audio: 480x854 upright; boxes turn; no audio set.
		in := genMedia(t, dir, "in.mp4", cat(srcVideo("480x854", 25, 5), x264Fast, []string{"-movflags", "+faststart"})...)
		out := filepath.Join(dir, "dash")
		ev := run(t, in, job.Output{URL: "file://" + out, Preset: "dash-abr"})
		if res := ev.Outputs[0]; res.Kind != "dash" || !strings.HasSuffix(res.URL, "/manifest.mpd") || res.Width != 480 || res.Height != 854 {
			t.Errorf("result %+v", res)
		}
		mpd, err := os.ReadFile(filepath.Join(out, "manifest.mpd"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`id="480p"`, `width="480" height="854"`, `id="360p"`, `width="360" height="640"`} {
			if !strings.Contains(string(mpd), want) {
				t.Errorf("manifest lacks %s:\n%s", want, mpd)
			}
		}
		if strings.Contains(string(mpd), `contentType="audio"`) || strings.Contains(string(mpd), `id="720p"`) {
			t.Errorf("manifest has audio or an upscaled rung:\n%s", mpd)
		}
		for _, name := range []string{"480p", "360p"} {
			if _, err := os.Stat(filepath.Join(out, name, "seg-00002.m4s")); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		// ffmpeg's DASH demuxer plays it through (it needs the manifest's absolute path).
		if outb, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join(out, "manifest.mpd"), "-map", "0", "-f", "null", "-").CombinedOutput(); err != nil || len(outb) > 0 {
			t.Errorf("ffmpeg playing the manifest: %v: %s", err, outb)
		}
	})

	t.Run("hls-audio-only", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		in := genMedia(t, dir, "in.m4a", cat(srcAudio(440, 5), []string{"-c:a", "aac"})...)
		out := filepath.Join(dir, "hls")
		run(t, in, job.Output{URL: "file://" + out, Preset: "hls-abr"})
		vars, audio := readMaster(t, filepath.Join(out, "master.m3u8"))
		if len(vars) != 1 || vars[0].uri != "audio/index.m3u8" || vars[0].codecs != "mp4a.40.2" || len(audio) != 0 {
			t.Errorf("audio-only master: %+v %v", vars, audio)
		}
		if outb, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join(out, "master.m3u8"), "-map", "0", "-f", "null", "-").CombinedOutput(); err != nil {
			t.Errorf("ffmpeg: %v: %s", err, outb)
		}
	})

	t.Run("thumbnails-and-sprite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		in := genMedia(t, dir, "in.mp4", cat(srcVideo("640x360", 25, 6), x264Fast, []string{"-movflags", "+faststart"})...)
		at := 2.0
		ev := run(t, in,
			job.Output{URL: "file://" + filepath.Join(dir, "frames"), Preset: "thumbnails", Thumbnails: &job.Thumbnails{Count: 6}},
			job.Output{URL: "file://" + filepath.Join(dir, "sprite"), Preset: "sprite", Thumbnails: &job.Thumbnails{Count: 12, Columns: 4}},
			job.Output{URL: "file://" + filepath.Join(dir, "at2.jpg"), Preset: "poster", Thumbnails: &job.Thumbnails{At: &at, Width: 320}})
		for n := 1; n <= 6; n++ {
			p := probeMedia(t, filepath.Join(dir, "frames", job.ThumbName(n))).of("video")
			if len(p) != 1 || p[0].Width != 320 || p[0].Height != 180 {
				t.Errorf("thumb %d: %+v", n, p)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "frames", job.ThumbName(7))); err == nil {
			t.Error("a seventh thumbnail")
		}
		if sp := probeMedia(t, filepath.Join(dir, "sprite", "sprite.jpg")).of("video"); len(sp) != 1 || sp[0].Width != 4*160 || sp[0].Height != 3*90 {
			t.Errorf("sprite %+v, want 640x270 (4x3 tiles of 160x90)", sp)
		}
		vtt, err := os.ReadFile(filepath.Join(dir, "sprite", "sprite.vtt"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(vtt), "WEBVTT\n") || strings.Count(string(vtt), "sprite.jpg#xywh=") != 12 ||
			!strings.Contains(string(vtt), "00:00:05.500 --> 00:00:06.000\nsprite.jpg#xywh=480,180,160,90") {
			t.Errorf("sprite index:\n%s", vtt)
		}
		if r := ev.Outputs[1]; r.Kind != "sprite" || !strings.HasSuffix(r.URL, "/sprite.vtt") || r.SHA256 == "" {
			t.Errorf("sprite result %+v", r)
		}
		if p := probeMedia(t, filepath.Join(dir, "at2.jpg")).of("video"); len(p) != 1 || p[0].Width != 320 {
			t.Errorf("poster %+v", p)
		}
	})

	t.Run("ladder-index-larger-than-the-head", func(t *testing.T) {
		t.Parallel()
		// The head probe gets one 1 MiB buffer; this mp4's moov (index and 1.4 MB of tags) is
		// larger: the input is spooled and probed whole instead.
		e2 := setup(t)
		e2.startWorker("small-head", func(c *worker.Config) { c.ProbeBytes = 64 << 10 })
		dir := t.TempDir()
		args := cat(srcVideo("640x360", 25, 2), x264Fast)
		big := strings.Repeat("a", 120000)
		for i := range 12 {
			args = append(args, "-metadata", fmt.Sprintf("k%d=%s", i, big))
		}
		in := genMedia(t, dir, "bigmoov.mp4", append(args, "-movflags", "+faststart+use_metadata_tags")...)
		out := filepath.Join(dir, "hls")
		id, err := e2.client.Submit(context.Background(), &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Preset: "hls-abr"}}})
		if err != nil {
			t.Fatal(err)
		}
		if ev := e2.events.terminal(t, id); ev.Type != job.EventSucceeded {
			t.Fatalf("ended %s %+v", ev.Type, ev.Error)
		}
		if vars, _ := readMaster(t, filepath.Join(out, "master.m3u8")); len(vars) != 1 || vars[0].width != 640 {
			t.Errorf("variants %+v, want the 360p rung at 640x360", vars)
		}
	})

	t.Run("faststart-mp4", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		in := genMedia(t, dir, "in.mp4", cat(srcVideo("320x240", 25, 3), srcAudio(440, 3), x264Fast, []string{"-c:a", "aac", "-movflags", "+faststart"})...)
		out := filepath.Join(dir, "fs.mp4")
		ev := run(t, in, job.Output{URL: "file://" + out, Preset: "h264-480p", Video: fastH264, Faststart: true},
			job.Output{URL: "file://" + filepath.Join(dir, "frag.mp4"), Preset: "h264-480p", Video: fastH264})
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		// Top-level boxes: the index (moov) before the media (mdat), no fragments.
		var boxes []string
		for off := 0; off+8 <= len(b); {
			size := int(uint32(b[off])<<24 | uint32(b[off+1])<<16 | uint32(b[off+2])<<8 | uint32(b[off+3]))
			boxes = append(boxes, string(b[off+4:off+8]))
			if size < 8 {
				break
			}
			off += size
		}
		moov, mdat := slices.Index(boxes, "moov"), slices.Index(boxes, "mdat")
		if moov < 0 || mdat < 0 || moov > mdat || slices.Contains(boxes, "moof") {
			t.Errorf("faststart boxes %v, want moov before mdat and no moof", boxes)
		}
		if res := ev.Outputs[0]; res.Size != int64(len(b)) || math.Abs(res.Duration-3) > 0.1 {
			t.Errorf("result %+v", res)
		}
	})

	t.Run("one-frame", func(t *testing.T) {
		t.Parallel()
		// A single picture: a one-segment ladder, one thumbnail, one sprite tile with one cue.
		dir := t.TempDir()
		in := genMedia(t, dir, "one.mp4", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-frames:v", "1", "-c:v", "libx264", "-preset", "ultrafast")
		run(t, in, job.Output{URL: "file://" + filepath.Join(dir, "hls"), Preset: "hls-abr"},
			job.Output{URL: "file://" + filepath.Join(dir, "th"), Preset: "thumbnails"},
			job.Output{URL: "file://" + filepath.Join(dir, "sp"), Preset: "sprite"})
		if vars, _ := readMaster(t, filepath.Join(dir, "hls", "master.m3u8")); len(vars) != 3 {
			t.Errorf("variants %+v", vars)
		}
		if ents, _ := os.ReadDir(filepath.Join(dir, "th")); len(ents) != 1 {
			t.Errorf("%d thumbnails of a one-frame input, want 1", len(ents))
		}
		vtt, err := os.ReadFile(filepath.Join(dir, "sp", "sprite.vtt"))
		if err != nil || strings.Count(string(vtt), "#xywh=") != 1 {
			t.Errorf("sprite index of a one-frame input: %v\n%s", err, vtt)
		}
	})

	t.Run("thumbnails-of-audio-fail", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		in := genMedia(t, dir, "in.m4a", cat(srcAudio(440, 2), []string{"-c:a", "aac"})...)
		j := &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + filepath.Join(dir, "p.jpg"), Preset: "poster"}}}
		id, err := e.client.Submit(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		if ev := e.events.terminal(t, id); ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput {
			t.Errorf("ended %s %+v, want failed invalid_input", ev.Type, ev.Error)
		}
		if _, err := os.Stat(filepath.Join(dir, "p.jpg")); err == nil {
			t.Error("poster written for an input without video")
		}
	})
}

// peak is a rendition's highest segment bitrate, bits per second.
func peak(r renditionFiles) int {
	var p float64
	for i, d := range r.durations {
		if d > 0 {
			p = math.Max(p, float64(r.sizes[i])*8/d)
		}
	}
	return int(p)
}
