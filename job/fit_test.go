package job_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// TestFitExprMatchesFitBox: ffmpeg evaluates the fit-in-box rule itself (so a job's argv needs
// no probe); its answer must be the documented rule, FitBox, for every kind of frame.
func TestFitExprMatchesFitBox(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	cases := []struct {
		size, sar string
		dw        int // display width FitBox sees (after SAR)
		bw, bh    int
	}{
		{"1280x720", "1", 1280, 854, 480},
		{"1920x1080", "1", 1920, 1280, 720},
		{"640x360", "1", 640, 854, 480},
		{"641x361", "1", 641, 854, 480},
		{"360x640", "1", 360, 1280, 720},
		{"1080x1920", "1", 1080, 1280, 720},
		{"720x576", "16/15", 768, 1280, 720},
		{"720x480", "32/27", 853, 640, 360},
		{"4000x1000", "1", 4000, 1280, 720},
		{"1440x1080", "1", 1440, 1280, 720},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.size+"_sar"+strings.ReplaceAll(c.sar, "/", ":"), func(t *testing.T) {
			t.Parallel()
			_, h, _ := strings.Cut(c.size, "x")
			ih, err := strconv.Atoi(h)
			if err != nil {
				t.Fatal(err)
			}
			spec := ffmpeg.Spec{Outputs: []ffmpeg.Output{{Container: "nut", Video: &ffmpeg.Video{Codec: "rawvideo", Width: c.bw, Height: c.bh, Fit: true}}}}
			args, err := spec.Args()
			if err != nil {
				t.Fatal(err)
			}
			vf := ""
			for j, a := range args {
				if a == "-vf" {
					vf = args[j+1]
				}
			}
			out := filepath.Join(dir, fmt.Sprintf("%d.nut", i))
			cmd := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=size="+c.size+":duration=0.04,setsar="+c.sar,
				"-vf", vf, "-frames:v", "1", "-c:v", "rawvideo", "-f", "nut", out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0:s=x", out).Output()
			if err != nil {
				t.Fatal(err)
			}
			ww, wh := job.FitBox(c.dw, ih, c.bw, c.bh)
			if got, want := strings.TrimSpace(string(probe)), fmt.Sprintf("%dx%d", ww, wh); got != want {
				t.Errorf("ffmpeg made %s, FitBox says %s", got, want)
			}
		})
	}
}

// TestCascadeMatchesFitBox: a ladder's rungs are planned from the probe and scaled one from the
// other (1080p -> 720p -> 480p -> 360p); each must come out at FitBox of the input, as if scaled
// from it, whatever the input's shape.
func TestCascadeMatchesFitBox(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	presets := presets(t)
	for i, c := range []struct {
		w, h int
		sar  string
		dw   int
	}{
		{1920, 1080, "1:1", 1920}, {1280, 536, "1:1", 1280}, {1080, 1920, "1:1", 1080},
		{720, 576, "16:15", 768}, {1441, 811, "1:1", 1441}, {3840, 1600, "1:1", 3840},
	} {
		t.Run(fmt.Sprintf("%dx%d_sar%s", c.w, c.h, c.sar), func(t *testing.T) {
			t.Parallel()
			j := &job.Job{Input: "/in.mp4", Preset: "hls-abr", Outputs: []job.Output{{URL: "/out/hls"}}}
			probe := &ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{{Type: "video", Width: c.w, Height: c.h, SAR: c.sar}}}
			mp, err := j.PlanMedia(presets, ffmpeg.Input{}, job.Limits{}, probe)
			if err != nil {
				t.Fatal(err)
			}
			args, err := mp.Spec.Args()
			if err != nil {
				t.Fatal(err)
			}
			n := len(mp.Spec.Outputs)
			graph := args[slices.Index(args, "-filter_complex")+1]
			if n > 1 && strings.Count(graph, "split=2") != n-1 {
				t.Fatalf("not a cascade: %s", graph)
			}
			dir := t.TempDir()
			cmd := []string{"-v", "error", "-f", "lavfi", "-i", fmt.Sprintf("color=size=%dx%d:duration=0.04,setsar=%s", c.w, c.h, strings.ReplaceAll(c.sar, ":", "/")), "-filter_complex", graph}
			for k := range n {
				cmd = append(cmd, "-map", fmt.Sprintf("[v%d]", k), "-frames:v", "1", "-c:v", "rawvideo", "-f", "nut", filepath.Join(dir, fmt.Sprintf("%d-%d.nut", i, k)))
			}
			if b, err := exec.Command("ffmpeg", cmd...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			for k, r := range mp.Outputs[0].Renditions {
				probe, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,sample_aspect_ratio", "-of", "csv=p=0:s=x", filepath.Join(dir, fmt.Sprintf("%d-%d.nut", i, k))).Output()
				if err != nil {
					t.Fatal(err)
				}
				ww, wh := job.FitBox(c.dw, c.h, r.Video.Width, r.Video.Height)
				if got, want := strings.TrimSpace(string(probe)), fmt.Sprintf("%dx%dx1:1", ww, wh); got != want {
					t.Errorf("rung %s: ffmpeg made %s, FitBox says %s", r.Name, got, want)
				}
			}
		})
	}
}
