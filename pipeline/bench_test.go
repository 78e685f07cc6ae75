package pipeline

import (
	"context"
	"encoding/binary"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/transcoder/transcoder/bufpool"
)

// chunkReader returns n full buffers without touching them (the benchmark
// measures the pipeline, not a data source), after start is closed.
type chunkReader struct {
	start <-chan struct{}
	left  int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.start != nil {
		<-r.start
		r.start = nil
	}
	if r.left == 0 {
		return 0, io.EOF
	}
	r.left--
	return len(p), nil
}

// startThree starts source -> forward -> sink on acq, with the channel
// capacities a job would use.
func startThree(acq Acquirer, r io.Reader, w io.Writer) *Pipeline {
	p := New(context.Background(), acq)
	c1, c2 := p.Chan(2), p.Chan(2)
	p.Go("source", func(ctx context.Context) error { _, err := ReadFrom(ctx, r, acq, c1); return err })
	p.Go("forward", func(ctx context.Context) error { return Forward(ctx, c1, c2, acq, nil) })
	p.Go("sink", func(ctx context.Context) error { _, err := WriteTo(ctx, c2, w, acq); return err })
	return p
}

// BenchmarkPipeline moves b.N 1 MiB chunks source -> forward -> sink. Setup
// (slab, goroutines, channels) happens before the timer starts, so allocs/op
// is the steady state.
func BenchmarkPipeline(b *testing.B) {
	pool, err := bufpool.New(bufpool.Config{Buffers: BuffersNeeded([]int{2, 2}, 3)})
	if err != nil {
		b.Fatal(err)
	}
	start := make(chan struct{})
	p := startThree(pool, &chunkReader{start: start, left: b.N}, io.Discard)
	b.SetBytes(bufpool.DefaultBufferSize)
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	if err := p.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if s := pool.Stats(); s.InUse != 0 {
		b.Fatalf("stats %+v", s)
	}
}

// stampReader stamps each chunk with the time it left the source, one chunk
// at a time: the next Read waits until the sink has taken the last chunk, so
// the latency measured is the pipeline's, not queueing behind earlier chunks.
type stampReader struct {
	base time.Time
	next <-chan struct{}
	left int
}

func (r *stampReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	<-r.next
	r.left--
	binary.LittleEndian.PutUint64(p, uint64(time.Since(r.base)))
	return len(p), nil
}

// stampWriter records, per chunk, the time since its stamp.
type stampWriter struct {
	base    time.Time
	next    chan<- struct{}
	samples []int64
}

func (w *stampWriter) Write(p []byte) (int, error) {
	now := int64(time.Since(w.base))
	w.samples = append(w.samples, now-int64(binary.LittleEndian.Uint64(p))) // preallocated: no growth
	w.next <- struct{}{}
	return len(p), nil
}

// BenchmarkChunkLatency reports the latency of a 1 MiB chunk from the source's
// Read returning to the sink's Write, through one forward stage.
func BenchmarkChunkLatency(b *testing.B) {
	pool, err := bufpool.New(bufpool.Config{Buffers: BuffersNeeded([]int{2, 2}, 3)})
	if err != nil {
		b.Fatal(err)
	}
	next := make(chan struct{}, 1)
	next <- struct{}{} // the first chunk goes at once
	base := time.Now()
	w := &stampWriter{base: base, next: next, samples: make([]int64, 0, b.N)}
	p := startThree(pool, &stampReader{base: base, next: next, left: b.N}, w)
	b.SetBytes(bufpool.DefaultBufferSize)
	b.ReportAllocs()
	b.ResetTimer()
	err = p.Wait()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if len(w.samples) != b.N {
		b.Fatalf("%d samples, want %d", len(w.samples), b.N)
	}
	s := w.samples
	slices.Sort(s)
	pct := func(q float64) float64 { return float64(s[min(len(s)-1, int(float64(len(s))*q))]) }
	b.ReportMetric(pct(0.50), "p50-ns")
	b.ReportMetric(pct(0.99), "p99-ns")
	b.ReportMetric(pct(0.999), "p999-ns")
}
