package ffmpeg

import (
	"io"
	"os"
	"testing"
	"time"
)

// BenchmarkSandboxStartup: what the sandbox adds to a child's start, against the same child
// unconfined, the two alternating in one loop so that the machine's drift hits both alike:
// ffmpeg -version, and a tiny encode (0.2 s of 160x120 from stdin to a pipe). Reports the mean
// ms of each and the difference.
func BenchmarkSandboxStartup(b *testing.B) {
	plain, boxed := setup(b), sandboxed(b, Config{})
	clip := boxed.mediaOf(b, "tiny.mp4", "160x120", "0.2", "-movflags", "+faststart")
	in, err := os.ReadFile(clip)
	if err != nil {
		b.Fatal(err)
	}
	spec := Spec{Outputs: []Output{{Container: "mpegts", Video: &Video{Codec: "libx264", Preset: "ultrafast"}, Audio: &Audio{Codec: "aac"}}}}
	for _, c := range []struct {
		name string
		run  func(*Runner)
	}{
		{"version", func(r *Runner) {
			if _, err := r.Version(b.Context()); err != nil {
				b.Fatal(err)
			}
		}},
		{"encode", func(r *Runner) { encodeOnce(b, r, spec, in) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			var tp, ts time.Duration
			for range b.N {
				start := time.Now()
				c.run(plain.r)
				mid := time.Now()
				c.run(boxed.r)
				tp, ts = tp+mid.Sub(start), ts+time.Since(mid)
			}
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(ms(tp), "plain-ms")
			b.ReportMetric(ms(ts), "sandboxed-ms")
			b.ReportMetric(ms(ts-tp), "overhead-ms")
		})
	}
}

// encodeOnce runs spec with in on stdin, its output discarded.
func encodeOnce(b *testing.B, r *Runner, spec Spec, in []byte) {
	p, err := r.Start(b.Context(), spec)
	if err != nil {
		b.Fatal(err)
	}
	fed := feed(p.Stdin(), in, true)
	go func() { _, _ = io.Copy(io.Discard, p.Output(0)) }()
	for range p.Progress() {
	}
	if err := p.Wait(); err != nil {
		b.Fatal(err)
	}
	if err := <-fed; err != nil {
		b.Fatal(err)
	}
	_ = p.Close()
}
