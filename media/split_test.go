package media_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// splitLocally runs a split job without NATS: cut, every chunk as its own task, the audio,
// the stitch. It returns the stitched output and its result.
func splitLocally(t *testing.T, in string, chunk time.Duration) (string, job.OutputResult, *media.Split) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.mp4")
	res, s := splitOutputLocally(t, in, job.Output{URL: "file://" + out, Preset: "h264-480p"}, chunk)
	return out, res, s
}

// splitOutputLocally is splitLocally for any output.
func splitOutputLocally(t *testing.T, in string, o job.Output, chunk time.Duration) (job.OutputResult, *media.Split) {
	t.Helper()
	e := engine(t)
	_, res := reservation(t, e)
	dir := t.TempDir()
	parent := &media.Task{ID: "split", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{o}}}
	if err := parent.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := e.PrepareSplit(ctx, parent, media.SplitOptions{Chunk: chunk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var videos []string
	var stitched []*os.File
	for k := range s.Videos {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("video-%d.ts", k)))
		if err != nil {
			t.Fatal(err)
		}
		videos, stitched = append(videos, f.Name()), append(stitched, f)
	}
	for i, c := range s.Plan.Chunks {
		src, _, err := s.ChunkInput(i)
		if err != nil {
			t.Fatal(err)
		}
		cin := filepath.Join(dir, fmt.Sprintf("in-%d.ts", i))
		writeAll(t, cin, src)
		_ = src.Close()
		task := &media.Task{ID: fmt.Sprintf("split-c%d", i), Attempt: 1, Buffers: res,
			Job:   &job.Job{Input: "file://" + cin},
			Chunk: &media.ChunkWork{Videos: s.Videos, Window: c.Window, Frames: c.Frames}}
		for k := range s.Videos {
			task.Job.Outputs = append(task.Job.Outputs, job.Output{URL: "file://" + filepath.Join(dir, fmt.Sprintf("out-%d-%d.ts", i, k))})
		}
		if _, err := e.Run(ctx, task); err != nil {
			t.Fatalf("chunk %d (%+v): %v", i, c, err)
		}
		for k := range s.Videos {
			f, err := os.Open(filepath.Join(dir, fmt.Sprintf("out-%d-%d.ts", i, k)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(stitched[k], f); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
		}
	}
	for _, f := range stitched {
		_ = f.Close()
	}
	results, err := e.Stitch(ctx, parent, s, videos)
	if err != nil {
		t.Fatal(err)
	}
	return results[0], s
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
			in := gen(t, dir, "in.mp4", join([]string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=20",
				"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20"}, c.args, []string{"-c:a", "aac"})...)
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

// ladderRenditions reads an HLS ladder's rendition directories: each one's segment durations
// (EXTINF) and how many video or audio packets its init segment and segments hold.
func ladderRenditions(t *testing.T, dir string) map[string]struct {
	durations string
	packets   int
} {
	t.Helper()
	out := map[string]struct {
		durations string
		packets   int
	}{}
	lists, _ := filepath.Glob(filepath.Join(dir, "*", "index.m3u8"))
	for _, pl := range lists {
		b, err := os.ReadFile(pl)
		if err != nil {
			t.Fatal(err)
		}
		rdir := filepath.Dir(pl)
		whole, err := os.ReadFile(filepath.Join(rdir, "init.mp4"))
		if err != nil {
			t.Fatal(err)
		}
		var durs []string
		for _, line := range strings.Split(string(b), "\n") {
			if d, ok := strings.CutPrefix(line, "#EXTINF:"); ok {
				durs = append(durs, strings.TrimSuffix(d, ","))
			} else if line != "" && !strings.HasPrefix(line, "#") {
				seg, err := os.ReadFile(filepath.Join(rdir, line))
				if err != nil {
					t.Fatal(err)
				}
				whole = append(whole, seg...)
			}
		}
		cat := filepath.Join(t.TempDir(), "whole.mp4")
		if err := os.WriteFile(cat, whole, 0o644); err != nil {
			t.Fatal(err)
		}
		v, a := spans(t, cat)
		n := 0
		if v != nil {
			n = v.Packets
		} else if a != nil {
			n = a.Packets
		}
		out[filepath.Base(rdir)] = struct {
			durations string
			packets   int
		}{strings.Join(durs, " "), n}
	}
	return out
}

// TestSplitLadder: a ladder split in chunks has every rung, each with every frame of the input,
// and segments of the same durations as the whole run's, in every rung.
func TestSplitLadder(t *testing.T) {
	dir := t.TempDir()
	in := gen(t, dir, "in.mp4", "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=20",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=20",
		"-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "60", "-c:a", "aac")
	e := engine(t)
	_, res := reservation(t, e)
	wholeDir, splitDir := filepath.Join(dir, "whole"), filepath.Join(dir, "split")
	whole := &media.Task{ID: "whole", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + wholeDir, Preset: "hls-abr"}}}}
	if err := whole.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(context.Background(), whole); err != nil {
		t.Fatal(err)
	}
	res2, s := splitOutputLocally(t, in, job.Output{URL: "file://" + splitDir, Preset: "hls-abr"}, 8*time.Second)
	if res2.Kind != job.ContainerHLS || len(s.Videos) < 2 || len(s.Plan.Chunks) < 2 {
		t.Fatalf("result %+v, %d videos, %d chunks", res2, len(s.Videos), len(s.Plan.Chunks))
	}
	sv, _ := spans(t, in)
	w, sp := ladderRenditions(t, wholeDir), ladderRenditions(t, splitDir)
	if len(sp) != len(w) || len(sp) != len(s.Videos)+1 {
		t.Fatalf("renditions: whole %v, split %v", w, sp)
	}
	for name, r := range sp {
		if !sameDurations(r.durations, w[name].durations) {
			t.Errorf("%s: segments %s, whole run %s", name, r.durations, w[name].durations)
		}
		if name != "audio" && r.packets != sv.Packets {
			t.Errorf("%s: %d frames, the input %d", name, r.packets, sv.Packets)
		}
	}
}

// sameDurations compares two lists of segment durations within 2 ms each (the audio, encoded
// apart from the video, may end a sample or two differently).
func sameDurations(a, b string) bool {
	x, y := strings.Fields(a), strings.Fields(b)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		p, _ := strconv.ParseFloat(x[i], 64)
		q, _ := strconv.ParseFloat(y[i], 64)
		if math.Abs(p-q) > 0.002 {
			return false
		}
	}
	return true
}
