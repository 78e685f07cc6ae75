package media_test

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// started records whether ffmpeg was started: what must be refused before it is not.
type started struct{ n atomic.Int32 }

func (s *started) Probed(*ffmpeg.ProbeResult) {}
func (s *started) Phase(string)               {}
func (s *started) FirstByte()                 {}
func (s *started) Started([]string, int)      { s.n.Add(1) }

// ffmpegLog runs ffmpeg and returns its log (the tests' own measurements, apart from the
// worker's).
func ffmpegLog(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-nostdin", "-nostats"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v: %s", args, err, out)
	}
	return string(out)
}

// lastFloat is the number after the last occurrence of key in log ("I:", "average:").
func lastFloat(t *testing.T, log, key string) float64 {
	t.Helper()
	i := strings.LastIndex(log, key)
	if i < 0 {
		t.Fatalf("no %q in %s", key, log)
	}
	f := strings.Fields(log[i+len(key):])
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("%q: %v", f[0], err)
	}
	return v
}

// TestClipFrameAccurate: a clip starts on the input's frame at its start (the same picture),
// has exactly the frames up to its end, and its audio is cut to match within an audio frame; a
// clip with one bound runs to the input's end or from its start. Verification expects the
// clipped durations.
func TestClipFrameAccurate(t *testing.T) {
	e := engine(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 6, Rate: 30, Container: "mkv"})
	for _, c := range []struct {
		name       string
		start, end time.Duration
		frames     int
	}{
		{"2s-5s", 2 * time.Second, 5 * time.Second, 90},
		{"from 4s", 4 * time.Second, 0, 60},
		{"to 1s", 0, time.Second, 30},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "clip.mp4")
			j := &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(c.start), End: job.Duration(c.end)},
				Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}}}}
			results, err := runJob(t, e, j, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := testenv.Probe(t, out, "stream=nb_read_frames", "v:0"); results[0].Frames != c.frames {
				t.Errorf("%d frames (ffprobe %s), want %d", results[0].Frames, n, c.frames)
			}
			for _, s := range results[0].Streams {
				// To the end, the audio lasts what the input's does (AAC frames past the video's
				// last): the verification compares it with that.
				if s.Type == "audio" && c.end > 0 && math.Abs(s.Duration-float64(c.frames)/30) > 1024.0/48000 {
					t.Errorf("audio lasts %.3fs, the video's frames %.3fs", s.Duration, float64(c.frames)/30)
				}
			}
			log := ffmpegLog(t, "-i", out, "-ss", strconv.FormatFloat(c.start.Seconds(), 'f', -1, 64), "-i", in, "-lavfi",
				"[0:v]trim=end_frame=1,setpts=PTS-STARTPTS[a];[1:v]trim=end_frame=1,setpts=PTS-STARTPTS,scale=320:240[b];[a][b]psnr", "-f", "null", "-")
			if psnr := lastFloat(t, log, "average:"); psnr < 30 {
				t.Errorf("first frame is not the input's at %s: PSNR %.1f dB", c.start, psnr)
			}
		})
	}
}

// TestClipOutsideInput: a clip past the input's end fails as invalid input naming the bound,
// before ffmpeg starts.
func TestClipOutsideInput(t *testing.T) {
	e := engine(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	obs := &started{}
	_, err := runJob(t, e, &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(3 * time.Second)},
		Outputs: []job.Output{{URL: "file://" + filepath.Join(t.TempDir(), "o.mp4"), Preset: "h264-480p"}}}, obs)
	if !errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), "clip.start") {
		t.Fatalf("err = %v, want unsupported media naming clip.start", err)
	}
	if obs.n.Load() != 0 {
		t.Error("ffmpeg ran")
	}
}

// TestLoudnessNormalised: a quiet track is brought up to -16 LUFS and a loud one down to -23,
// each within 1 LU as ffmpeg's own ebur128 measures the output, true peak under the limit; the
// result reports the input's and the output's loudness.
func TestLoudnessNormalised(t *testing.T) {
	e := engine(t)
	for _, c := range []struct {
		name, volume string
		target, peak float64
	}{
		{"quiet to -16", "-18dB", -16, -1},
		{"loud to -23", "12dB", -23, -2},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.mkv")
			ffmpegLog(t, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
				"sine=frequency=440:sample_rate=44100,volume="+c.volume, "-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "flac", in)
			out := filepath.Join(dir, "loud.mp4")
			peak := c.peak
			results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p",
				Video: &job.Video{Preset: "ultrafast"}, Loudness: &job.Loudness{Target: c.target, TruePeak: &peak}}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			log := ffmpegLog(t, "-i", out, "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-")
			if i := lastFloat(t, log, "I:"); math.Abs(i-c.target) > 1 {
				t.Errorf("output at %.1f LUFS, want %.0f ±1", i, c.target)
			}
			if tp := lastFloat(t, log, "Peak:"); tp > c.peak {
				t.Errorf("true peak %.1f dBTP, over the limit of %.0f", tp, c.peak)
			}
			l := results[0].Loudness
			if l == nil || l.Target != c.target || math.Abs(l.Output.I-c.target) > 1 || math.Abs(l.Input.I-l.Output.I) < 3 {
				t.Errorf("result %+v: want the input's and the output's loudness", l)
			}
		})
	}
}

// TestOverlayPlaced: a PNG logo fetched through storage is scaled to its share of the output's
// width and placed in its corner with its margin; the rest of the frame is the input's.
func TestOverlayPlaced(t *testing.T) {
	e := engine(t)
	dir := t.TempDir()
	logo := filepath.Join(dir, "logo.png")
	ffmpegLog(t, "-v", "error", "-f", "lavfi", "-i", "color=red:s=64x32", "-frames:v", "1", logo)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "640x360"})
	out := filepath.Join(dir, "logo.mp4")
	margin := 8
	_, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"},
		Overlay: &job.Overlay{URL: "file://" + logo, Position: "bottom-left", Width: "25%", Margin: &margin}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 25% of 640 is 160x80, 8 px from the left and bottom edges: its centre is red, the pixels
	// just past its right edge are not.
	rgb := func(x, y int) [3]byte {
		b := rawFrame(t, out, "crop=4:4:"+strconv.Itoa(x)+":"+strconv.Itoa(y)+",scale=1:1:flags=area,format=rgb24")
		return [3]byte{b[0], b[1], b[2]}
	}
	if c := rgb(8+78, 360-8-42); c[0] < 180 || c[1] > 80 || c[2] > 80 {
		t.Errorf("the logo's centre is rgb%v, want red", c)
	}
	if c := rgb(8+160+6, 360-8-42); c[0] > 180 && c[1] < 80 && c[2] < 80 {
		t.Errorf("right of the logo is red too (rgb%v): scaled wider than 25%%", c)
	}
}

// rawFrame is the first frame of path at 0.5 s through the filter vf, as raw bytes.
func rawFrame(t *testing.T, path, vf string) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-ss", "0.5", "-i", path, "-frames:v", "1", "-vf", vf, "-f", "rawvideo", "-").Output()
	if err != nil || len(out) < 3 {
		t.Fatalf("frame of %s: %v", path, err)
	}
	return out
}

// TestOverlayNotImage: an overlay that is not a PNG or JPEG (a text file, a truncated PNG, a
// missing file) fails as invalid input before ffmpeg starts, and leaves no spool file.
func TestOverlayNotImage(t *testing.T) {
	e := engine(t)
	dir := t.TempDir()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	text := filepath.Join(dir, "logo.png")
	if err := os.WriteFile(text, []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.png")
	if err := os.WriteFile(truncated, []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		url  string
		want func(error) bool
	}{
		"text": {text, func(err error) bool {
			return job.ClassOf(err) == job.ClassInvalidInput && errors.Is(err, media.ErrNotImage)
		}},
		"truncated": {truncated, func(err error) bool { return job.ClassOf(err) == job.ClassInvalidInput }},
		"missing":   {filepath.Join(dir, "none.png"), func(err error) bool { return errors.Is(err, storage.ErrNotFound) }},
	} {
		t.Run(name, func(t *testing.T) {
			obs := &started{}
			_, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + filepath.Join(dir, name+".mp4"), Preset: "h264-480p",
				Overlay: &job.Overlay{URL: "file://" + c.url}}}}, obs)
			if err == nil || !c.want(err) || !strings.Contains(err.Error(), "outputs[0].overlay.url") {
				t.Fatalf("err = %v", err)
			}
			if obs.n.Load() != 0 {
				t.Error("ffmpeg ran")
			}
		})
	}
	spool, _ := filepath.Glob(filepath.Join(e.Config().SpoolDir, "transcoder-overlay-*"))
	if len(spool) > 0 {
		t.Errorf("spool files left: %v", spool)
	}
}

// TestHDRPresetKeepsHDR: hevc-1080p-hdr keeps an HDR10 input HDR10 (PQ, BT.2020, 10-bit, the
// mastering display and content light level its first frame carries) and an HLG input HLG; an
// SDR output of the same job is tone-mapped, and the results say which. An SDR input stays SDR.
func TestHDRPresetKeepsHDR(t *testing.T) {
	e := engine(t)
	for _, c := range []struct {
		name, transfer string
		meta           bool
	}{
		{"HDR10", "smpte2084", true},
		{"HLG", "arib-std-b67", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			hdr, sdr := filepath.Join(dir, "hdr.mp4"), filepath.Join(dir, "sdr.mp4")
			results, err := runJob(t, e, &job.Job{Input: "file://" + hdrClip(t, c.transfer), Outputs: []job.Output{
				{URL: "file://" + hdr, Preset: "hevc-1080p-hdr", Video: &job.Video{Preset: "ultrafast"}},
				{URL: "file://" + sdr, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}},
			}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := colourOf(t, hdr), "yuv420p10le,bt2020nc,"+c.transfer+",bt2020"; got != want {
				t.Errorf("HDR output %s, want %s", got, want)
			}
			if c.meta {
				frame, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames", hdr).Output()
				if err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{"Mastering display metadata", "max_luminance=10000000/10000", "Content light level metadata", "max_content=1000"} {
					if !strings.Contains(string(frame), want) {
						t.Errorf("HDR output's first frame lacks %s", want)
					}
				}
			}
			if results[0].HDR != job.HDRKept || results[1].HDR != job.HDRToneMapped {
				t.Errorf("results say %q and %q, want kept and tone-mapped", results[0].HDR, results[1].HDR)
			}
		})
	}
	t.Run("SDR input", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "o.mp4")
		results, err := runJob(t, e, &job.Job{Input: "file://" + testenv.MakeClip(t, testenv.Clip{Seconds: 1}),
			Outputs: []job.Output{{URL: "file://" + out, Preset: "hevc-1080p-hdr", Video: &job.Video{Preset: "ultrafast"}}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := colourOf(t, out); !strings.HasPrefix(got, "yuv420p10le") || strings.Contains(got, "smpte2084") || strings.Contains(got, "bt2020") || results[0].HDR != "" {
			t.Errorf("SDR input on the HDR preset: %s, result %q; want 10-bit SDR", got, results[0].HDR)
		}
	})
}

// TestHDRPresetReal: real HDR files of the corpus stay HDR on hevc-1080p-hdr: the HLG HEVC
// phone clip keeps HLG, and the PQ AV1 sample, whose mastering display and content light level
// are in its container (mdcv, clli), has them in the HEVC output's SEI. Skipped where the corpus
// is not checked out beside the repository.
func TestHDRPresetReal(t *testing.T) {
	e := engine(t)
	for _, c := range []struct {
		file, colour string
		meta         bool
	}{
		{"mp4_hlg10-color-test.mp4", "yuv420p10le,bt2020nc,arib-std-b67,bt2020", false},
		{"mp4_sample_with_colr_mdcv_and_clli.mp4", "yuv420p10le,bt2020nc,smpte2084,bt2020", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			in, err := filepath.Abs("../../shared/media/realworld/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(in); err != nil {
				t.Skip("real-world corpus not found:", err)
			}
			out := filepath.Join(t.TempDir(), "hdr.mp4")
			results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Preset: "hevc-1080p-hdr", Video: &job.Video{Preset: "ultrafast"}}}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := colourOf(t, out); !strings.HasPrefix(got, c.colour) || results[0].HDR != job.HDRKept {
				t.Errorf("%s (result %q), want %s kept", got, results[0].HDR, c.colour)
			}
			if !c.meta {
				return
			}
			frame, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1", "-show_frames", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Mastering display metadata", "red_x=33899/50000", "max_content=1100", "max_average=180"} {
				if !strings.Contains(string(frame), want) {
					t.Errorf("output's first frame lacks %s", want)
				}
			}
		})
	}
}

// TestClipLadder: a clipped ladder's renditions last the clip (its verification expects that,
// not the input's length), and its HLS playlists say so.
func TestClipLadder(t *testing.T) {
	e := engine(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 5, Size: "640x360"})
	dir := t.TempDir()
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(time.Second), End: job.Duration(3 * time.Second)},
		Outputs: []job.Output{{URL: "file://" + dir + "/hls/", Preset: "hls-abr"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := results[0].Duration; math.Abs(d-2) > 0.1 {
		t.Errorf("clipped ladder lasts %.3fs, want 2s", d)
	}
}

// TestLoudnessWithoutAudio: an input with no audio track has nothing to normalise: the output
// is video-only, as any audio output of it, and reports no loudness.
func TestLoudnessWithoutAudio(t *testing.T) {
	e := engine(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1, NoAudio: true})
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + filepath.Join(t.TempDir(), "o.mp4"),
		Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}, Loudness: &job.Loudness{Target: -16}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Loudness != nil || len(results[0].Streams) != 1 {
		t.Errorf("result %+v: want video only, no loudness", results[0])
	}
}

// TestLoudnessOfClip: a clip is normalised by its own loudness, not the whole track's: the
// track is 20 dB quieter before the clip than in it.
func TestLoudnessOfClip(t *testing.T) {
	e := engine(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mkv")
	ffmpegLog(t, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
		"sine=frequency=440:sample_rate=48000,volume='if(lt(t,3),0.02,0.2)':eval=frame", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "flac", in)
	out := filepath.Join(dir, "clip.mp4")
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(3 * time.Second)}, Outputs: []job.Output{{URL: "file://" + out,
		Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}, Loudness: &job.Loudness{Target: -16}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := ffmpegLog(t, "-i", out, "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-")
	if i := lastFloat(t, log, "I:"); math.Abs(i+16) > 1 {
		t.Errorf("clip at %.1f LUFS, want -16 ±1 (input measured %+v)", i, results[0].Loudness)
	}
}

// TestHDRLadder: hls-abr-hdr keeps an HDR10 input HDR in every rendition, and the master
// playlist marks its variants VIDEO-RANGE=PQ (players that cannot show HDR skip them).
func TestHDRLadder(t *testing.T) {
	e := engine(t)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "854x480", Codec: "libx265", Extra: []string{
		"-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
		"-preset", "ultrafast", "-x265-params", "log-level=error:max-cll=1000,400:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"}})
	dir := t.TempDir()
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + dir + "/hls/", Preset: "hls-abr-hdr"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	master, err := os.ReadFile(filepath.Join(dir, "hls", "master.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(master), "VIDEO-RANGE=PQ"); n == 0 || n != strings.Count(string(master), "EXT-X-STREAM-INF") || results[0].HDR != job.HDRKept {
		t.Errorf("master playlist (result %q):\n%s\nwant every variant VIDEO-RANGE=PQ", results[0].HDR, master)
	}
	if got := colourOf(t, filepath.Join(dir, "hls", "480p", "init.mp4")); !strings.HasPrefix(got, "yuv420p10le,bt2020nc,smpte2084,bt2020") {
		t.Errorf("480p rendition: %s, want HDR10", got)
	}
}

// TestClipReal: a clip of the corpus' file whose first frame is at 10 s (the clock starts
// there: "1s" is a second into it) has the 60 frames of 1-3 s, the first one the input's at 1 s;
// a clip past its 4 s of video is refused (its container claims 14 s). Skipped where the corpus
// is not checked out beside the repository.
func TestClipReal(t *testing.T) {
	in, err := filepath.Abs("../../shared/media/realworld/mp4_bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in); err != nil {
		t.Skip("real-world corpus not found:", err)
	}
	e := engine(t)
	out := filepath.Join(t.TempDir(), "clip.mp4")
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(time.Second), End: job.Duration(3 * time.Second)},
		Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Frames != 60 {
		t.Errorf("%d frames, want 60", results[0].Frames)
	}
	size := strings.Replace(testenv.Probe(t, out, "stream=width,height", "v:0"), ",", ":", 1)
	log := ffmpegLog(t, "-i", out, "-ss", "1", "-i", in, "-lavfi",
		"[0:v]trim=end_frame=1,setpts=PTS-STARTPTS[a];[1:v]trim=end_frame=1,setpts=PTS-STARTPTS,scale="+size+",setsar=1[b];[a][b]psnr", "-f", "null", "-")
	if psnr := lastFloat(t, log, "average:"); psnr < 30 {
		t.Errorf("first frame is not the input's at 1 s: PSNR %.1f dB", psnr)
	}
	_, err = runJob(t, e, &job.Job{Input: "file://" + in, Clip: &job.Clip{Start: job.Duration(5 * time.Second)},
		Outputs: []job.Output{{URL: "file://" + out + ".2.mp4", Preset: "h264-480p"}}}, nil)
	if !errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), "clip.start") {
		t.Errorf("clip from 5 s of 4 s: %v, want refused naming clip.start", err)
	}
}

// TestLoudnessAndOverlayReal: the corpus' rotated phone recording (-28.7 LUFS) comes out at
// -16 LUFS, and a logo lands in the top-left corner of the upright (portrait) picture. Skipped
// where the corpus is not checked out beside the repository.
func TestLoudnessAndOverlayReal(t *testing.T) {
	in, err := filepath.Abs("../../shared/media/realworld/mp4_internal_emulator_transformer_output_270_rotated.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in); err != nil {
		t.Skip("real-world corpus not found:", err)
	}
	e := engine(t)
	dir := t.TempDir()
	logo := filepath.Join(dir, "logo.png")
	ffmpegLog(t, "-v", "error", "-f", "lavfi", "-i", "color=red:s=64x32", "-frames:v", "1", logo)
	loud, marked := filepath.Join(dir, "loud.mp4"), filepath.Join(dir, "logo.mp4")
	results, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + loud, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}, Loudness: &job.Loudness{Target: -16}},
		{URL: "file://" + marked, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}, Overlay: &job.Overlay{URL: "file://" + logo, Position: "top-left", Width: "20%"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := ffmpegLog(t, "-i", loud, "-map", "0:a:0", "-af", "ebur128=peak=true", "-f", "null", "-")
	if i := lastFloat(t, log, "I:"); math.Abs(i+16) > 1 || math.Abs(results[0].Loudness.Input.I+28.7) > 0.5 {
		t.Errorf("output at %.1f LUFS, want -16 ±1 (result %+v)", i, results[0].Loudness)
	}
	if w, h := results[1].Width, results[1].Height; h <= w {
		t.Fatalf("output %dx%d: want the upright portrait picture", w, h)
	}
	// 20% of the width, 10 px in: the logo's centre.
	w := results[1].Width
	b := rawFrame(t, marked, "crop=4:4:"+strconv.Itoa(10+w/10)+":"+strconv.Itoa(10+w/20)+",scale=1:1:flags=area,format=rgb24")
	if b[0] < 180 || b[1] > 80 || b[2] > 80 {
		t.Errorf("top-left logo's centre is rgb(%d,%d,%d), want red", b[0], b[1], b[2])
	}
}

// TestOverlayWithLadder: beside a ladder (one decode split among every video output) the
// overlay output gets its image in the split graph, and the ladder none.
func TestOverlayWithLadder(t *testing.T) {
	e := engine(t)
	dir := t.TempDir()
	logo := filepath.Join(dir, "logo.png")
	ffmpegLog(t, "-v", "error", "-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1", logo)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "854x480"})
	out := filepath.Join(dir, "logo.mp4")
	if _, err := runJob(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + dir + "/hls/", Preset: "hls-abr"},
		{URL: "file://" + out, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}, Overlay: &job.Overlay{URL: "file://" + logo, Position: "top-right", Width: "20%"}},
	}}, nil); err != nil {
		t.Fatal(err)
	}
	corner := func(path string) []byte {
		return rawFrame(t, path, "crop=40:40:iw-60:20,scale=1:1:flags=area,format=rgb24")
	}
	if c := corner(out); c[0] < 180 || c[1] > 80 || c[2] > 80 {
		t.Errorf("overlay output's corner is rgb%v, want red", c[:3])
	}
	ladder := filepath.Join(dir, "hls", "480p")
	segs, _ := filepath.Glob(filepath.Join(ladder, "seg-*.m4s"))
	if len(segs) == 0 {
		t.Fatal("no 480p segments")
	}
	joined := filepath.Join(dir, "480p.mp4")
	data, err := os.ReadFile(filepath.Join(ladder, "init.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(joined, append(data, seg...), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := corner(joined); c[0] > 180 && c[1] < 80 && c[2] < 80 {
		t.Errorf("the ladder's 480p rendition has the logo too (rgb%v)", c[:3])
	}
}
