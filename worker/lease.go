package worker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseLost ends a job (or chunk task) whose lease this worker could not renew in time: its
// in-progress acks went unanswered (a partition, the connection gone) for longer than it had
// left of the ack wait, so NATS may have handed the delivery to another worker already. The
// job is stopped; nothing of it is committed, reported, acked or naked by this worker.
var ErrLeaseLost = errors.New("worker: job lease lost (in-progress acks unanswered): another worker may own the job now")

// ackProgress is JetStream's in-progress ack: it restarts the delivery's ack wait.
var ackProgress = []byte("+WPI")

// leaseRetry is how soon a renewal that failed is tried again (within the lease's time left).
const leaseRetry = 500 * time.Millisecond

// leaseTTL is how long a confirmed renewal (or the delivery) holds the lease: the ack wait less
// a fifth of it, so that the job has stopped before the server redelivers it. NATS restarts
// the ack wait when it receives an in-progress ack, which is after this worker sent it: counted
// from the send, the lease always ends before the server's clock does.
func leaseTTL(ackWait time.Duration) time.Duration { return ackWait - ackWait/5 }

// lease is this worker's hold on one delivery. JetStream's own in-progress ack
// (jetstream.Msg.InProgress) is fire-and-forget: a worker cut off from NATS would go on
// believing it holds the job. The lease sends it as a request instead, and counts a renewal
// only once the server's reply is in.
type lease struct {
	msg   jetstream.Msg
	nc    *nats.Conn
	ttl   time.Duration
	every time.Duration
	log   *slog.Logger
	// renewed is when (unix ns) the latest confirmed renewal was sent, or the delivery was
	// requested.
	renewed atomic.Int64

	mu     sync.Mutex
	lost   bool
	onLost []func()
}

// newLease is the lease of a delivery requested (pulled) at since.
func (w *Worker) newLease(msg jetstream.Msg, since time.Time, log *slog.Logger) *lease {
	l := &lease{msg: msg, nc: w.cfg.Conn, ttl: leaseTTL(w.cfg.AckWait), every: w.cfg.Heartbeat, log: log}
	l.renewed.Store(since.UnixNano())
	return l
}

// left is the time the lease has left.
func (l *lease) left() time.Duration {
	return time.Until(time.Unix(0, l.renewed.Load()).Add(l.ttl))
}

// Lost reports whether the lease was lost.
func (l *lease) Lost() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// whenLost calls f once the lease is lost (at once if it is already).
func (l *lease) whenLost(f func()) {
	l.mu.Lock()
	if !l.lost {
		l.onLost = append(l.onLost, f)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	f()
}

func (l *lease) lose() {
	l.mu.Lock()
	if l.lost {
		l.mu.Unlock()
		return
	}
	l.lost = true
	fs := l.onLost
	l.onLost = nil
	l.mu.Unlock()
	l.log.Warn("lease lost: in-progress acks unanswered for the ack wait; stopping the job, reporting nothing", "ttl", l.ttl)
	for _, f := range fs {
		f()
	}
}

// fenced is ctx, also canceled with ErrLeaseLost when the lease is lost.
func (l *lease) fenced(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	l.whenLost(func() { cancel(ErrLeaseLost) })
	return ctx, func() { cancel(nil) }
}

// renewOnce sends one in-progress ack and waits for the server's reply, no longer than the
// lease has left.
func (l *lease) renewOnce(ctx context.Context) error {
	left := l.left()
	if left <= 0 {
		return ErrLeaseLost
	}
	ctx, cancel := context.WithTimeout(ctx, min(left, max(l.every, leaseRetry)))
	defer cancel()
	sent := time.Now()
	if _, err := l.nc.RequestWithContext(ctx, l.msg.Reply(), ackProgress); err != nil {
		return err
	}
	for {
		prev := l.renewed.Load()
		if prev >= sent.UnixNano() || l.renewed.CompareAndSwap(prev, sent.UnixNano()) {
			return nil
		}
	}
}

// Renew renews the lease now, trying again until the server confirms or the lease is lost:
// called before anything is committed, it gives what follows (the commit, the outcome's
// writes, the ack) a whole lease. It returns ErrLeaseLost, or ctx's cause.
func (l *lease) Renew(ctx context.Context) error {
	t := time.NewTimer(0)
	<-t.C
	defer t.Stop()
	for {
		if l.Lost() {
			return ErrLeaseLost
		}
		err := l.renewOnce(ctx)
		if err == nil {
			return nil
		}
		if l.left() <= 0 {
			l.lose()
			return ErrLeaseLost
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		t.Reset(min(leaseRetry, l.left()))
		select {
		case <-t.C:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// start runs the keeper: it renews the lease every Heartbeat (sooner again after a failure)
// and loses it when the time left runs out. end stops it and waits for it.
func (l *lease) start() (end func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.keep(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (l *lease) keep(ctx context.Context) {
	t := time.NewTimer(min(l.every, l.left()))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l.left() <= 0 {
			l.lose()
			return
		}
		next := l.every
		if err := l.renewOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			l.log.Warn("lease not renewed", "err", err, "left", l.left().Round(time.Millisecond))
			next = min(l.every, leaseRetry)
		}
		t.Reset(max(0, min(next, l.left())))
	}
}
