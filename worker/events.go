package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/bytebufferpool"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

const (
	publishTimeout = 10 * time.Second
	// retryAttemptTimeout bounds one try of a retried write, so that a try stuck in a failover
	// leaves room for the next within the settle budget.
	retryAttemptTimeout = 3 * time.Second
)

// settle publishes the outcome of a delivery (state, then event) and then acks, naks or terms
// it: whoever sees the event finds the state, and whoever sees the ack finds both. A delivery
// whose lease was lost is left alone (decide).
func (w *Worker) settle(ctx context.Context, log *slog.Logger, r *run, outs []job.OutputResult, err error) {
	// The outcome's writes are retried through a NATS failover, within half the ack wait
	// (the ack itself must come before NATS hands the job to another worker).
	ctx, cancel := context.WithTimeout(ctx, max(publishTimeout, w.cfg.AckWait/2))
	defer cancel()
	var class job.Class
	var reason string
	if err != nil {
		class, reason = classify(err)
	}
	shutdown := errors.Is(err, ErrShutdown)
	fenced := errors.Is(err, ErrLeaseLost) || (r.lease != nil && r.lease.Lost())
	act, delay := decide(class, r.counted(), w.cfg.MaxDeliver, w.cfg.Backoff, shutdown, fenced)
	switch act {
	case actLeave:
		// The job may be another worker's now: whatever this one wrote could undo that one's.
		w.metrics.settled(r, "abandoned", class)
		log.Warn("job abandoned: lease lost; nothing committed or reported, the delivery left to NATS",
			"elapsed", time.Since(r.started).Round(time.Millisecond))
		return
	case actAck:
		w.succeeded(ctx, log, r, outs)
		return
	}
	fail := &job.Failure{Class: class, Reason: reason}
	fail.StderrTail = r.task.Meter.StderrTail()
	var rb *media.RolledBackError
	if errors.As(err, &rb) {
		fail.Removed = rb.Removed
	}
	if a := r.argv.Load(); a != nil {
		fail.Argv = ffmpeg.Quote(*a)
	}
	switch act {
	case actNak:
		w.metrics.settled(r, "retried", class)
		if shutdown {
			// The worker's own stop, not the job's fault: recorded before the nak, so the next
			// delivery does not count this one.
			r.stopped++
		}
		w.setStatusDurably(ctx, r, job.StateQueued, nil, fail)
		w.emitDurably(ctx, r, job.Event{Type: job.EventRetrying, Error: fail, RetryIn: job.Duration(delay)})
		if nerr := r.msg.NakWithDelay(delay); nerr != nil {
			log.Warn("nak failed; the job returns after the ack wait", "err", nerr)
		}
		log.Warn("job will be retried", "class", class, "reason", reason, "retry_in", delay)
	case actTerm:
		typ, state := job.EventFailed, job.StateFailed
		if class == job.ClassCanceled {
			typ, state = job.EventCanceled, job.StateCanceled
		}
		if class == job.ClassTransient || class == job.ClassInternal {
			fail.Reason += retryNote(r.counted(), w.cfg.MaxDeliver) + ": giving up"
		}
		w.metrics.settled(r, string(typ), class)
		w.setStatusDurably(ctx, r, state, nil, fail)
		if class != job.ClassCanceled {
			w.deadLetter(ctx, r, fail)
		}
		w.emitDurably(ctx, r, job.Event{Type: typ, Error: fail})
		if terr := r.msg.TermWithReason(string(class) + ": " + firstLine(reason)); terr != nil {
			log.Warn("term failed", "err", terr)
		}
		log.Warn("job "+string(typ), "class", class, "reason", reason)
	}
}

// succeeded writes a success (state, then event) and acks it.
func (w *Worker) succeeded(ctx context.Context, log *slog.Logger, r *run, outs []job.OutputResult) {
	w.metrics.settled(r, "succeeded", "")
	st := w.statusOf(r, job.StateSucceeded, r.progress(), outs)
	w.retry(ctx, r, "update state to succeeded", func(ctx context.Context) error { return putJSON(ctx, w.kv, r.id, st) })
	if w.cfg.Hooks.AfterState != nil {
		w.cfg.Hooks.AfterState(r.id)
	}
	w.emitDurably(ctx, r, job.Event{Type: job.EventSucceeded, Outputs: outs, Split: r.split.Load()})
	if w.cfg.Hooks.BeforeAck != nil {
		w.cfg.Hooks.BeforeAck(r.id)
	}
	if r.lease != nil && r.lease.Lost() {
		log.Warn("lease lost while the success was written: not acked; a redelivery finds what was written")
		return
	}
	if aerr := r.msg.DoubleAck(ctx); aerr != nil {
		log.Warn("ack failed; a redelivery will find the job succeeded", "err", aerr)
	}
	log.Info("job succeeded", "elapsed", time.Since(r.started).Round(time.Millisecond), slog.GroupAttrs("phases", r.phases...))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// emit publishes an event on the job's subject. Events are best effort: a failure is logged and
// never fails the job.
func (w *Worker) emit(ctx context.Context, r *run, ev job.Event) {
	if err := publishJSON(ctx, w.js, EventSubject(r.id), w.event(r, ev)); err != nil {
		r.logger(w).Warn("publish event", "type", ev.Type, "err", err)
	}
}

func (w *Worker) event(r *run, ev job.Event) job.Event {
	ev.JobID, ev.Attempt, ev.WorkerID = r.id, r.attempt, w.cfg.ID
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if r.job != nil {
		ev.Metadata = r.job.Metadata
	}
	return ev
}

// emitDurably publishes an outcome event, retrying until it is stored or ctx (the settle
// budget) ends: a publish made while the events stream has no leader (a NATS failover takes
// seconds) must not leave a watcher without the job's outcome.
func (w *Worker) emitDurably(ctx context.Context, r *run, ev job.Event) {
	ev = w.event(r, ev)
	// A retry after a lost reply must not store the event twice: the stream deduplicates by
	// message id.
	id := jetstream.WithMsgID(fmt.Sprintf("%s.%d.%s", r.id, r.attempt, ev.Type))
	w.retry(ctx, r, "publish "+string(ev.Type)+" event", func(ctx context.Context) error {
		return publishJSON(ctx, w.js, EventSubject(r.id), ev, id)
	})
}

// setStatusDurably is setStatus retried like emitDurably: the state is what a redelivery and
// every client read.
func (w *Worker) setStatusDurably(ctx context.Context, r *run, state job.State, outs []job.OutputResult, fail ...*job.Failure) {
	st := w.statusOf(r, state, nil, outs, fail...)
	w.retry(ctx, r, "update state to "+string(state), func(ctx context.Context) error {
		return putJSON(ctx, w.kv, r.id, st)
	})
}

// retry calls fn until it succeeds or ctx ends, waiting a little longer after each failure.
func (w *Worker) retry(ctx context.Context, r *run, what string, fn func(context.Context) error) {
	wait := 100 * time.Millisecond
	t := time.NewTimer(0)
	<-t.C
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, retryAttemptTimeout)
		err := fn(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				r.logger(w).Info(what+": done after retries", "attempts", attempt)
			}
			return
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			r.logger(w).Warn(what+": giving up", "attempts", attempt, "err", err)
			return
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func publishJSON(ctx context.Context, js jetstream.JetStream, subject string, v any, opts ...jetstream.PublishOpt) error {
	return withJSON(ctx, v, func(ctx context.Context, b []byte) error {
		_, err := js.Publish(ctx, subject, b, opts...)
		return err
	})
}

// withJSON encodes v into a pooled buffer and hands it to send within publishTimeout; the
// buffer goes back to the pool after send returns (the NATS client has copied it by then).
func withJSON(ctx context.Context, v any, send func(context.Context, []byte) error) error {
	bb := bytebufferpool.Get()
	defer bytebufferpool.Put(bb)
	if err := json.NewEncoder(bb).Encode(v); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	return send(ctx, bb.B)
}

func (w *Worker) setStatus(ctx context.Context, r *run, state job.State, p *job.Progress, outs []job.OutputResult, fail ...*job.Failure) {
	if err := putJSON(ctx, w.kv, r.id, w.statusOf(r, state, p, outs, fail...)); err != nil {
		r.logger(w).Warn("update state", "state", state, "err", err)
	}
}

func (w *Worker) statusOf(r *run, state job.State, p *job.Progress, outs []job.OutputResult, fail ...*job.Failure) job.Status {
	st := job.Status{ID: r.id, State: state, Attempt: r.attempt, WorkerID: w.cfg.ID, Updated: time.Now().UTC(), Progress: p, Outputs: outs, Passed: r.passed, Stopped: r.stopped}
	if r.job != nil {
		st.Input = r.job.Input
	}
	if len(fail) > 0 {
		st.Error = fail[0]
	}
	st.ChunksDone, st.ChunksTotal = int(r.chunksDone.Load()), int(r.chunksTotal.Load())
	if state == job.StateSucceeded {
		st.Split = r.split.Load()
	}
	return st
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	return withJSON(ctx, v, func(ctx context.Context, b []byte) error {
		_, err := kv.Put(ctx, key, b)
		return err
	})
}

func (w *Worker) status(ctx context.Context, id string) (*job.Status, error) {
	return getStatus(ctx, w.kv, id)
}

func getStatus(ctx context.Context, kv jetstream.KeyValue, id string) (*job.Status, error) {
	e, err := kv.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var st job.Status
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// lastEventIs reports whether the job's latest event has type t.
func (w *Worker) lastEventIs(ctx context.Context, id string, t job.EventType) bool {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	s, err := w.js.Stream(ctx, EventsStream)
	if err != nil {
		return false
	}
	m, err := s.GetLastMsgForSubject(ctx, EventSubject(id))
	if err != nil {
		return false
	}
	var ev job.Event
	return json.Unmarshal(m.Data, &ev) == nil && ev.Type == t
}
