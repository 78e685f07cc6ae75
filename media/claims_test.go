package media_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

func explainTask(t *testing.T, e *media.Engine, in string) (*media.Explanation, error) {
	t.Helper()
	task := &media.Task{ID: "claims", Attempt: 1, Job: &job.Job{Input: "file://" + in, Preset: "h264-480p",
		Outputs: []job.Output{{URL: "file://" + filepath.Join(t.TempDir(), "out.mp4")}}}}
	if err := task.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	return e.Explain(context.Background(), task)
}

func ffmpegGen(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

// TestHeaderClaimsMeasured: the limit binds on what the input holds. A valid 1 s fragmented
// mp4 whose header says 39 h is described as 1 s long; a 13 h timestamp gap is still refused,
// by its packets, quickly.
func TestHeaderClaimsMeasured(t *testing.T) {
	t.Parallel()
	e := engine(t)
	ex, err := explainTask(t, e, testenv.Realworld(t, "mp4_sample_fragmented.mp4"))
	if err != nil {
		t.Fatalf("fragmented mp4: %v", err)
	}
	if d := ex.Probe.Duration; d < 900*time.Millisecond || d > 1100*time.Millisecond {
		t.Errorf("fragmented mp4: duration %s; want about 1 s", d)
	}
	for _, s := range ex.Probe.Streams {
		if s.Duration > 1100*time.Millisecond {
			t.Errorf("fragmented mp4: stream %d still claims %s", s.Index, s.Duration)
		}
	}

	gap := filepath.Join(t.TempDir(), "gap.mkv")
	ffmpegGen(t, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-vf", "setpts='if(gte(N,10),PTS+46800/TB,PTS)'", "-c:v", "libx264", "-preset", "ultrafast", gap)
	start := time.Now()
	_, err = explainTask(t, e, gap)
	if !errors.Is(err, job.ErrUnsupportedMedia) || !strings.Contains(err.Error(), "13h0m2s long, more than the limit of 12h0m0s") {
		t.Errorf("gap: %v; want refused as 13h0m2s long", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gap refused in %s", took)
	}
}

// TestMidGOPCaptureDescribed: a broadcast capture cut mid-GOP, at 188-byte packet boundary,
// whose first keyframe is over 5 MB in (ffmpeg's default probe size): ffprobe finds the
// stream's size at that keyframe instead of reporting none ("video stream has no dimensions").
func TestMidGOPCaptureDescribed(t *testing.T) {
	t.Parallel()
	e := engine(t)
	// Noise makes every frame large: the second keyframe (4 s in) is about 7.5 MB in.
	capture := midGOPCapture(t, 10, "testsrc2=d=5:s=320x180:r=25,noise=alls=40:allf=t", "-qp", "12", "-g", "100") // 0.5 s in
	ex, err := explainTask(t, e, capture)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if v, ok := ex.Probe.Video(); !ok || v.Width != 320 || v.Height != 180 {
		t.Errorf("capture: video %+v; want 320x180", v)
	}
}

// TestMidGOPCaptureSkipped: a broadcast capture that starts mid-GOP is transcoded from its
// first keyframe on, and the output's result says how many frames before it were skipped.
func TestMidGOPCaptureSkipped(t *testing.T) {
	t.Parallel()
	e := engine(t)
	capture := midGOPCapture(t, 8, "testsrc2=d=6:s=320x180:r=25", "-g", "50") // 0.75 s in
	_, results, err := runFile(t, e, capture)
	if err != nil {
		t.Fatalf("capture refused: %v", err)
	}
	src, _ := spans(t, capture)
	if r := results[0]; r.SkippedFrames == 0 || r.Frames+r.SkippedFrames != src.Packets {
		t.Errorf("result: %d frames, %d skipped; the capture has %d: want the frames before the first keyframe counted as skipped", r.Frames, r.SkippedFrames, src.Packets)
	}
}

// midGOPCapture makes an MPEG-TS of video (a lavfi source, x264 with x264Args) and 48 kHz audio
// and cuts it at the 188-byte packet boundary 1/part of the way in: a capture that starts
// mid-GOP.
func midGOPCapture(t *testing.T, part int, video string, x264Args ...string) string {
	t.Helper()
	dir := t.TempDir()
	full := filepath.Join(dir, "full.ts")
	args := []string{"-f", "lavfi", "-i", video, "-f", "lavfi", "-i", "sine=d=6:sample_rate=48000", "-shortest", "-c:v", "libx264", "-preset", "ultrafast"}
	args = append(append(args, x264Args...), "-c:a", "aac", "-f", "mpegts", full)
	ffmpegGen(t, args...)
	b, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	capture := filepath.Join(dir, "capture.ts")
	if err := os.WriteFile(capture, b[len(b)/188/part*188:], 0o644); err != nil {
		t.Fatal(err)
	}
	return capture
}
