package bufpool

import (
	"context"
	"runtime"
	"sync"
	"testing"
)

// The allocation tests are not parallel: AllocsPerRun counts the mallocs of
// the whole process, and non-parallel tests run alone.

func TestAcquireReleaseAllocs(t *testing.T) {
	p := newPool(t, 4, true)
	r, _ := p.TryReserve(2)
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx.Done() // the cancel context makes its channel lazily, once

	tests := []struct {
		name string
		a    interface {
			Acquire(context.Context) (*Buffer, error)
			Release(*Buffer)
		}
	}{
		{"pool", p},
		{"reservation", r},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(1000, func() {
				b, err := tt.a.Acquire(ctx)
				if err != nil {
					panic(err)
				}
				b.SetLen(copy(b.Space(), "x"))
				_ = b.Bytes()
				tt.a.Release(b)
			})
			if allocs != 0 {
				t.Fatalf("%v allocs per Acquire+Release, want 0", allocs)
			}
		})
	}
}

// A goroutine blocked and woken over and over allocates nothing once the
// waiter records exist: they are recycled with their channels.
func TestBlockingPathAllocs(t *testing.T) {
	for _, reserved := range []bool{false, true} {
		name := "pool"
		if reserved {
			name = "reservation"
		}
		t.Run(name, func(t *testing.T) {
			p := newPool(t, 1, true)
			var a interface {
				Acquire(context.Context) (*Buffer, error)
				Release(*Buffer)
			} = p
			if reserved {
				r, _ := p.TryReserve(1)
				defer r.Close()
				a = r
			}
			ctx := context.Background()
			start, done := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for range start {
					b, err := a.Acquire(ctx) // blocks: the test holds the buffer
					if err != nil {
						panic(err)
					}
					a.Release(b)
					done <- struct{}{}
				}
			})
			defer wg.Wait()
			defer close(start)

			held := mustAcquire(t, a)
			round := func() {
				waits := p.Stats().Waits
				start <- struct{}{}
				for p.Stats().Waits == waits { // until the helper is queued
					runtime.Gosched()
				}
				a.Release(held)
				<-done
				var err error
				if held, err = a.Acquire(ctx); err != nil {
					panic(err)
				}
			}
			for range 100 {
				round() // warm-up: waiter records, sudogs, timers
			}
			before := p.Stats().Waits
			allocs := testing.AllocsPerRun(200, round)
			if got := p.Stats().Waits - before; got < 200 {
				t.Fatalf("only %d blocked acquires measured", got)
			}
			a.Release(held)
			if allocs != 0 {
				t.Fatalf("%v allocs per blocked Acquire+Release, want 0", allocs)
			}
		})
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	p, _ := New(Config{Buffers: DefaultBuffers})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		buf, err := p.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(buf)
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	p, _ := New(Config{Buffers: DefaultBuffers})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer() // not the slab
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			buf, err := p.Acquire(ctx)
			if err != nil {
				panic(err)
			}
			p.Release(buf)
		}
	})
}

func BenchmarkReservationAcquireRelease(b *testing.B) {
	p, _ := New(Config{Buffers: DefaultBuffers})
	r, _ := p.TryReserve(4)
	defer r.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		buf, err := r.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r.Release(buf)
	}
}
