package bufpool

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// timeout bounds every wait on a signal, so a bug fails the test instead of hanging it.
const timeout = 10 * time.Second

func newPool(t testing.TB, buffers int, strict bool) *Pool {
	t.Helper()
	p, err := New(Config{Buffers: buffers, BufferSize: 64, Strict: strict})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAcquire(t testing.TB, a interface {
	Acquire(context.Context) (*Buffer, error)
}) *Buffer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	b, err := a.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantPanic(t *testing.T, substr string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Fatalf("no panic, want one containing %q", substr)
		}
		if s, _ := r.(string); !strings.Contains(s, substr) {
			t.Fatalf("panic %v, want one containing %q", r, substr)
		}
	}()
	fn()
}

// recv waits for a signal or fails the test after timeout.
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

// waitBlocked waits until n acquires have entered the blocking path; Stats.Waits
// is counted on entry precisely so that tests can observe it.
func waitBlocked(t testing.TB, p *Pool, n uint64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.Stats().Waits < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d blocked acquires; stats %+v", n, p.Stats())
		}
		runtime.Gosched()
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string // substring; "" means success
		wantCap   int
		wantBytes int
	}{
		{name: "defaults", cfg: Config{}, wantCap: DefaultBuffers, wantBytes: DefaultBufferSize},
		{name: "explicit", cfg: Config{Buffers: 3, BufferSize: 10}, wantCap: 3, wantBytes: 10},
		{name: "negative buffers", cfg: Config{Buffers: -1}, wantErr: "Buffers"},
		{name: "negative size", cfg: Config{BufferSize: -1}, wantErr: "BufferSize"},
		{name: "overflow", cfg: Config{Buffers: 1 << 30, BufferSize: 1 << 40}, wantErr: "overflows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Capacity() != tt.wantCap || p.BufferSize() != tt.wantBytes {
				t.Fatalf("capacity %d size %d, want %d %d", p.Capacity(), p.BufferSize(), tt.wantCap, tt.wantBytes)
			}
		})
	}
}

func TestSlabWindows(t *testing.T) {
	t.Parallel()
	p := newPool(t, 4, true)
	seen := map[*byte]bool{}
	var held []*Buffer
	for range 4 {
		b := mustAcquire(t, p)
		s := b.Space()
		if len(s) != 64 || cap(s) != 64 {
			t.Fatalf("window len %d cap %d, want 64 64", len(s), cap(s))
		}
		if seen[&s[0]] {
			t.Fatal("same window handed out twice")
		}
		seen[&s[0]] = true
		held = append(held, b)
	}
	// Windows do not overlap: filling each leaves the others intact.
	for i, b := range held {
		for j := range b.Space() {
			b.Space()[j] = byte(i)
		}
	}
	for i, b := range held {
		for _, c := range b.Space() {
			if c != byte(i) {
				t.Fatalf("window %d overwritten", i)
			}
		}
	}
	for _, b := range held {
		p.Release(b)
	}
}

func TestAcquireReleaseRoundTrip(t *testing.T) {
	t.Parallel()
	p := newPool(t, 2, true)
	b := mustAcquire(t, p)
	if b.Len() != 0 {
		t.Fatalf("Len = %d, want 0", b.Len())
	}
	n := copy(b.Space(), "hello")
	b.SetLen(n)
	if got := string(b.Bytes()); got != "hello" {
		t.Fatalf("Bytes = %q", got)
	}
	if s := p.Stats(); s.InUse != 1 || s.Acquires != 1 {
		t.Fatalf("stats %+v", s)
	}
	p.Release(b)
	b = mustAcquire(t, p)
	if b.Len() != 0 {
		t.Fatalf("reacquired Len = %d, want 0", b.Len())
	}
	p.Release(b)
	if s := p.Stats(); s.InUse != 0 || s.Acquires != 2 || s.Waits != 0 {
		t.Fatalf("stats %+v", s)
	}
	wantPanic(t, "SetLen", func() { b := mustAcquire(t, p); defer p.Release(b); b.SetLen(65) })
}

func TestAcquireBlocksFIFO(t *testing.T) {
	t.Parallel()
	p := newPool(t, 1, true)
	held := mustAcquire(t, p)

	const n = 5
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b := mustAcquire(t, p)
			order <- i
			p.Release(b)
		})
		// Waiter i is queued before waiter i+1 starts: order by signal, not by sleep.
		waitBlocked(t, p, uint64(i+1))
	}
	p.Release(held)
	for want := range n {
		if got := recv(t, order, "waiter"); got != want {
			t.Fatalf("waiter %d served, want %d", got, want)
		}
	}
	wg.Wait()
	s := p.Stats()
	if s.InUse != 0 || s.Waits != n || s.Acquires != n+1 || s.MaxWait <= 0 || s.TotalWait < s.MaxWait {
		t.Fatalf("stats %+v", s)
	}
}

func TestAcquireCancel(t *testing.T) {
	t.Parallel()
	t.Run("while waiting", func(t *testing.T) {
		t.Parallel()
		p := newPool(t, 1, true)
		held := mustAcquire(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := p.Acquire(ctx)
			errc <- err
		}()
		waitBlocked(t, p, 1)
		cancel()
		if err := recv(t, errc, "canceled acquire"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		p.Release(held)
		if s := p.Stats(); s.InUse != 0 {
			t.Fatalf("buffer lost: %+v", s)
		}
	})
	t.Run("already done", func(t *testing.T) {
		t.Parallel()
		p := newPool(t, 1, true)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.Acquire(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if s := p.Stats(); s.InUse != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("grant races cancel", func(t *testing.T) {
		t.Parallel()
		// Many rounds of a release racing a cancel: whichever wins, no buffer is lost.
		p := newPool(t, 1, true)
		for range 200 {
			held := mustAcquire(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			got := make(chan *Buffer, 1)
			before := p.Stats().Waits
			go func() {
				b, _ := p.Acquire(ctx)
				got <- b
			}()
			waitBlocked(t, p, before+1)
			canceled := make(chan struct{})
			go func() { cancel(); close(canceled) }()
			p.Release(held)
			if b := recv(t, got, "acquire"); b != nil {
				p.Release(b)
			}
			recv(t, canceled, "cancel")
			if s := p.Stats(); s.InUse != 0 {
				t.Fatalf("buffer lost: %+v", s)
			}
		}
	})
}

func TestReservationAccounting(t *testing.T) {
	t.Parallel()
	p := newPool(t, 4, true)
	r1, ok := p.TryReserve(2)
	if !ok {
		t.Fatal("TryReserve(2) on an empty pool failed")
	}
	free := mustAcquire(t, p) // unreserved: 2 reserved + 1 in use
	if _, ok := p.TryReserve(2); ok {
		t.Fatal("TryReserve overcommitted the ring")
	}
	r2, ok := p.TryReserve(1)
	if !ok {
		t.Fatal("TryReserve(1) failed with exactly one unpromised buffer")
	}
	if _, ok := p.TryAcquire(); ok {
		t.Fatal("unreserved acquire took a promised buffer")
	}
	if s := p.Stats(); s.Reserved != 3 || s.InUse != 1 {
		t.Fatalf("stats %+v", s)
	}
	if _, ok := p.TryReserve(0); ok {
		t.Fatal("TryReserve(0) succeeded")
	}
	if _, err := p.Reserve(context.Background(), 5); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Reserve(5) err = %v, want ErrTooLarge", err)
	}
	if _, err := p.Reserve(context.Background(), 0); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("Reserve(0) err = %v, want ErrInvalidSize", err)
	}

	a := mustAcquire(t, r1)
	b := mustAcquire(t, r1)
	if _, ok := r1.TryAcquire(); ok {
		t.Fatal("reservation exceeded its size")
	}
	c := mustAcquire(t, r2)
	if r1.InUse() != 2 || r2.InUse() != 1 || r1.Size() != 2 {
		t.Fatalf("InUse r1 %d r2 %d", r1.InUse(), r2.InUse())
	}
	r1.Release(a)
	r2.Release(b) // any Release works: the buffer remembers its owner
	p.Release(c)
	p.Release(free)
	r1.Close()
	r1.Close() // idempotent
	r2.Close()
	if _, err := r1.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close err = %v", err)
	}
	if s := p.Stats(); s.Reserved != 0 || s.InUse != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Two jobs each needing their whole reservation cannot starve each other:
// every reservation's Acquire is satisfiable from its own promise.
func TestReservationsNoDeadlock(t *testing.T) {
	t.Parallel()
	p := newPool(t, 4, true)
	var wg sync.WaitGroup
	for range 2 {
		r, ok := p.TryReserve(2)
		if !ok {
			t.Fatal("TryReserve failed")
		}
		wg.Go(func() {
			defer r.Close()
			for range 500 {
				x := mustAcquire(t, r)
				y := mustAcquire(t, r)
				r.Release(x)
				r.Release(y)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	recv(t, done, "both jobs")
	if s := p.Stats(); s.InUse != 0 || s.Reserved != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestReserveBlocksUntilClose(t *testing.T) {
	t.Parallel()
	p := newPool(t, 4, true)
	r1, _ := p.TryReserve(3)
	got := make(chan *Reservation, 1)
	go func() {
		r, err := p.Reserve(context.Background(), 2)
		if err != nil {
			t.Error(err)
		}
		got <- r
	}()
	// The blocked Reserve is queued; it also stops an unreserved acquire from
	// overtaking it, even though one buffer is unpromised.
	waitQueued(t, p)
	if _, ok := p.TryAcquire(); ok {
		t.Fatal("acquire overtook a queued Reserve")
	}
	if _, ok := p.TryReserve(1); ok {
		t.Fatal("TryReserve overtook a queued Reserve")
	}
	r1.Close()
	r2 := recv(t, got, "Reserve")
	if r2.Size() != 2 || p.Stats().Reserved != 2 {
		t.Fatalf("stats %+v", p.Stats())
	}
	r2.Close()

	// Cancel while queued gives nothing away.
	r3, _ := p.TryReserve(4)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := p.Reserve(ctx, 1); errc <- err }()
	waitQueued(t, p)
	cancel()
	if err := recv(t, errc, "Reserve"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	r3.Close()
	if s := p.Stats(); s.Reserved != 0 || s.InUse != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func waitQueued(t testing.TB, p *Pool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		queued := p.queue.head != nil
		p.mu.Unlock()
		if queued {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for a queued waiter")
		}
		runtime.Gosched()
	}
}

func TestReservationAcquireBlocks(t *testing.T) {
	t.Parallel()
	p := newPool(t, 4, true)
	r, _ := p.TryReserve(1)
	a := mustAcquire(t, r)
	got := make(chan *Buffer, 1)
	go func() { got <- mustAcquire(t, r) }()
	waitBlocked(t, p, 1)
	r.Release(a)
	b := recv(t, got, "reservation acquire")
	r.Release(b)

	if s := p.Stats(); s.InUse != 0 {
		t.Fatalf("stats %+v", s)
	}
	r.Close()
}

func TestCloseWithBuffersOut(t *testing.T) {
	t.Parallel()
	t.Run("counted", func(t *testing.T) {
		t.Parallel()
		p := newPool(t, 2, false)
		r, _ := p.TryReserve(1)
		a := mustAcquire(t, r)
		errc := make(chan error, 1)
		go func() { _, err := r.Acquire(context.Background()); errc <- err }()
		waitBlocked(t, p, 1)
		r.Close() // misuse: a is still out; the blocked Acquire fails
		if err := recv(t, errc, "blocked acquire"); !errors.Is(err, ErrClosed) {
			t.Fatalf("err = %v, want ErrClosed", err)
		}
		// a now counts as unreserved: one more unreserved buffer fits, not two.
		b := mustAcquire(t, p)
		if _, ok := p.TryAcquire(); ok {
			t.Fatal("overcommitted after Close")
		}
		p.Release(a)
		p.Release(b)
		if s := p.Stats(); s.InUse != 0 || s.Reserved != 0 || s.Misuse != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
	t.Run("strict", func(t *testing.T) {
		t.Parallel()
		p := newPool(t, 2, true)
		r, _ := p.TryReserve(1)
		a := mustAcquire(t, r)
		wantPanic(t, "buffers still out", r.Close)
		p.Release(a)
		if s := p.Stats(); s.InUse != 0 || s.Reserved != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}
