package pipeline

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/transcoder/transcoder/bufpool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait on a signal, so a bug fails the test instead of hanging it.
const timeout = 10 * time.Second

var errBoom = errors.New("boom")

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// randReader is a deterministic pseudo-random stream of limit bytes (limit < 0:
// endless), read in pseudo-random sizes so that short reads are exercised.
type randReader struct {
	rng   *rand.Rand
	sizes *rand.Rand
	limit int64
	read  atomic.Int64
}

func newRandReader(seed uint64, limit int64) *randReader {
	return &randReader{rng: rand.New(rand.NewPCG(seed, 0)), sizes: rand.New(rand.NewPCG(seed, 1)), limit: limit}
}

func (r *randReader) Read(p []byte) (int, error) {
	n := int64(1 + r.sizes.IntN(len(p)))
	if r.limit >= 0 {
		left := r.limit - r.read.Load()
		if left == 0 {
			return 0, io.EOF
		}
		n = min(n, left)
	}
	for i := range p[:n] {
		p[i] = byte(r.rng.Uint32())
	}
	r.read.Add(n)
	return int(n), nil
}

// wantHash is the hash of the stream newRandReader(seed, limit) produces: the
// byte sequence does not depend on the read sizes.
func wantHash(t *testing.T, seed uint64, limit int64) []byte {
	t.Helper()
	h := sha256.New()
	rng := rand.New(rand.NewPCG(seed, 0))
	for range limit {
		h.Write([]byte{byte(rng.Uint32())})
	}
	return h.Sum(nil)
}

type hashWriter struct {
	h hash.Hash
	n int64
}

func (w *hashWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

// failAfter fails reads or writes once more than n bytes went through.
type failReader struct {
	r io.Reader
	n int64
}

func (f *failReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	m, err := f.r.Read(p[:min(int64(len(p)), f.n)])
	f.n -= int64(m)
	return m, err
}

type failWriter struct{ n int64 }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	m := int(min(int64(len(p)), f.n))
	f.n -= int64(m)
	if m < len(p) {
		return m, errBoom
	}
	return m, nil
}

type panicReader struct{ after int }

func (r *panicReader) Read(p []byte) (int, error) {
	if r.after == 0 {
		panic("reader exploded")
	}
	r.after--
	return len(p), nil
}

type panicWriter struct{ after int }

func (w *panicWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		panic("writer exploded")
	}
	w.after--
	return len(p), nil
}

// shortWriter accepts at most 7 bytes per call, to exercise the write loop.
type shortWriter struct{ w io.Writer }

func (s shortWriter) Write(p []byte) (int, error) { return s.w.Write(p[:min(len(p), 7)]) }

// runThree runs source -> middle -> sink and returns Wait's error.
func runThree(ctx context.Context, acq Acquirer, r io.Reader, fn func(*bufpool.Buffer) error, sink func(ctx context.Context, in <-chan *bufpool.Buffer) error) error {
	p := New(ctx, acq)
	c1, c2 := p.Chan(2), p.Chan(2)
	p.Go("source", func(ctx context.Context) error {
		_, err := ReadFrom(ctx, r, acq, c1)
		return err
	})
	p.Go("middle", func(ctx context.Context) error { return Forward(ctx, c1, c2, acq, fn) })
	p.Go("sink", func(ctx context.Context) error { return sink(ctx, c2) })
	return p.Wait()
}

func writeSink(w io.Writer, acq Acquirer) func(ctx context.Context, in <-chan *bufpool.Buffer) error {
	return func(ctx context.Context, in <-chan *bufpool.Buffer) error {
		_, err := WriteTo(ctx, in, w, acq)
		return err
	}
}

func newPool(t testing.TB, buffers, size int) *bufpool.Pool {
	t.Helper()
	p, err := bufpool.New(bufpool.Config{Buffers: buffers, BufferSize: size, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// acquirers runs body once on the pool and once on a reservation of it, then
// checks the ring is full again.
func acquirers(t *testing.T, buffers, size int, body func(t *testing.T, acq Acquirer)) {
	for _, reserved := range []bool{false, true} {
		name := "pool"
		if reserved {
			name = "reservation"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t, buffers, size)
			var acq Acquirer = pool
			if reserved {
				r, ok := pool.TryReserve(BuffersNeeded([]int{2, 2}, 3))
				if !ok {
					t.Fatal("TryReserve failed")
				}
				defer func() {
					if r.InUse() != 0 {
						t.Errorf("reservation has %d buffers out", r.InUse())
					}
					r.Close()
				}()
				acq = r
			}
			body(t, acq)
			if s := pool.Stats(); s.InUse != 0 {
				t.Fatalf("ring not full after the pipeline: %+v", s)
			}
		})
	}
}

func TestSuccess(t *testing.T) {
	t.Parallel()
	const seed, size = 7, 200_000
	want := wantHash(t, seed, size)
	acquirers(t, 8, 4096, func(t *testing.T, acq Acquirer) {
		var chunks atomic.Int64
		w := &hashWriter{h: sha256.New()}
		err := runThree(context.Background(), acq, newRandReader(seed, size),
			func(b *bufpool.Buffer) error { chunks.Add(1); return nil },
			writeSink(shortWriter{w}, acq))
		if err != nil {
			t.Fatal(err)
		}
		if w.n != size || string(w.h.Sum(nil)) != string(want) {
			t.Fatalf("sink got %d bytes, hash mismatch=%v", w.n, string(w.h.Sum(nil)) != string(want))
		}
		if chunks.Load() < 2 {
			t.Fatalf("only %d chunks", chunks.Load())
		}
	})
}

func TestStageFailures(t *testing.T) {
	t.Parallel()
	endless := func() io.Reader { return newRandReader(1, -1) }
	tests := []struct {
		name      string
		reader    func() io.Reader
		middle    func() func(*bufpool.Buffer) error // a fresh fn per run; nil: no fn
		writer    func() io.Writer
		sink      func(acq Acquirer) func(context.Context, <-chan *bufpool.Buffer) error // overrides writer
		wantStage string
		wantErr   error
	}{
		{
			name:      "source read error",
			reader:    func() io.Reader { return &failReader{r: newRandReader(1, -1), n: 50_000} },
			wantStage: "source", wantErr: errBoom,
		},
		{
			name:      "middle error",
			reader:    endless,
			middle:    failOn(5, func() error { return errBoom }),
			wantStage: "middle", wantErr: errBoom,
		},
		{
			name:      "sink write error",
			reader:    endless,
			writer:    func() io.Writer { return &failWriter{n: 30_000} },
			wantStage: "sink", wantErr: errBoom,
		},
		{
			name:   "sink fails without receiving",
			reader: endless,
			sink: func(Acquirer) func(context.Context, <-chan *bufpool.Buffer) error {
				return func(context.Context, <-chan *bufpool.Buffer) error { return errBoom }
			},
			wantStage: "sink", wantErr: errBoom,
		},
		{
			name:      "source panic",
			reader:    func() io.Reader { return &panicReader{after: 3} },
			wantStage: "source", wantErr: ErrPanic,
		},
		{
			name:      "middle panic",
			reader:    endless,
			middle:    failOn(3, func() error { panic("middle exploded") }),
			wantStage: "middle", wantErr: ErrPanic,
		},
		{
			name:      "sink panic",
			reader:    endless,
			writer:    func() io.Writer { return &panicWriter{after: 3} },
			wantStage: "sink", wantErr: ErrPanic,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acquirers(t, 8, 4096, func(t *testing.T, acq Acquirer) {
				sink := writeSink(io.Discard, acq)
				if tt.writer != nil {
					sink = writeSink(tt.writer(), acq)
				}
				if tt.sink != nil {
					sink = tt.sink(acq)
				}
				var fn func(*bufpool.Buffer) error
				if tt.middle != nil {
					fn = tt.middle()
				}
				err := runThree(context.Background(), acq, tt.reader(), fn, sink)
				var se *StageError
				if !errors.As(err, &se) || se.Stage != tt.wantStage || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want StageError{%s, %v}", err, tt.wantStage, tt.wantErr)
				}
				if errors.Is(err, ErrPanic) && !strings.Contains(err.Error(), "goroutine") {
					t.Fatalf("panic error has no stack: %v", err)
				}
			})
		})
	}
}

// failOn returns a factory of middle functions that call fail on the nth buffer.
func failOn(nth int, fail func() error) func() func(*bufpool.Buffer) error {
	return func() func(*bufpool.Buffer) error {
		n := 0
		return func(*bufpool.Buffer) error {
			if n++; n == nth {
				return fail()
			}
			return nil
		}
	}
}

// signalWriter reports its first write, then discards.
type signalWriter struct {
	first chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.first) })
	return len(p), nil
}

func TestCancel(t *testing.T) {
	t.Parallel()
	errJob := errors.New("job canceled")
	acquirers(t, 8, 4096, func(t *testing.T, acq Acquirer) {
		w := &signalWriter{first: make(chan struct{})}
		p := New(context.Background(), acq)
		c1, c2 := p.Chan(2), p.Chan(2)
		p.Go("source", func(ctx context.Context) error {
			_, err := ReadFrom(ctx, newRandReader(3, -1), acq, c1)
			return err
		})
		p.Go("middle", func(ctx context.Context) error { return Forward(ctx, c1, c2, acq, nil) })
		p.Go("sink", func(ctx context.Context) error { _, err := WriteTo(ctx, c2, w, acq); return err })
		recv(t, w.first, "first write") // mid-stream
		p.Cancel(errJob)
		err := p.Wait()
		var se *StageError
		if !errors.As(err, &se) || se.Stage != StagePipeline || !errors.Is(err, errJob) {
			t.Fatalf("err = %v, want StageError{pipeline, %v}", err, errJob)
		}
	})
}

func TestParentCanceled(t *testing.T) {
	t.Parallel()
	acquirers(t, 8, 4096, func(t *testing.T, acq Acquirer) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &signalWriter{first: make(chan struct{})}
		errc := make(chan error, 1)
		go func() {
			errc <- runThree(ctx, acq, newRandReader(4, -1), nil, writeSink(w, acq))
		}()
		recv(t, w.first, "first write")
		cancel()
		err := recv(t, errc, "Wait")
		var se *StageError
		if !errors.As(err, &se) || se.Stage != StagePipeline || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want StageError{pipeline, context.Canceled}", err)
		}
	})
}

// blockSignal wraps a reservation and reports when an Acquire has to block.
type blockSignal struct {
	*bufpool.Reservation
	blocked chan struct{}
	once    sync.Once
}

func (a *blockSignal) Acquire(ctx context.Context) (*bufpool.Buffer, error) {
	if b, ok := a.TryAcquire(); ok {
		return b, nil
	}
	a.once.Do(func() { close(a.blocked) })
	return a.Reservation.Acquire(ctx)
}

// gateWriter blocks every write until open is closed.
type gateWriter struct {
	open <-chan struct{}
	w    io.Writer
}

func (g gateWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}

// The producer stops when the job's reservation is exhausted: a slow sink
// holds the source back instead of memory growing.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	const (
		bufSize  = 1024
		reserved = 4
		total    = 64 * bufSize
	)
	pool := newPool(t, 16, bufSize)
	r, ok := pool.TryReserve(reserved)
	if !ok {
		t.Fatal("TryReserve failed")
	}
	acq := &blockSignal{Reservation: r, blocked: make(chan struct{})}
	src := &fullReader{r: newRandReader(9, total)}
	open := make(chan struct{})
	w := &hashWriter{h: sha256.New()}

	p := New(context.Background(), acq)
	c1, c2 := p.Chan(8), p.Chan(8) // roomy channels: the reservation is the limit
	p.Go("source", func(ctx context.Context) error { _, err := ReadFrom(ctx, src, acq, c1); return err })
	p.Go("middle", func(ctx context.Context) error { return Forward(ctx, c1, c2, acq, nil) })
	p.Go("sink", func(ctx context.Context) error {
		_, err := WriteTo(ctx, c2, gateWriter{open: open, w: w}, acq)
		return err
	})

	recv(t, acq.blocked, "the source to block on the reservation")
	if got := src.r.read.Load(); got != reserved*bufSize {
		t.Errorf("source read %d bytes before blocking, want %d (the reservation)", got, reserved*bufSize)
	}
	if s := pool.Stats(); s.InUse != reserved {
		t.Errorf("ring has %d buffers out, want %d", s.InUse, reserved)
	}
	close(open)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if w.n != total || string(w.h.Sum(nil)) != string(wantHash(t, 9, total)) {
		t.Fatalf("sink got %d bytes, want %d, or hash mismatch", w.n, total)
	}
	r.Close()
	if s := pool.Stats(); s.InUse != 0 || s.Reserved != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// fullReader fills the whole buffer on each read.
type fullReader struct{ r *randReader }

func (f *fullReader) Read(p []byte) (int, error) { return io.ReadFull(f.r, p) }

// The first bytes leave as soon as they are read, not when a buffer is full
// or the reader is done.
func TestFirstChunkForwardedEarly(t *testing.T) {
	t.Parallel()
	acquirers(t, 8, 1<<16, func(t *testing.T, acq Acquirer) {
		proceed := make(chan struct{})
		seen := make(chan string, 1)
		r := &stallReader{first: "hello", proceed: proceed}
		sink := writerFunc(func(p []byte) (int, error) {
			seen <- string(p)
			return len(p), nil
		})
		errc := make(chan error, 1)
		go func() { errc <- runThree(context.Background(), acq, r, nil, writeSink(sink, acq)) }()
		if got := recv(t, seen, "the first chunk at the sink"); got != "hello" {
			t.Fatalf("first chunk %q", got)
		}
		close(proceed) // only now may the reader reach EOF
		if err := recv(t, errc, "Wait"); err != nil {
			t.Fatal(err)
		}
	})
}

type stallReader struct {
	first   string
	proceed <-chan struct{}
	sent    bool
}

func (r *stallReader) Read(p []byte) (int, error) {
	if !r.sent {
		r.sent = true
		return copy(p, r.first), nil
	}
	<-r.proceed
	return 0, io.EOF
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestWriteToRejectsBadWriters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		w    io.Writer
		want string
	}{
		{"no progress", writerFunc(func([]byte) (int, error) { return 0, nil }), io.ErrShortWrite.Error()},
		{"too many", writerFunc(func(p []byte) (int, error) { return len(p) + 1, nil }), "invalid count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t, 2, 64)
			err := runThree(context.Background(), pool, newRandReader(2, 1000), nil, writeSink(tt.w, pool))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if s := pool.Stats(); s.InUse != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestBuffersNeeded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		caps   []int
		stages int
		want   int
	}{
		{"none", nil, 0, 0},
		{"source and sink, unbuffered", []int{0}, 2, 2},
		{"three stages", []int{2, 2}, 3, 7},
		{"negative ignored", []int{-1, 3}, 2, 5},
		{"fan out", []int{4, 1, 1}, 4, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := BuffersNeeded(tt.caps, tt.stages); got != tt.want {
				t.Fatalf("BuffersNeeded(%v, %d) = %d, want %d", tt.caps, tt.stages, got, tt.want)
			}
		})
	}
}
