package bufpool

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestMisuse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		panic string
		do    func(t *testing.T, p, other *Pool)
	}{
		{
			name:  "double release",
			panic: "double release",
			do: func(t *testing.T, p, _ *Pool) {
				b := mustAcquire(t, p)
				p.Release(b)
				p.Release(b)
			},
		},
		{
			name:  "double release through reservation",
			panic: "double release",
			do: func(t *testing.T, p, _ *Pool) {
				r, _ := p.TryReserve(1)
				defer r.Close()
				b := mustAcquire(t, r)
				r.Release(b)
				r.Release(b)
			},
		},
		{
			name:  "foreign buffer",
			panic: "another pool",
			do: func(t *testing.T, p, other *Pool) {
				b := mustAcquire(t, other)
				defer other.Release(b)
				p.Release(b)
			},
		},
		{
			name:  "nil buffer",
			panic: "another pool",
			do:    func(t *testing.T, p, _ *Pool) { p.Release(nil) },
		},
		{
			name:  "Bytes after release",
			panic: "released buffer",
			do: func(t *testing.T, p, _ *Pool) {
				b := mustAcquire(t, p)
				p.Release(b)
				if got := b.Bytes(); got != nil {
					t.Errorf("Bytes after release = %q, want nil", got)
				}
			},
		},
		{
			name:  "Space after release",
			panic: "released buffer",
			do: func(t *testing.T, p, _ *Pool) {
				b := mustAcquire(t, p)
				p.Release(b)
				if got := b.Space(); got != nil {
					t.Errorf("Space after release has len %d, want nil", len(got))
				}
			},
		},
		{
			name:  "SetLen after release",
			panic: "released buffer",
			do: func(t *testing.T, p, _ *Pool) {
				b := mustAcquire(t, p)
				p.Release(b)
				b.SetLen(1)
			},
		},
	}
	for _, tt := range tests {
		for _, strict := range []bool{true, false} {
			name := tt.name + "/counted"
			if strict {
				name = tt.name + "/strict"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				p, other := newPool(t, 2, strict), newPool(t, 1, false)
				if strict {
					wantPanic(t, tt.panic, func() { tt.do(t, p, other) })
				} else {
					tt.do(t, p, other)
					if got := p.Stats().Misuse; got != 1 {
						t.Fatalf("Misuse = %d, want 1", got)
					}
				}
				// Misuse never corrupts the ring: it is whole and usable.
				if s := p.Stats(); s.InUse != 0 || s.Reserved != 0 {
					t.Fatalf("stats after misuse %+v", s)
				}
				a, b := mustAcquire(t, p), mustAcquire(t, p)
				if a == b {
					t.Fatal("same buffer handed out twice")
				}
				p.Release(a)
				p.Release(b)
			})
		}
	}
}

// Many goroutines mixing unreserved and reserved acquires, some canceled,
// over a small ring. The race detector checks that no buffer is handed out
// twice (each holder writes to it); the ring must end full.
func TestStress(t *testing.T) {
	t.Parallel()
	const (
		workers = 32
		rounds  = 300
	)
	p := newPool(t, 8, true)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var acq interface {
				Acquire(context.Context) (*Buffer, error)
				Release(*Buffer)
			} = p
			if w%2 == 0 {
				r, err := p.Reserve(context.Background(), 1+w%3)
				if err != nil {
					t.Error(err)
					return
				}
				defer r.Close()
				acq = r
			}
			for i := range rounds {
				ctx, cancel := context.WithCancel(context.Background())
				switch rng.IntN(4) {
				case 0:
					cancel() // gives up before trying
				case 1:
					// Gives up while waiting, possibly while being granted.
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), time.Duration(rng.IntN(50))*time.Microsecond)
				}
				b, err := acq.Acquire(ctx)
				cancel()
				if err != nil {
					continue
				}
				s := b.Space()
				s[0], s[1] = byte(w), byte(i)
				b.SetLen(2)
				if got := b.Bytes(); got[0] != byte(w) || got[1] != byte(i) {
					t.Errorf("buffer shared: got %v", got)
				}
				acq.Release(b)
			}
		})
	}
	wg.Wait()
	if s := p.Stats(); s.InUse != 0 || s.Reserved != 0 || s.Misuse != 0 {
		t.Fatalf("ring not full at the end: %+v", s)
	}
}
