package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
)

// BenchmarkLadder runs the hls-abr ladder (1080p, 720p, 480p, 360p and the audio) of a 1080p
// input three ways, interleaved in each iteration:
//
//   - one-cli: one ffmpeg CLI run with the worker's own argv (the same split filter graph and
//     encoders) writing the five CMAF streams to files: the floor;
//   - four-cli: four separate ffmpeg runs, one rendition each (the first also encodes the
//     audio), one after the other: what a worker without one-decode ladders would do;
//   - worker: the hls-abr job through NATS, the worker, the ring, the segmenter and the
//     playlists, from publish to the succeeded event.
//
// It reports the worker's wall time as ratios of both (medians).
func BenchmarkLadder(b *testing.B) {
	secs := 6.0
	if s, err := strconv.ParseFloat(os.Getenv("LADDER_SECONDS"), 64); err == nil && s > 0 {
		secs = s
	}
	// Camera-like: grain, High profile with B-frames and CABAC at ~15 Mb/s, which costs what a
	// phone's or a camera's 1080p costs to decode (testsrc2 at ultrafast is nearly free).
	in := testenv.MakeClip(b, testenv.Clip{Seconds: secs, Size: "1920x1080", Rate: 25,
		Extra: []string{"-vf", "noise=alls=10:allf=t", "-preset", "fast", "-profile:v", "high", "-b:v", "15M", "-maxrate", "18M", "-bufsize", "30M"}})
	r := newRig(b, nil, 1)
	dir := b.TempDir()
	mkJob := func(name string) *job.Job {
		return &job.Job{Input: fileURL(in), Preset: "hls-abr", Outputs: []job.Output{{URL: fileURL(filepath.Join(dir, name))}}}
	}
	ex, err := explain(b, r, mkJob("explain"))
	if err != nil {
		b.Fatal(err)
	}
	if n := len(ex.Plan.Spec.Outputs); n != 5 {
		b.Fatalf("the ladder has %d outputs, want 4 renditions and the audio", n)
	}
	one := filesArgs(ex.Argv, in, dir, "one")
	var four [][]string
	for i := range 4 {
		outs := []ffmpeg.Output{ex.Plan.Spec.Outputs[i]}
		if i == 0 {
			outs = append(outs, ex.Plan.Spec.Outputs[4])
		}
		argv, err := r.runner.Args(ffmpeg.Spec{Input: ex.Plan.Spec.Input, MaxPixels: ex.Plan.Spec.MaxPixels, Outputs: outs})
		if err != nil {
			b.Fatal(err)
		}
		four = append(four, filesArgs(argv, in, dir, fmt.Sprintf("four-%d", i)))
	}
	var wallOne, wallFour, wallWorker []time.Duration
	b.ResetTimer()
	for i := range b.N {
		wallOne = append(wallOne, runFFmpeg(b, one))
		var sum time.Duration
		for _, a := range four {
			sum += runFFmpeg(b, a)
		}
		wallFour = append(wallFour, sum)

		start := time.Now()
		_, done := r.submit(b, mkJob(fmt.Sprintf("job-%d", i)))
		if ev := wait(b, done); ev.Type != job.EventSucceeded {
			b.Fatalf("ladder job %s: %+v", ev.Type, ev.Error)
		}
		wallWorker = append(wallWorker, time.Since(start))
		_ = os.RemoveAll(filepath.Join(dir, fmt.Sprintf("job-%d", i)))
	}
	b.StopTimer()
	mo, mf, mw := median(wallOne), median(wallFour), median(wallWorker)
	b.ReportMetric(float64(mw)/float64(mo), "ratio-vs-one-cli")
	b.ReportMetric(float64(mw)/float64(mf), "ratio-vs-four-cli")
	b.ReportMetric(float64(mo)/1e6, "one-cli-ms")
	b.ReportMetric(float64(mf)/1e6, "four-cli-ms")
	b.ReportMetric(float64(mw)/1e6, "worker-ms")
}

// filesArgs turns a worker argv into the same command on files: the input file for pipe:0,
// output i to DIR/NAME-i.mp4 for pipe:3+i, no progress pipe.
func filesArgs(argv []string, in, dir, name string) []string {
	var out []string
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "-progress":
			i++
		case a == "-protocol_whitelist":
			out = append(out, a, "file,pipe")
			i++
		case a == "-i" && i+1 < len(argv) && argv[i+1] == "pipe:0":
			out = append(out, "-i", "file:"+in)
			i++
		case strings.HasPrefix(a, "pipe:") && i == len(argv)-1 || strings.HasPrefix(a, "pipe:") && strings.HasPrefix(argv[i+1], "-"):
			n, _ := strconv.Atoi(a[len("pipe:"):])
			out = append(out, "-y", filepath.Join(dir, fmt.Sprintf("%s-%d.mp4", name, n-3)))
		default:
			out = append(out, a)
		}
	}
	return out
}

func runFFmpeg(b *testing.B, args []string) time.Duration {
	b.Helper()
	start := time.Now()
	if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}
