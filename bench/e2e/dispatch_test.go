package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// fakeTools writes an ffprobe that describes any input (and output) as a small video and an
// "ffmpeg" that copies its stdin to its first output pipe: a trivial stage in ffmpeg's place, so
// dispatch is what is measured.
func fakeTools(b testing.TB) *ffmpeg.Runner {
	b.Helper()
	dir := b.TempDir()
	// The output's verification reads its packets (-count_packets): one video frame.
	probe := `#!/bin/sh
cat >/dev/null 2>&1
case "$*" in
*-count_packets*) echo 'stream|index=0|codec_type=video|width=320|height=240|start_time=0.000000|duration=0.040000|nb_read_packets=1' ;;
*) echo '{"format":{"format_name":"mov","duration":"0"},"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":320,"height":240}]}' ;;
esac
`
	mpeg := "#!/bin/sh\nexec cat >&3\n"
	for name, body := range map[string]string{"ffprobe": probe, "ffmpeg": mpeg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	r, err := ffmpeg.New(ffmpeg.Config{FFmpeg: filepath.Join(dir, "ffmpeg"), FFprobe: filepath.Join(dir, "ffprobe")})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkDispatch measures what the worker adds around ffmpeg for tiny jobs: publish to
// started-event latency (one job at a time), and jobs per second through one worker with two
// slots when b.N jobs are queued at once.
func BenchmarkDispatch(b *testing.B) {
	r := newRig(b, fakeTools(b), 2)
	dir := b.TempDir()
	in := filepath.Join(dir, "tiny.mp4")
	if err := os.WriteFile(in, make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	mk := func(i int) *job.Job {
		// mkv streams out of its pipe (an mp4 is written by ffmpeg to a file, which the fake
		// does not do).
		return &job.Job{Input: fileURL(in), Preset: "h264-480p", Outputs: []job.Output{{URL: fileURL(filepath.Join(dir, fmt.Sprintf("o%d.mkv", i))), Container: "mkv"}}}
	}
	// Warm up the consumer and the state bucket.
	_, done := r.submit(b, mk(-1))
	wait(b, done)

	b.ResetTimer()
	lat := make([]time.Duration, 0, b.N)
	for i := range b.N {
		start := time.Now()
		id, done := r.submit(b, mk(i))
		wait(b, done)
		started, _ := r.milestones(id)
		lat = append(lat, started.Sub(start))
	}
	b.StopTimer()
	s := sortDurations(lat)
	b.ReportMetric(float64(percentile(s, 50).Microseconds()), "p50-started-us")
	b.ReportMetric(float64(percentile(s, 99).Microseconds()), "p99-started-us")

	chans := make([]<-chan job.Event, b.N)
	start := time.Now()
	for i := range b.N {
		_, chans[i] = r.submit(b, mk(b.N+i))
	}
	for _, ch := range chans {
		wait(b, ch)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
}
