package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
)

// BenchmarkTranscodeOverhead runs the same input with the same ffmpeg arguments (a) by the
// ffmpeg CLI reading the input file and writing its output, and (b) as a job through NATS, the
// worker, the ring and pipes, interleaved. It reports the wall-time ratio b/a (medians) and the
// time-to-first-output-byte difference b-a. (a)'s output goes to a pipe that is drained into a
// file, so its first byte can be timed; (b) is timed from the publish to the succeeded event,
// so it includes dispatch, the probe, verification and the rename. cpu-ratio-vs-ffmpeg is the
// same ratio of CPU time (the ffmpeg and ffprobe processes, and the worker's own): on a shared
// machine it moves far less from run to run than wall time does.
func BenchmarkTranscodeOverhead(b *testing.B) {
	cases := []struct {
		name    string
		seconds float64
		preset  string
		output  job.Output
	}{
		{"x264-480p", 30, "h264-480p", job.Output{}},
		{"x264-720p", 30, "h264-720p", job.Output{}},
		// Every decoded frame crosses the ring: 10 s of 720p is 350 MB of raw video.
		{"raw", 10, "", job.Output{Container: "nut", Video: &job.Video{Codec: "raw"}, Audio: &job.Audio{Codec: "pcm"}}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			in := testenv.MakeClip(b, testenv.Clip{Seconds: c.seconds, Size: "1280x720", Rate: 25})
			r := newRig(b, nil, 1)
			dir := b.TempDir()
			ext := ".mp4"
			if c.output.Container == "nut" {
				ext = ".nut"
			}
			mkJob := func(name string) *job.Job {
				o := c.output
				o.URL = fileURL(filepath.Join(dir, name+ext))
				return &job.Job{Input: fileURL(in), Preset: c.preset, Outputs: []job.Output{o}}
			}
			ex, err := explain(b, r, mkJob("explain"))
			if err != nil {
				b.Fatal(err)
			}
			plain, err := plainArgs(ex.Argv, in)
			if err != nil {
				b.Fatal(err)
			}
			var wallA, wallB, ttfbA, ttfbB, cpuA, cpuB []time.Duration
			b.ResetTimer()
			for i := range b.N {
				c0 := cpuTime(b)
				wa, fa := runPlain(b, plain, filepath.Join(dir, fmt.Sprintf("plain-%d%s", i, ext)))
				c1 := cpuTime(b)
				wallA, ttfbA, cpuA = append(wallA, wa), append(ttfbA, fa), append(cpuA, c1.children-c0.children)

				start := time.Now()
				id, done := r.submit(b, mkJob(fmt.Sprintf("job-%d", i)))
				wait(b, done)
				wallB = append(wallB, time.Since(start))
				c2 := cpuTime(b)
				cpuB = append(cpuB, c2.children-c1.children+c2.self-c1.self)
				_, first := r.milestones(id)
				ttfbB = append(ttfbB, first.Sub(start))
				_ = os.Remove(filepath.Join(dir, fmt.Sprintf("plain-%d%s", i, ext)))
				_ = os.Remove(filepath.Join(dir, fmt.Sprintf("job-%d%s", i, ext)))
			}
			b.StopTimer()
			ma, mb := median(wallA), median(wallB)
			b.ReportMetric(float64(mb)/float64(ma), "ratio-vs-ffmpeg")
			b.ReportMetric(float64(median(cpuB))/float64(median(cpuA)), "cpu-ratio-vs-ffmpeg")
			b.ReportMetric(float64(median(ttfbB)-median(ttfbA))/1e6, "ttfb-delta-ms")
			b.ReportMetric(float64(ma)/1e6, "ffmpeg-ms")
			b.ReportMetric(float64(mb)/1e6, "worker-ms")
			b.ReportMetric(float64(mb-ma)/1e6, "overhead-ms")
		})
	}
}

// plainArgs turns the worker's argv into the same command on files: the input file instead of
// pipe:0 (with the file protocol allowed), the output on stdout, no progress pipe.
func plainArgs(argv []string, in string) ([]string, error) {
	var out []string
	for i := 0; i < len(argv); i++ {
		switch a := argv[i]; {
		case a == "-progress":
			i++
		case a == "-protocol_whitelist":
			out = append(out, a, "file,pipe")
			i++
		case a == "-i" && i+1 < len(argv) && argv[i+1] == "pipe:0":
			out = append(out, "-i", "file:"+in)
			i++
		case a == "pipe:3":
			out = append(out, "pipe:1")
		case strings.HasPrefix(a, "file:") && i > 0 && argv[i-1] == "-y":
			out = append(out, outFile) // an mp4 written as a file: the plain run writes its own

		default:
			out = append(out, a)
		}
	}
	return out, nil
}

// outFile stands for the output file in plainArgs' result; runPlain puts its path there.
const outFile = "OUTPUT_FILE"

// runPlain runs ffmpeg with args, drains its stdout into path, and returns the wall time and the
// time to the first output byte. An output written as a file (an mp4, index in front) is usable
// only once ffmpeg exits: its first byte counts then.
func runPlain(b *testing.B, args []string, path string) (wall, ttfb time.Duration) {
	b.Helper()
	if i := slices.Index(args, outFile); i >= 0 {
		args = slices.Clone(args)
		args[i] = "file:" + path
		start := time.Now()
		if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
			b.Fatalf("plain ffmpeg: %v: %s", err, out)
		}
		return time.Since(start), time.Since(start)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	cmd := exec.Command("ffmpeg", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stderr := &tail{}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		n, err := stdout.Read(buf)
		if n > 0 {
			if ttfb == 0 {
				ttfb = time.Since(start)
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				b.Fatal(werr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("plain ffmpeg: %v: %s", err, stderr.b)
	}
	return time.Since(start), ttfb
}

// cpu is the CPU time (user and system) of this process and of its children that have ended.
type cpu struct{ self, children time.Duration }

func cpuTime(b *testing.B) cpu {
	b.Helper()
	var self, kids syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids); err != nil {
		b.Fatal(err)
	}
	t := func(r *syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return cpu{self: t(&self), children: t(&kids)}
}

type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}
