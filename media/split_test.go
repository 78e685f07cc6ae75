package media_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// splitLocally runs a split job without NATS: cut, every chunk as its own task, the audio,
// the stitch. It returns the stitched output and its result.
func splitLocally(t *testing.T, in string, chunk time.Duration) (string, job.OutputResult, *media.Split) {
	t.Helper()
	e := engine(t)
	_, res := reservation(t, e)
	dir := t.TempDir()
	out := filepath.Join(dir, "out.mp4")
	parent := &media.Task{ID: "split", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p"}}}}
	if err := parent.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := e.PrepareSplit(ctx, parent, chunk, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	stitched, err := os.Create(filepath.Join(dir, "video.ts"))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range s.Plan.Chunks {
		src, _, err := s.ChunkInput(i)
		if err != nil {
			t.Fatal(err)
		}
		cin := filepath.Join(dir, fmt.Sprintf("in-%d.ts", i))
		writeAll(t, cin, src)
		_ = src.Close()
		cout := filepath.Join(dir, fmt.Sprintf("out-%d.ts", i))
		task := &media.Task{ID: fmt.Sprintf("split-c%d", i), Attempt: 1, Buffers: res,
			Job:   &job.Job{Input: "file://" + cin, Outputs: []job.Output{{URL: "file://" + cout}}},
			Chunk: &media.ChunkWork{Video: s.Video, Window: c.Window, Frames: c.Frames}}
		cs := time.Now()
		if _, err := e.Run(ctx, task); err != nil {
			t.Fatalf("chunk %d (%+v): %v", i, c, err)
		}
		t.Logf("chunk %d: %d frames in %v", i, c.Frames, time.Since(cs))
		f, err := os.Open(cout)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(stitched, f); err != nil {
			t.Fatal(err)
		}
		_ = f.Close()
	}
	_ = stitched.Close()
	results, err := e.Stitch(ctx, parent, s, stitched.Name())
	if err != nil {
		t.Fatal(err)
	}
	return out, results[0], s
}

func writeAll(t *testing.T, path string, r io.Reader) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, r); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSplitBoundaries: split and stitched, every frame the source decodes to is in the output
// once (none lost or doubled at a boundary), with the source's durations and A/V offset, on
// closed and open GOPs (leading pictures that reference the GOP before), cuts between
// keyframes, and variable frame rate.
func TestSplitBoundaries(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
	}{
		{"closed-gop", []string{"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "50"}},
		{"open-gop", []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "3", "-g", "37", "-x264-params", "open_gop=1:keyint_min=37"}},
		{"long-gop", []string{"-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "300"}},
		{"vfr", []string{"-vf", "setpts='N/25/TB+0.02*sin(N)/TB'", "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "40"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			in := gen(t, dir, "in.mp4", join([]string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=12",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=12"}, c.args, []string{"-c:a", "aac"})...)
			out, res, s := splitLocally(t, in, 3*time.Second)
			if len(s.Plan.Chunks) < 3 {
				t.Fatalf("%d chunks of 3 s in 12 s", len(s.Plan.Chunks))
			}
			t.Logf("chunks: %+v", s.Plan.Chunks)
			sv, _ := spans(t, in)
			ov, oa := spans(t, out)
			if ov.Packets != sv.Packets || res.Frames != sv.Packets {
				t.Errorf("output has %d frames (reported %d), the input %d; chunks %+v", ov.Packets, res.Frames, sv.Packets, s.Plan.Chunks)
			}
			if d := (ov.Duration - sv.Duration).Abs(); d > 50*time.Millisecond {
				t.Errorf("video lasts %v, the input's %v", ov.Duration, sv.Duration)
			}
			if oa == nil || (ov.Start-oa.Start).Abs() > 25*time.Millisecond {
				t.Errorf("A/V offset: video starts at %v, audio %+v", ov.Start, oa)
			}
		})
	}
}
