package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/bytebufferpool"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

const publishTimeout = 10 * time.Second

// settle publishes the outcome of a delivery (state, then event) and then acks, naks or terms
// it: whoever sees the event finds the state, and whoever sees the ack finds both.
func (w *Worker) settle(ctx context.Context, log *slog.Logger, r *run, outs []job.OutputResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err == nil {
		w.metrics.settled(r, "succeeded", "")
		w.setStatus(ctx, r, job.StateSucceeded, r.progress(), outs)
		if w.cfg.Hooks.AfterState != nil {
			w.cfg.Hooks.AfterState(r.id)
		}
		w.emit(ctx, r, job.Event{Type: job.EventSucceeded, Outputs: outs})
		if w.cfg.Hooks.BeforeAck != nil {
			w.cfg.Hooks.BeforeAck(r.id)
		}
		if aerr := r.msg.DoubleAck(ctx); aerr != nil {
			log.Warn("ack failed; a redelivery will find the job succeeded", "err", aerr)
		}
		log.Info("job succeeded", "elapsed", time.Since(r.started).Round(time.Millisecond), slog.GroupAttrs("phases", r.phases...))
		return
	}
	class, reason := classify(err)
	shutdown := errors.Is(err, ErrShutdown)
	act, delay := decide(class, r.attempt, w.cfg.MaxDeliver, w.cfg.Backoff, shutdown)
	fail := &job.Failure{Class: class, Reason: reason}
	if t := r.stderr.Load(); t != nil {
		fail.StderrTail = *t
	}
	if a := r.argv.Load(); a != nil {
		fail.Argv = ffmpeg.Quote(*a)
	}
	switch act {
	case actNak:
		w.metrics.settled(r, "retried", class)
		w.setStatus(ctx, r, job.StateQueued, nil, nil, fail)
		w.emit(ctx, r, job.Event{Type: job.EventRetrying, Error: fail, RetryIn: job.Duration(delay)})
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
			fail.Reason += retryNote(r.attempt, w.cfg.MaxDeliver) + ": giving up"
		}
		w.metrics.settled(r, string(typ), class)
		w.setStatus(ctx, r, state, nil, nil, fail)
		if class != job.ClassCanceled {
			w.deadLetter(ctx, r, fail)
		}
		w.emit(ctx, r, job.Event{Type: typ, Error: fail})
		if terr := r.msg.TermWithReason(string(class) + ": " + firstLine(reason)); terr != nil {
			log.Warn("term failed", "err", terr)
		}
		log.Warn("job "+string(typ), "class", class, "reason", reason)
	}
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
	ev.JobID, ev.Attempt, ev.WorkerID = r.id, r.attempt, w.cfg.ID
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if r.job != nil {
		ev.Metadata = r.job.Metadata
	}
	if err := publishJSON(ctx, w.js, EventSubject(r.id), ev); err != nil {
		r.logger(w).Warn("publish event", "type", ev.Type, "err", err)
	}
}

func publishJSON(ctx context.Context, js jetstream.JetStream, subject string, v any) error {
	return withJSON(ctx, v, func(ctx context.Context, b []byte) error {
		_, err := js.Publish(ctx, subject, b)
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
	st := job.Status{ID: r.id, State: state, Attempt: r.attempt, WorkerID: w.cfg.ID, Updated: time.Now().UTC(), Progress: p, Outputs: outs, Passed: r.passed}
	if r.job != nil {
		st.Input = r.job.Input
	}
	if len(fail) > 0 {
		st.Error = fail[0]
	}
	if err := putJSON(ctx, w.kv, r.id, st); err != nil {
		r.logger(w).Warn("update state", "state", state, "err", err)
	}
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
