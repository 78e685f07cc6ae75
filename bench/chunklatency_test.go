package bench

// BenchmarkChunkLatency: the claim under test is that a fixed ring with
// blocking backpressure beats allocation and pools on tail latency and memory.
//
// Every variant moves 1 MiB chunks through the same four-stage pipeline,
// supervised by the project's pipeline package, with the same channels:
//
//	source ──chan(4)──▶ decode ──chan(4)──▶ transform ──chan(4)──▶ sink
//
//   - source: takes the next chunk carrier, timestamps it, acquires 1 MiB
//     (this is where the variants differ), and fills it: a full 1 MiB copy
//     from a source slab, which is what a read(2) of a file or socket into the
//     buffer costs (the kernel copies into it). Every variant fills exactly the
//     same 1 MiB.
//   - decode, transform: read one byte per 4 KiB page (a consumer touching
//     the data) and hand the chunk on.
//   - sink: copies the 1 MiB out to a sink slab (a write(2) to ffmpeg's stdin
//     or an output file copies it out of the buffer), releases the memory, and
//     records the chunk's latency.
//
// Latency runs from before the acquire (so a blocked ring Acquire, the
// backpressure, counts) to right after the release. The timestamp travels in
// a carrier struct preallocated before the timer; carriers are recycled
// through a channel holding as many as the pipeline can hold at once, so
// taking one never blocks. The histogram is an HDR histogram created before
// the timer; recording into it does not allocate.
//
// The variants, acquire / release:
//
//   - ring: bufpool.Pool.Acquire (blocks while all ringBuffers are out) /
//     Release. The ring has 8 buffers while the pipeline can hold 16 chunks
//     (4 in each channel plus one in each stage's hand), so, as in the worker,
//     the ring and not the channel depth bounds the memory in flight and
//     Acquire really blocks. The other variants are bounded only by the
//     channels: nothing else in them pushes back. Part of the ring's latency
//     advantage is this: fewer chunks in flight means less queueing (Little's
//     law); the rest is allocation, zeroing, page faults and GC work it does
//     not cause. Both are what the claim is about.
//   - make: make([]byte, 1 MiB) / drop it.
//   - syncpool: a sync.Pool of *[]byte of 1 MiB (New makes one) / Put.
//   - bytebufferpool: bytebufferpool.Get, grown to 1 MiB in one allocation
//     when its capacity is smaller / bytebufferpool.Put.
//
// Every run first moves warmupChunks chunks through a pipeline of its own,
// outside the timer and unrecorded, so each variant is measured in its
// steady state (the ring's slab and the pools' buffers touched, the heap
// grown); the timed run then moves exactly b.N chunks, so every variant has
// the same number of samples with -benchtime Nx.
//
// Conditions:
//
//   - quiet: nothing else runs.
//   - gcpressure: a goroutine keeps a live heap of ~50 MiB of small
//     pointer-rich nodes (linked lists with skip pointers) and replaces whole
//     lists of it continuously, so GC cycles with real mark work happen
//     during every variant's run. Its allocations are not the pipeline's:
//     the churner counts them exactly (it only allocates while holding a
//     mutex that the snapshots take), and allocs/op and B/op are reported as
//     the process total minus the churner's, with the churner's own shown as
//     churn-allocs/op. In quiet, allocs/op and B/op are the testing
//     package's own.
//
// Metrics: p50-ns, p99-ns, p999-ns, max-ns (from the histogram), gc/1k-chunks
// (GC cycles completed during the timed run per 1000 chunks), allocs/op and
// B/op. With BENCH_OUT=dir each run also writes its latency distribution to
// dir/latency-<condition>-<variant>.csv; the runs of a sub-benchmark grow in
// b.N, so the file left is that of the final, largest run.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/bytebufferpool"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/pipeline"
)

const (
	chunkSize    = 1 << 20 // one media buffer
	ringBuffers  = 8       // ring size: below what the pipeline can hold, so Acquire blocks
	stageChanCap = 4       // capacity of each of the three channels
	pipeStages   = 4       // source, decode, transform, sink
	warmupChunks = 64      // moved before the timer, unrecorded
	pageSize     = 4096

	// maxInFlight is the most chunks the pipeline holds at once: a full
	// channel between each pair of stages plus one in each stage's hand.
	maxInFlight = 3*stageChanCap + pipeStages

	condQuiet      = "quiet"
	condGCPressure = "gcpressure"
)

var (
	chunkConditions = []string{condQuiet, condGCPressure}
	chunkVariants   = []string{"ring", "make", "syncpool", "bytebufferpool"}
)

func BenchmarkChunkLatency(b *testing.B) {
	for _, cond := range chunkConditions {
		b.Run(cond, func(b *testing.B) {
			for _, variant := range chunkVariants {
				b.Run(variant, func(b *testing.B) {
					benchChunkLatency(b, cond, variant)
				})
			}
		})
	}
}

func benchChunkLatency(b *testing.B, cond, variant string) {
	b.ReportAllocs()
	src := sourceSlab()
	dst := make([]byte, chunkSize)
	hist := newLatencyHistogram()
	v, err := newChunkVariant(variant)
	if err != nil {
		b.Fatal(err)
	}

	var ch *churner
	if cond == condGCPressure {
		ch = startChurner(churnLists)
		defer ch.stopAndWait() // also on b.Fatal
	}

	ctx := b.Context()
	if _, err := runChunks(ctx, v, warmupChunks, src, dst, nil); err != nil {
		b.Fatalf("warm-up: %v", err)
	}

	run := startChunkRun(ctx, v, b.N, src, dst, hist)
	before := ch.snapshot()
	b.ResetTimer()
	run.open()
	err = run.wait()
	after := ch.snapshot()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	ch.stopAndWait()
	if err := v.check(); err != nil {
		b.Fatal(err)
	}
	if run.overflow > 0 {
		b.Fatalf("%d latencies outside the histogram's range", run.overflow)
	}
	if got := hist.TotalCount(); got != int64(b.N) {
		b.Fatalf("recorded %d latencies, want %d", got, b.N)
	}

	b.ReportMetric(float64(hist.ValueAtPercentile(50)), "p50-ns")
	b.ReportMetric(float64(hist.ValueAtPercentile(99)), "p99-ns")
	b.ReportMetric(float64(hist.ValueAtPercentile(99.9)), "p999-ns")
	b.ReportMetric(float64(hist.Max()), "max-ns")
	b.ReportMetric(float64(after.numGC-before.numGC)*1000/float64(b.N), "gc/1k-chunks")
	if ch != nil {
		// The churner's allocations belong to the load generator, not the
		// pipeline: take them out of the process totals.
		mallocs := float64(after.mallocs-before.mallocs) - float64(after.churnAllocs-before.churnAllocs)
		bytes := float64(after.totalAlloc-before.totalAlloc) - float64(after.churnBytes-before.churnBytes)
		b.ReportMetric(max(mallocs, 0)/float64(b.N), "allocs/op")
		b.ReportMetric(max(bytes, 0)/float64(b.N), "B/op")
		b.ReportMetric(float64(after.churnAllocs-before.churnAllocs)/float64(b.N), "churn-allocs/op")
	}

	if dir := os.Getenv("BENCH_OUT"); dir != "" {
		if err := writeLatencyCSV(dir, cond, variant, hist); err != nil {
			b.Fatal(err)
		}
	}
}

// newLatencyHistogram tracks 1 ns to 1 min with 3 significant digits.
func newLatencyHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(time.Minute), 3)
}

// sourceSlab is the data every chunk is filled from: not all zeros, so no
// layer can take a shortcut on it.
func sourceSlab() []byte {
	src := make([]byte, chunkSize)
	x := uint32(2463534242)
	for i := range src {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		src[i] = byte(x)
	}
	return src
}

// chunk is the carrier of one chunk through the pipeline: its memory, in
// whichever form the variant hands it out, and its start time.
type chunk struct {
	start time.Time
	buf   []byte // the valid data
	rb    *bufpool.Buffer
	sp    *[]byte
	bb    *bytebufferpool.ByteBuffer
}

// chunkVariant is one way of getting the 1 MiB a chunk needs.
type chunkVariant interface {
	// acquire sets c.buf to chunkSize bytes to fill.
	acquire(ctx context.Context, c *chunk) error
	// setLen cuts c.buf to the n bytes filled.
	setLen(c *chunk, n int)
	// release gives the memory back (or drops it) and clears c's references.
	release(c *chunk)
	// check reports leftovers after a run.
	check() error
}

func newChunkVariant(name string) (chunkVariant, error) {
	switch name {
	case "ring":
		pool, err := bufpool.New(bufpool.Config{Buffers: ringBuffers, BufferSize: chunkSize, Strict: true})
		if err != nil {
			return nil, err
		}
		return &ringVariant{pool: pool}, nil
	case "make":
		return makeVariant{}, nil
	case "syncpool":
		return &syncPoolVariant{pool: sync.Pool{New: func() any {
			b := make([]byte, chunkSize)
			return &b
		}}}, nil
	case "bytebufferpool":
		return bbPoolVariant{}, nil
	}
	return nil, fmt.Errorf("unknown variant %q", name)
}

type ringVariant struct{ pool *bufpool.Pool }

func (r *ringVariant) acquire(ctx context.Context, c *chunk) error {
	b, err := r.pool.Acquire(ctx) // blocks while the ring is empty: the backpressure
	if err != nil {
		return err
	}
	c.rb = b
	c.buf = b.Space()
	return nil
}

func (r *ringVariant) setLen(c *chunk, n int) {
	c.rb.SetLen(n)
	c.buf = c.rb.Bytes()
}

func (r *ringVariant) release(c *chunk) {
	r.pool.Release(c.rb)
	c.rb, c.buf = nil, nil
}

func (r *ringVariant) check() error {
	if st := r.pool.Stats(); st.InUse != 0 || st.Misuse != 0 {
		return fmt.Errorf("ring after the run: %d buffers in use, %d misuse", st.InUse, st.Misuse)
	}
	return nil
}

type makeVariant struct{}

func (makeVariant) acquire(_ context.Context, c *chunk) error {
	c.buf = make([]byte, chunkSize)
	return nil
}
func (makeVariant) setLen(c *chunk, n int) { c.buf = c.buf[:n] }
func (makeVariant) release(c *chunk)       { c.buf = nil }
func (makeVariant) check() error           { return nil }

type syncPoolVariant struct{ pool sync.Pool }

func (s *syncPoolVariant) acquire(_ context.Context, c *chunk) error {
	c.sp = s.pool.Get().(*[]byte)
	c.buf = (*c.sp)[:chunkSize]
	return nil
}
func (s *syncPoolVariant) setLen(c *chunk, n int) { c.buf = c.buf[:n] }
func (s *syncPoolVariant) release(c *chunk) {
	s.pool.Put(c.sp)
	c.sp, c.buf = nil, nil
}
func (s *syncPoolVariant) check() error { return nil }

type bbPoolVariant struct{}

func (bbPoolVariant) acquire(_ context.Context, c *chunk) error {
	bb := bytebufferpool.Get()
	if cap(bb.B) < chunkSize {
		bb.B = make([]byte, chunkSize) // grow in one step, not by appends
	}
	bb.B = bb.B[:chunkSize]
	c.bb = bb
	c.buf = bb.B
	return nil
}
func (bbPoolVariant) setLen(c *chunk, n int) {
	c.bb.B = c.bb.B[:n]
	c.buf = c.bb.B
}
func (bbPoolVariant) release(c *chunk) {
	bytebufferpool.Put(c.bb)
	c.bb, c.buf = nil, nil
}
func (bbPoolVariant) check() error { return nil }

// noRing is the pipeline's Acquirer: the chunks travel in the benchmark's
// own channels of *chunk, none registered with Pipeline.Chan, so the pipeline
// never acquires or releases a buffer itself.
type noRing struct{}

var errNoRing = errors.New("bench: the chunk pipeline does not hand out ring buffers")

func (noRing) Acquire(context.Context) (*bufpool.Buffer, error) { return nil, errNoRing }
func (noRing) Release(*bufpool.Buffer)                          {}

// chunkRun is one pipeline run, its stages started and waiting for open.
type chunkRun struct {
	p        *pipeline.Pipeline
	v        chunkVariant
	gate     chan struct{}
	chans    []chan *chunk
	overflow int // latencies the histogram rejected; read after wait
}

// runChunks moves n chunks through a fresh pipeline and waits for it.
func runChunks(ctx context.Context, v chunkVariant, n int, src, dst []byte, hist *hdrhistogram.Histogram) (*chunkRun, error) {
	r := startChunkRun(ctx, v, n, src, dst, hist)
	r.open()
	return r, r.wait()
}

// startChunkRun builds the pipeline and starts its stages; the source starts
// moving n chunks when open is called. Everything that allocates (carriers,
// channels, goroutines, closures) happens here, before the timer.
func startChunkRun(ctx context.Context, v chunkVariant, n int, src, dst []byte, hist *hdrhistogram.Histogram) *chunkRun {
	r := &chunkRun{
		p:    pipeline.New(ctx, noRing{}),
		v:    v,
		gate: make(chan struct{}),
	}
	// One carrier per chunk the pipeline can hold, plus one: the source takes
	// one only while it holds none, so it never waits for a carrier.
	free := make(chan *chunk, maxInFlight+1)
	for range maxInFlight + 1 {
		free <- new(chunk)
	}
	decodeIn := make(chan *chunk, stageChanCap)
	transformIn := make(chan *chunk, stageChanCap)
	sinkIn := make(chan *chunk, stageChanCap)
	r.chans = []chan *chunk{decodeIn, transformIn, sinkIn}

	r.p.Go("source", func(ctx context.Context) error {
		defer close(decodeIn)
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
		for range n {
			c := <-free
			c.start = time.Now() // before the acquire: a blocked Acquire counts
			if err := v.acquire(ctx, c); err != nil {
				free <- c
				return err
			}
			v.setLen(c, copy(c.buf, src)) // the read: a full 1 MiB, for every variant
			select {
			case decodeIn <- c:
			case <-ctx.Done():
				v.release(c)
				return ctx.Err()
			}
		}
		return nil
	})
	r.p.Go("decode", forwardStage(v, decodeIn, transformIn))
	r.p.Go("transform", forwardStage(v, transformIn, sinkIn))
	r.p.Go("sink", func(ctx context.Context) error {
		for c := range sinkIn {
			copy(dst, c.buf) // the write
			v.release(c)
			d := time.Since(c.start)
			if hist != nil && hist.RecordValue(int64(d)) != nil {
				r.overflow++
			}
			c.start = time.Time{}
			free <- c
		}
		return nil
	})
	return r
}

// forwardStage is a middle stage: it touches every page of the chunk (one
// byte each) and hands it on.
func forwardStage(v chunkVariant, in <-chan *chunk, out chan<- *chunk) func(context.Context) error {
	return func(ctx context.Context) error {
		defer close(out)
		var sum byte
		for c := range in {
			for i := 0; i < len(c.buf); i += pageSize {
				sum ^= c.buf[i]
			}
			select {
			case out <- c:
			case <-ctx.Done():
				v.release(c)
				return ctx.Err()
			}
		}
		touchSink.Add(uint32(sum))
		return nil
	}
}

// touchSink keeps the middle stages' reads from being optimized away.
var touchSink atomic.Uint32

func (r *chunkRun) open() { close(r.gate) }

// wait waits for every stage; after a failure it releases what was left in
// the channels.
func (r *chunkRun) wait() error {
	err := r.p.Wait()
	if err != nil {
		for _, ch := range r.chans {
			for c := range ch { // closed by their senders, which have returned
				r.v.release(c)
			}
		}
	}
	return err
}

// Churn: the live heap of the gcpressure condition.

const (
	churnListLen  = 64
	churnLists    = 25600 // 25600 lists * 64 nodes * 32 B = 50 MiB live
	churnPerBatch = 4     // lists replaced per lock
	churnNodeSize = 32    // size of churnNode, an exact size class
)

type churnNode struct {
	next, skip *churnNode // skip points 8 nodes ahead in the same list
	key, val   uint64
}

// churner keeps a pointer-rich live heap and replaces parts of it
// continuously. It only allocates while holding mu, and counts every
// allocation, so a snapshot taken under mu can tell its allocations from the
// pipeline's exactly.
type churner struct {
	lists []*churnNode
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	allocs uint64
	bytes  uint64
}

func startChurner(lists int) *churner {
	c := &churner{
		lists: make([]*churnNode, lists),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	seed := uint64(88172645463325252)
	for i := range c.lists {
		seed = xorshift64(seed)
		c.lists[i] = buildChurnList(seed)
	}
	go c.loop(seed)
	return c
}

func xorshift64(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

func buildChurnList(seed uint64) *churnNode {
	var ahead [8]*churnNode // the last 8 nodes built, for skip
	var head *churnNode
	for k := range churnListLen {
		n := &churnNode{next: head, skip: ahead[k%8], key: seed + uint64(k), val: seed ^ uint64(k)}
		ahead[k%8] = n
		head = n
	}
	return head
}

func (c *churner) loop(seed uint64) {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		c.mu.Lock()
		for range churnPerBatch {
			seed = xorshift64(seed)
			c.lists[seed%uint64(len(c.lists))] = buildChurnList(seed)
		}
		c.allocs += churnPerBatch * churnListLen
		c.bytes += churnPerBatch * churnListLen * churnNodeSize
		c.mu.Unlock()
		// Let the pipeline's stages in: without this the churner would hold
		// one of the machine's two Ps for a whole 10 ms preemption slice.
		runtime.Gosched()
	}
}

// stopAndWait stops the churn and waits for its goroutine; nil-safe and
// idempotent.
func (c *churner) stopAndWait() {
	if c == nil {
		return
	}
	c.once.Do(func() { close(c.stop) })
	<-c.done
}

type memSnapshot struct {
	mallocs, totalAlloc uint64
	numGC               uint32
	churnAllocs         uint64
	churnBytes          uint64
}

// snapshot reads the process's memory counters and, consistently with them,
// the churner's; c may be nil (no churn).
func (c *churner) snapshot() memSnapshot {
	if c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := memSnapshot{mallocs: ms.Mallocs, totalAlloc: ms.TotalAlloc, numGC: ms.NumGC}
	if c != nil {
		s.churnAllocs, s.churnBytes = c.allocs, c.bytes
	}
	return s
}

// CSV output of the latency distributions.

// latencyPercentiles are the percentiles written to the CSV files: the usual
// ones plus a point every quarter of a nine from 0 to 99.999, so a plot on a
// "nines" axis is smooth.
func latencyPercentiles() []float64 {
	ps := []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}
	for q := 1; q <= 20; q++ { // 0.25 to 5 nines
		p := 100 * (1 - math.Pow(10, -float64(q)/4))
		ps = append(ps, math.Round(p*1e6)/1e6)
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

func writeLatencyCSV(dir, cond, variant string, hist *hdrhistogram.Histogram) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	buf := []byte("percentile,ns\n")
	for _, p := range latencyPercentiles() {
		var v int64
		switch p {
		case 0:
			v = hist.Min()
		case 100:
			v = hist.Max()
		default:
			v = hist.ValueAtPercentile(p)
		}
		buf = strconv.AppendFloat(buf, p, 'f', -1, 64)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, v, 10)
		buf = append(buf, '\n')
	}
	name := filepath.Join(dir, "latency-"+cond+"-"+variant+".csv")
	return os.WriteFile(name, buf, 0o644)
}

// Tests of the harness itself (they also run under -race).

// TestChunkPipeline moves a few chunks through each variant's pipeline and
// checks that every chunk was recorded and every ring buffer came back.
func TestChunkPipeline(t *testing.T) {
	for _, name := range chunkVariants {
		t.Run(name, func(t *testing.T) {
			v, err := newChunkVariant(name)
			if err != nil {
				t.Fatal(err)
			}
			src, dst := sourceSlab(), make([]byte, chunkSize)
			hist := newLatencyHistogram()
			const n = 3 * maxInFlight
			r, err := runChunks(t.Context(), v, n, src, dst, hist)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.check(); err != nil {
				t.Fatal(err)
			}
			if r.overflow != 0 || hist.TotalCount() != n {
				t.Fatalf("recorded %d (overflow %d), want %d", hist.TotalCount(), r.overflow, n)
			}
			if string(dst) != string(src) {
				t.Fatal("the sink did not get the source's bytes")
			}
			if hist.Min() <= 0 {
				t.Fatalf("min latency %d", hist.Min())
			}
		})
	}
}

// TestChunkPipelineCanceled checks that a canceled run returns and leaves
// the ring full.
func TestChunkPipelineCanceled(t *testing.T) {
	v, err := newChunkVariant("ring")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := startChunkRun(ctx, v, 1<<30, sourceSlab(), make([]byte, chunkSize), nil)
	r.open()
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := r.wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v, want context.Canceled", err)
	}
	if err := v.check(); err != nil {
		t.Fatal(err)
	}
}

// TestChurnerAccounting checks that taking the churner's counted
// allocations out of the process totals leaves nothing: the subtraction in
// the gcpressure rows is exact.
func TestChurnerAccounting(t *testing.T) {
	c := startChurner(256)
	defer c.stopAndWait()
	before := c.snapshot()
	time.Sleep(50 * time.Millisecond)
	after := c.snapshot()
	churned := after.churnAllocs - before.churnAllocs
	if churned == 0 {
		t.Fatal("the churner did not run")
	}
	other := int64(after.mallocs-before.mallocs) - int64(churned)
	otherBytes := int64(after.totalAlloc-before.totalAlloc) - int64(after.churnBytes-before.churnBytes)
	// Allow for the odd runtime or test-framework allocation.
	if other < -2 || other > 16 || otherBytes < -64 || otherBytes > 16<<10 {
		t.Fatalf("churned %d allocs; process total minus churn = %d allocs, %d bytes", churned, other, otherBytes)
	}
	t.Logf("churned %d allocs; remainder %d allocs, %d bytes", churned, other, otherBytes)
}

func TestLatencyCSV(t *testing.T) {
	hist := newLatencyHistogram()
	for i := int64(1); i <= 1000; i++ {
		if err := hist.RecordValue(i * 1000); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := writeLatencyCSV(dir, "quiet", "ring", hist); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "latency-quiet-ring.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if lines[0] != "percentile,ns" {
		t.Fatalf("header %q", lines[0])
	}
	if want := len(latencyPercentiles()) + 1; len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	if first, last := lines[1], lines[len(lines)-1]; first != "0,1000" || last != fmt.Sprintf("100,%d", hist.Max()) {
		t.Fatalf("first row %q, last row %q (max %d)", first, last, hist.Max())
	}
	prevP, prevV := -1.0, int64(-1)
	for _, l := range lines[1:] {
		var p float64
		var v int64
		if _, err := fmt.Sscanf(l, "%g,%d", &p, &v); err != nil {
			t.Fatalf("row %q: %v", l, err)
		}
		if p <= prevP || v < prevV {
			t.Fatalf("row %q not after (%g, %d)", l, prevP, prevV)
		}
		prevP, prevV = p, v
	}
}
