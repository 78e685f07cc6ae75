package media_test

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// corpus is the real-world media beside the project (../shared/media/realworld).
func corpus(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "shared", "media", "realworld", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("real-world corpus not here: %v", err)
	}
	return p
}

// runFile runs one h264-480p output of in through the media core.
func runFile(t *testing.T, e *media.Engine, in string) (string, []job.OutputResult, error) {
	t.Helper()
	_, res := reservation(t, e)
	out := filepath.Join(t.TempDir(), "out.mp4")
	task := &media.Task{ID: "rw", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + out, Preset: "h264-480p"},
	}}}
	if err := task.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	results, err := e.Run(context.Background(), task)
	return out, results, err
}

// reference is what a user of the plain ffmpeg CLI gets: a plain mp4 file.
func reference(t *testing.T, in string) string {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref.mp4")
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-i", in, "-map", "0:V:0?", "-map", "0:a:0?",
		"-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-ac", "2", ref)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference: %v: %s", err, out)
	}
	return ref
}

func spans(t *testing.T, path string) (v, a *ffmpeg.StreamSpan) {
	t.Helper()
	runner, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := runner.MeasureStreams(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ss {
		switch {
		case ss[i].Type == "video" && v == nil:
			v = &ss[i]
		case ss[i].Type == "audio" && a == nil:
			a = &ss[i]
		}
	}
	return v, a
}

// TestLipSyncAgainstCLI: on real files (B-frames, edit lists, start offsets, a TS capture) the
// output's streams start, last and sit against each other as the plain ffmpeg CLI's do, within
// one audio frame, with every frame kept. Fragmented outputs started the video one encoder
// reorder delay late and carried the audio priming (+67 ms at 30 fps, +160 ms at 12.5 fps).
func TestLipSyncAgainstCLI(t *testing.T) {
	e := engine(t)
	for _, name := range []string{
		"mp4_bt601.mp4",                                            // B-frames: the reorder delay
		"mp4_sample_12_5fps_720p_1s.mp4",                           // 12.5 fps: a longer delay
		"mp4_edit_list_positive_shift.mp4",                         // the video starts 1 s after the audio
		"mp4_bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4", // starts at 10 s
		"ts_bbb_2500ms.ts",                                         // a broadcast TS: start offset, a gap in the video
	} {
		t.Run(name, func(t *testing.T) {
			in := corpus(t, name)
			out, results, err := runFile(t, e, in)
			if err != nil {
				t.Fatal(err)
			}
			ov, oa := spans(t, out)
			rv, ra := spans(t, reference(t, in))
			if ov == nil || rv == nil || (oa == nil) != (ra == nil) {
				t.Fatalf("streams: ours %v %v, reference %v %v", ov, oa, rv, ra)
			}
			near := func(what string, got, want, tol time.Duration) {
				if (got - want).Abs() > tol {
					t.Errorf("%s %.3fs, the CLI's %.3fs", what, got.Seconds(), want.Seconds())
				}
			}
			frame := ov.Duration / time.Duration(max(1, ov.Packets))
			near("video duration", ov.Duration, rv.Duration, max(frame*3/2, 25*time.Millisecond))
			if oa != nil {
				near("audio duration", oa.Duration, ra.Duration, 25*time.Millisecond)
				near("A/V offset", ov.Start-oa.Start, rv.Start-ra.Start, 25*time.Millisecond)
				if off := results[0].AVOffset; off == nil || math.Abs(*off-(ov.Start-oa.Start).Seconds()) > 0.0015 {
					t.Errorf("the result reports A/V offset %v, the file has %.3f", off, (ov.Start - oa.Start).Seconds())
				}
			}
			if results[0].Frames != ov.Packets || len(results[0].Streams) == 0 {
				t.Errorf("result %+v, the file has %d frames", results[0], ov.Packets)
			}
		})
	}
}

// TestNothingToDecode: an init segment alone (streams declared, no sample) is invalid_input,
// not a 0-second success.
func TestNothingToDecode(t *testing.T) {
	e := engine(t)
	_, _, err := runFile(t, e, corpus(t, "hls_multi-segment_init.mp4"))
	var je *job.Error
	if !errors.As(err, &je) || je.Class != job.ClassInvalidInput {
		t.Fatalf("err %v, want invalid_input", err)
	}
}

// TestKeepsEveryFrame: a variable-rate clip whose frames come in bursts 5 ms apart (faster
// than its nominal 30 fps) keeps every frame: -fps_mode vfr dropped a third of them.
func TestKeepsEveryFrame(t *testing.T) {
	in := filepath.Join(t.TempDir(), "burst.mp4")
	setpts := "setpts='if(lt(N,60),N/30,2+floor((N-60)/2)/30+mod(N-60,2)*0.005)/TB'"
	cmd := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
		"-frames:v", "360", "-vf", setpts, "-fps_mode", "passthrough", "-enc_time_base:v", "1/90000",
		"-video_track_timescale", "90000", "-c:v", "libx264", "-preset", "ultrafast", in)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make the clip: %v: %s", err, out)
	}
	e := engine(t)
	out, results, err := runFile(t, e, in)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := spans(t, out); v == nil || v.Packets != 360 || results[0].Frames != 360 {
		t.Fatalf("frames: %+v (result %d), want all 360", v, results[0].Frames)
	}
}
