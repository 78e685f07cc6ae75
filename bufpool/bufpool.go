// Package bufpool is the ring of media buffers: one contiguous slab, cut into
// fixed-size windows at New, handed out by Acquire and given back by Release.
//
// Nothing is allocated after New on the Acquire/Release paths, so a worker's
// media memory is fixed. When no buffer is free, Acquire blocks (waiters are
// served first come, first served) until one is released or its context is
// done: that block is the backpressure of the whole transcode pipeline.
//
// Reservations are the admission control: before a job starts, the worker
// reserves the number of buffers the job's pipeline can hold at most. The pool
// never promises more than its capacity, so a reservation's Acquire only ever
// waits on buffers held by that same reservation, and jobs cannot deadlock
// each other.
//
// Misuse (double release, releasing a buffer of another pool, using a buffer
// after releasing it, closing a reservation with buffers still out) panics
// when Config.Strict is set, as in tests, and is counted in Stats.Misuse
// otherwise, as in production. Use after release is caught until the buffer
// is acquired again by someone else; from then on it cannot be told apart.
package bufpool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultBufferSize is the size of one buffer: 1 MiB.
	DefaultBufferSize = 1 << 20
	// DefaultBuffers is the number of buffers in the ring when Config.Buffers is 0.
	DefaultBuffers = 64
)

var (
	// ErrTooLarge is returned by Reserve when more buffers are asked for than
	// the pool has: waiting could never succeed.
	ErrTooLarge = errors.New("bufpool: reservation larger than the pool")
	// ErrInvalidSize is returned by Reserve for a size below 1.
	ErrInvalidSize = errors.New("bufpool: reservation size must be at least 1")
	// ErrClosed is returned by Reservation.Acquire once the reservation is closed.
	ErrClosed = errors.New("bufpool: reservation closed")
	// ErrInvalidConfig is wrapped by the errors New returns.
	ErrInvalidConfig = errors.New("bufpool: invalid config")
)

// Config sizes the ring.
type Config struct {
	// Buffers is the number of buffers in the ring; 0 means DefaultBuffers.
	Buffers int
	// BufferSize is the size of each buffer in bytes; 0 means DefaultBufferSize.
	BufferSize int
	// Strict makes misuse panic instead of being counted in Stats.Misuse.
	Strict bool
}

// Stats is a snapshot of the pool's counters.
type Stats struct {
	Capacity int // buffers in the ring
	InUse    int // buffers out of the ring now
	Reserved int // buffers promised to open reservations

	Acquires  uint64        // successful buffer acquires
	Waits     uint64        // buffer acquires that had to block, counted when they start to wait
	TotalWait time.Duration // time spent blocked by successful acquires
	MaxWait   time.Duration // longest single blocked acquire

	Misuse uint64 // misuse counted (non-Strict pools only)
}

const (
	stateFree uint32 = iota
	stateInUse
)

// Buffer is one fixed window of the pool's slab. It is owned by whoever
// acquired it until it is released; after that it must not be touched.
type Buffer struct {
	pool   *Pool
	owner  *Reservation // nil when acquired from the pool directly
	window []byte       // len == cap == BufferSize, a slice of the slab
	n      int
	index  int32
	state  atomic.Uint32 // atomic so the unlocked accessors can check for use after release
}

// Space returns the whole window, to read into. Follow with SetLen.
func (b *Buffer) Space() []byte {
	if b.state.Load() != stateInUse {
		b.pool.misuse("use of a released buffer")
		return nil
	}
	return b.window
}

// SetLen sets the length of the valid data. It panics if n is negative or
// larger than the buffer: that is a programming error in any mode.
func (b *Buffer) SetLen(n int) {
	if n < 0 || n > len(b.window) {
		panic(fmt.Sprintf("bufpool: SetLen(%d) outside [0, %d]", n, len(b.window)))
	}
	if b.state.Load() != stateInUse {
		b.pool.misuse("use of a released buffer")
		return
	}
	b.n = n
}

// Bytes returns the valid data, the window up to Len. After release it
// returns nil (non-Strict) so stale data of the next owner is never exposed.
func (b *Buffer) Bytes() []byte {
	if b.state.Load() != stateInUse {
		b.pool.misuse("use of a released buffer")
		return nil
	}
	return b.window[:b.n]
}

// Len is the length of the valid data.
func (b *Buffer) Len() int { return b.n }

// waiter is one blocked Acquire or Reserve. Records are recycled through the
// pool's free list together with their channel, so blocking allocates only
// when more goroutines wait at once than ever before.
type waiter struct {
	prev, next *waiter
	ch         chan struct{} // cap 1: the granter never blocks
	n          int           // Reserve: buffers asked for; 0 for a buffer acquire
	owner      *Reservation  // buffer acquire through a reservation
	res        *Reservation  // Reserve: the reservation to hand over
	buf        *Buffer       // granted buffer
	err        error         // set instead of a grant (reservation closed)
	done       bool          // granted or failed; the token is in ch
}

// waitq is an intrusive FIFO of waiters.
type waitq struct{ head, tail *waiter }

func (q *waitq) push(w *waiter) {
	w.prev, w.next = q.tail, nil
	if q.tail == nil {
		q.head = w
	} else {
		q.tail.next = w
	}
	q.tail = w
}

func (q *waitq) remove(w *waiter) {
	if w.prev == nil {
		q.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		q.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next = nil, nil
}

// Pool is the ring. Its methods are safe for concurrent use.
type Pool struct {
	size   int
	strict bool
	bufs   []Buffer

	misuseCount atomic.Uint64

	mu         sync.Mutex
	free       []int32 // stack of free buffer indices
	unreserved int     // buffers out that no open reservation accounts for
	reserved   int     // sum of the sizes of open reservations
	queue      waitq   // blocked Pool.Acquire and Reserve calls, FIFO
	spare      *waiter // free list of waiter records
	acquires   uint64
	waits      uint64
	totalWait  time.Duration
	maxWait    time.Duration
}

// New allocates the slab and every Buffer. Invalid fields are named in the error.
func New(cfg Config) (*Pool, error) {
	if cfg.Buffers < 0 {
		return nil, fmt.Errorf("%w: Buffers is %d, must be >= 0", ErrInvalidConfig, cfg.Buffers)
	}
	if cfg.BufferSize < 0 {
		return nil, fmt.Errorf("%w: BufferSize is %d, must be >= 0", ErrInvalidConfig, cfg.BufferSize)
	}
	if cfg.Buffers == 0 {
		cfg.Buffers = DefaultBuffers
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	const maxInt32 = 1<<31 - 1
	if cfg.Buffers > maxInt32 {
		return nil, fmt.Errorf("%w: Buffers is %d, must be <= %d", ErrInvalidConfig, cfg.Buffers, maxInt32)
	}
	if cfg.BufferSize > int(^uint(0)>>1)/cfg.Buffers {
		return nil, fmt.Errorf("%w: Buffers*BufferSize (%d*%d) overflows", ErrInvalidConfig, cfg.Buffers, cfg.BufferSize)
	}
	slab := make([]byte, cfg.Buffers*cfg.BufferSize)
	p := &Pool{
		size:   cfg.BufferSize,
		strict: cfg.Strict,
		bufs:   make([]Buffer, cfg.Buffers),
		free:   make([]int32, cfg.Buffers),
	}
	for i := range p.bufs {
		b := &p.bufs[i]
		b.pool = p
		b.index = int32(i)
		off := i * cfg.BufferSize
		// Full slice expression: an append can never run into the next window.
		b.window = slab[off : off+cfg.BufferSize : off+cfg.BufferSize]
		// Lowest index on top, so a quiet pool keeps reusing the same few windows.
		p.free[len(p.free)-1-i] = int32(i)
	}
	return p, nil
}

// Capacity is the number of buffers in the ring.
func (p *Pool) Capacity() int { return len(p.bufs) }

// BufferSize is the size of each buffer in bytes.
func (p *Pool) BufferSize() int { return p.size }

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Capacity:  len(p.bufs),
		InUse:     len(p.bufs) - len(p.free),
		Reserved:  p.reserved,
		Acquires:  p.acquires,
		Waits:     p.waits,
		TotalWait: p.totalWait,
		MaxWait:   p.maxWait,
		Misuse:    p.misuseCount.Load(),
	}
}

// Acquire returns a buffer not promised to any reservation, with Len 0. It
// blocks until one is free or ctx is done, in which case it returns
// ctx.Err(). Blocked callers are served in arrival order, behind any blocked
// Reserve.
func (p *Pool) Acquire(ctx context.Context) (*Buffer, error) {
	if err := doneErr(ctx); err != nil {
		return nil, err
	}
	p.mu.Lock()
	// Never overtake a queued waiter: FIFO also keeps a big Reserve from starving.
	if p.queue.head == nil && p.unreserved+p.reserved < len(p.bufs) {
		p.unreserved++
		b := p.take(nil)
		p.acquires++
		p.mu.Unlock()
		return b, nil
	}
	return p.wait(ctx, &p.queue, nil)
}

// TryAcquire is Acquire without blocking: ok is false when Acquire would block.
func (p *Pool) TryAcquire() (b *Buffer, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queue.head != nil || p.unreserved+p.reserved >= len(p.bufs) {
		return nil, false
	}
	p.unreserved++
	p.acquires++
	return p.take(nil), true
}

// Release gives a buffer back. It accepts buffers acquired from the pool or
// from any of its reservations: the buffer remembers where it came from.
func (p *Pool) Release(b *Buffer) {
	if b == nil || b.pool != p {
		p.misuse("release of a buffer from another pool")
		return
	}
	p.mu.Lock()
	if b.state.Load() != stateInUse {
		p.mu.Unlock()
		p.misuse("double release")
		return
	}
	p.release(b)
	p.mu.Unlock()
}

// TryReserve promises n buffers if that is possible now without overcommitting
// the ring (reserved + unreserved in use + n <= capacity) and without
// overtaking a blocked Acquire or Reserve. It never blocks.
func (p *Pool) TryReserve(n int) (*Reservation, bool) {
	if n < 1 || n > len(p.bufs) {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.queue.head != nil || p.unreserved+p.reserved+n > len(p.bufs) {
		return nil, false
	}
	p.reserved += n
	return &Reservation{pool: p, size: n}, true
}

// Reserve promises n buffers, blocking in arrival order until the pool can
// make the promise or ctx is done. n larger than the capacity is ErrTooLarge.
func (p *Pool) Reserve(ctx context.Context, n int) (*Reservation, error) {
	if n < 1 {
		return nil, ErrInvalidSize
	}
	if n > len(p.bufs) {
		return nil, fmt.Errorf("%w: %d buffers asked, capacity %d", ErrTooLarge, n, len(p.bufs))
	}
	if err := doneErr(ctx); err != nil {
		return nil, err
	}
	r := &Reservation{pool: p, size: n}
	p.mu.Lock()
	if p.queue.head == nil && p.unreserved+p.reserved+n <= len(p.bufs) {
		p.reserved += n
		p.mu.Unlock()
		return r, nil
	}
	w := p.getWaiter()
	w.n, w.res = n, r
	p.queue.push(w)
	p.mu.Unlock()

	select {
	case <-w.ch:
		p.mu.Lock()
		p.putWaiter(w)
		p.mu.Unlock()
		return r, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if w.done {
		// Granted while we were giving up: hand the promise on.
		<-w.ch
		p.closeReservation(r)
	} else {
		p.queue.remove(w)
		// We may have been the head holding others back.
		p.dispatch()
	}
	p.putWaiter(w)
	p.mu.Unlock()
	return nil, ctx.Err()
}

// wait blocks the caller on q (the pool's queue, or owner's). It is entered
// with p.mu held and releases it.
func (p *Pool) wait(ctx context.Context, q *waitq, owner *Reservation) (*Buffer, error) {
	w := p.getWaiter()
	w.owner = owner
	q.push(w)
	p.waits++ // counted on entry, so an observer can see that an acquire is blocked
	p.mu.Unlock()
	start := time.Now()

	select {
	case <-w.ch:
		d := time.Since(start)
		p.mu.Lock()
		b, err := w.buf, w.err
		p.putWaiter(w)
		if b != nil {
			p.acquires++
			p.totalWait += d
			if d > p.maxWait {
				p.maxWait = d
			}
		}
		p.mu.Unlock()
		return b, err
	case <-ctx.Done():
	}
	p.mu.Lock()
	if w.done {
		// Granted (or failed) while we were giving up: drain the token and
		// hand a granted buffer on, so nothing is lost.
		<-w.ch
		if w.buf != nil {
			p.release(w.buf)
		}
	} else {
		q.remove(w)
		if q == &p.queue {
			p.dispatch()
		}
	}
	p.putWaiter(w)
	p.mu.Unlock()
	return nil, ctx.Err()
}

// take pops a free buffer for owner. Called with p.mu held after the
// accounting proved a buffer is free.
func (p *Pool) take(owner *Reservation) *Buffer {
	i := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	b := &p.bufs[i]
	b.owner = owner
	b.n = 0
	b.state.Store(stateInUse)
	return b
}

// release returns b to the free stack and wakes whoever the freed unit of
// accounting allows. Called with p.mu held.
func (p *Pool) release(b *Buffer) {
	owner := b.owner
	b.owner = nil
	b.n = 0
	b.state.Store(stateFree)
	p.free = append(p.free, b.index) // never grows: cap is the capacity
	if owner != nil {
		owner.inUse--
		if !owner.closed {
			// Only this reservation's waiters can use its freed unit.
			if w := owner.queue.head; w != nil {
				owner.queue.remove(w)
				owner.inUse++
				p.grant(w, p.take(owner))
			}
			return
		}
	}
	p.unreserved--
	p.dispatch()
}

// dispatch serves the pool queue from the head while the accounting allows.
// Called with p.mu held.
func (p *Pool) dispatch() {
	for w := p.queue.head; w != nil; w = p.queue.head {
		if w.res != nil {
			if p.unreserved+p.reserved+w.n > len(p.bufs) {
				return
			}
			p.queue.remove(w)
			p.reserved += w.n
			w.done = true
			w.ch <- struct{}{}
			continue
		}
		if p.unreserved+p.reserved >= len(p.bufs) {
			return
		}
		p.queue.remove(w)
		p.unreserved++
		p.grant(w, p.take(nil))
	}
}

func (p *Pool) grant(w *waiter, b *Buffer) {
	w.buf = b
	w.done = true
	w.ch <- struct{}{}
}

func (p *Pool) getWaiter() *waiter {
	w := p.spare
	if w == nil {
		return &waiter{ch: make(chan struct{}, 1)}
	}
	p.spare = w.next
	w.next = nil
	return w
}

func (p *Pool) putWaiter(w *waiter) {
	*w = waiter{ch: w.ch, next: p.spare}
	p.spare = w
}

// closeReservation withdraws r's promise. Called with p.mu held.
func (p *Pool) closeReservation(r *Reservation) {
	if r.closed {
		return
	}
	r.closed = true
	p.reserved -= r.size
	// Buffers still out now count as unreserved until released.
	p.unreserved += r.inUse
	for w := r.queue.head; w != nil; w = r.queue.head {
		r.queue.remove(w)
		w.err = ErrClosed
		w.done = true
		w.ch <- struct{}{}
	}
	p.dispatch()
}

func (p *Pool) misuse(what string) {
	if p.strict {
		panic("bufpool: " + what)
	}
	p.misuseCount.Add(1)
}

// doneErr reports a done context without blocking and without allocating.
func doneErr(ctx context.Context) error {
	done := ctx.Done()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return ctx.Err()
	default:
		return nil
	}
}

// Reservation is a promise of Size buffers made by a Pool. Its Acquire never
// waits on buffers held by anyone else. Close it when the job ends.
type Reservation struct {
	pool *Pool
	size int

	// Guarded by pool.mu.
	inUse  int
	closed bool
	queue  waitq
}

// Size is the number of buffers promised.
func (r *Reservation) Size() int { return r.size }

// InUse is the number of the reservation's buffers out now.
func (r *Reservation) InUse() int {
	r.pool.mu.Lock()
	defer r.pool.mu.Unlock()
	return r.inUse
}

// Acquire returns a buffer with Len 0, blocking in arrival order while the
// reservation already holds Size buffers, until one of them is released, ctx
// is done (ctx.Err()) or the reservation is closed (ErrClosed).
func (r *Reservation) Acquire(ctx context.Context) (*Buffer, error) {
	if err := doneErr(ctx); err != nil {
		return nil, err
	}
	p := r.pool
	p.mu.Lock()
	if r.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	if r.queue.head == nil && r.inUse < r.size {
		r.inUse++
		// The accounting (unreserved + reserved <= capacity) guarantees a free buffer.
		b := p.take(r)
		p.acquires++
		p.mu.Unlock()
		return b, nil
	}
	return p.wait(ctx, &r.queue, r)
}

// TryAcquire is Acquire without blocking: ok is false when Acquire would
// block or the reservation is closed.
func (r *Reservation) TryAcquire() (b *Buffer, ok bool) {
	p := r.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.closed || r.queue.head != nil || r.inUse >= r.size {
		return nil, false
	}
	r.inUse++
	p.acquires++
	return p.take(r), true
}

// Release is Pool.Release.
func (r *Reservation) Release(b *Buffer) { r.pool.Release(b) }

// Close gives the promise back and fails blocked Acquires with ErrClosed. It
// is idempotent. Buffers still out are misuse: in Strict mode Close panics
// (after closing); otherwise they count as unreserved until released.
func (r *Reservation) Close() {
	p := r.pool
	p.mu.Lock()
	wasOpen := !r.closed
	out := r.inUse
	p.closeReservation(r)
	p.mu.Unlock()
	if wasOpen && out > 0 {
		p.misuse("reservation closed with buffers still out")
	}
}
