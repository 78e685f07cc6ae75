package e2e

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/pipeline"
)

// BenchmarkPipeThroughput pushes 300 MB of raw video through ffmpeg (a remux: stdin -> nut ->
// output pipe) with the worker's pumps and ring, once with 1 MiB pipes (F_SETPIPE_SZ, as the
// worker runs) and once with the kernel's default 64 KiB, interleaved, and reports the
// throughput of each and their ratio.
func BenchmarkPipeThroughput(b *testing.B) {
	frames := int64(300e6) / (640 * 360 * 3 / 2)
	in := testenv.MakeClip(b, testenv.Clip{Seconds: float64(frames) / 25, Size: "640x360", NoAudio: true,
		Codec: "rawvideo", Container: "nut", Extra: []string{"-frames:v", strconv.FormatInt(frames, 10)}})
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	ring, err := bufpool.New(bufpool.Config{Buffers: 16})
	if err != nil {
		b.Fatal(err)
	}
	runners := map[string]*ffmpeg.Runner{}
	for name, size := range map[string]int{"1MiB": 1 << 20, "64KiB": 64 << 10} {
		if runners[name], err = ffmpeg.New(ffmpeg.Config{PipeSize: size}); err != nil {
			b.Fatal(err)
		}
	}
	var big, small time.Duration
	b.SetBytes(2 * st.Size())
	b.ResetTimer()
	for range b.N {
		big += remux(b, runners["1MiB"], ring, in)
		small += remux(b, runners["64KiB"], ring, in)
	}
	b.StopTimer()
	mbps := func(d time.Duration) float64 { return float64(b.N) * float64(st.Size()) / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(big), "MB/s-1MiB")
	b.ReportMetric(mbps(small), "MB/s-64KiB")
	b.ReportMetric(float64(small)/float64(big), "speedup-1MiB")
	if s := ring.Stats(); s.InUse != 0 {
		b.Errorf("ring not whole: %+v", s)
	}
}

func remux(b *testing.B, r *ffmpeg.Runner, ring *bufpool.Pool, in string) time.Duration {
	b.Helper()
	f, err := os.Open(in)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	start := time.Now()
	ctx := context.Background()
	proc, err := r.Start(ctx, ffmpeg.Spec{Outputs: []ffmpeg.Output{{Container: "nut", Video: &ffmpeg.Video{Codec: "copy"}}}})
	if err != nil {
		b.Fatal(err)
	}
	p := pipeline.New(ctx, ring)
	inCh, outCh := p.Chan(4), p.Chan(4)
	p.Go("source", func(ctx context.Context) error { _, err := pipeline.ReadFrom(ctx, f, ring, inCh); return err })
	p.Go("stdin", func(ctx context.Context) error {
		_, err := pipeline.WriteTo(ctx, inCh, proc.Stdin(), ring)
		_ = proc.Stdin().Close()
		if errors.Is(err, syscall.EPIPE) {
			return nil
		}
		return err
	})
	p.Go("output", func(ctx context.Context) error {
		_, err := pipeline.ReadFrom(ctx, proc.Output(0), ring, outCh)
		return err
	})
	p.Go("sink", func(ctx context.Context) error { _, err := pipeline.WriteTo(ctx, outCh, io.Discard, ring); return err })
	p.Go("progress", func(ctx context.Context) error {
		for range proc.Progress() {
		}
		return nil
	})
	p.Go("ffmpeg", func(ctx context.Context) error { return proc.Wait() })
	if err := p.Wait(); err != nil {
		b.Fatalf("remux: %v: %s", err, proc.StderrTail())
	}
	_ = proc.Close()
	return time.Since(start)
}
