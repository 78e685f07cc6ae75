package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// run is one attempt of one job on this worker.
type run struct {
	id      string
	attempt int
	job     *job.Job
	msg     jetstream.Msg
	cancel  context.CancelCauseFunc
	started time.Time
	w       *Worker
	// deadline cancels the job with ErrTimeout; the probe moves it once the input's length is
	// known.
	deadline *time.Timer

	// task is the job's media work; its Meter is what the heartbeat and progress read.
	task      media.Task
	lease     *lease // this delivery's hold on the job (lease.go)
	pid       atomic.Int64
	phases    []slog.Attr // owned by the job's goroutine
	lastPhase time.Time
	argv      atomic.Pointer[[]string]
	// A split job's chunks (split.go): how many, how many done, a count of the coordinator's
	// waits (progress for the stall watch while other workers encode), and its account.
	chunksTotal, chunksDone, splitTicks atomic.Int64
	split                               atomic.Pointer[job.SplitResult]
	passed                              int          // deliveries handed on for want of an encoder; carried in the state
	stopped                             int          // deliveries handed back at a shutdown; carried in the state
	log                                 *slog.Logger // the worker's, with the job id and attempt on every line
}

// logger is the job's logger (the worker's before the job's has been made).
func (r *run) logger(w *Worker) *slog.Logger {
	if r.log != nil {
		return r.log
	}
	return w.log.With("job", r.id, "attempt", r.attempt)
}

// Probed moves the deadline once the input's length is known (media.Observer).
func (r *run) Probed(p *ffmpeg.ProbeResult) {
	if r.job.Timeout == 0 && p.Duration > 0 && r.deadline != nil {
		r.deadline.Reset(max(0, r.w.timeout(r.job, p.Duration)-time.Since(r.started)))
	}
}

// timeout is how long a job may run: its own timeout, or TimeoutFactor times the input's
// duration (once known) but at least TimeoutFloor; never more than TimeoutCap.
func (w *Worker) timeout(j *job.Job, media time.Duration) time.Duration {
	switch {
	case j.Timeout > 0:
		return min(time.Duration(j.Timeout), w.cfg.TimeoutCap)
	case media > 0:
		return min(w.cfg.TimeoutCap, max(w.cfg.TimeoutFloor, time.Duration(w.cfg.TimeoutFactor*float64(media))))
	}
	return w.cfg.TimeoutCap
}

// Phase records how long the step that just ended took, for the job's log line
// (media.Observer).
func (r *run) Phase(name string) {
	now := time.Now()
	if r.lastPhase.IsZero() {
		r.lastPhase = r.started
	}
	r.phases = append(r.phases, slog.Duration(name, now.Sub(r.lastPhase).Round(time.Millisecond)))
	r.lastPhase = now
}

// advance is a number that grows whenever the job makes progress of any kind.
func (r *run) advance() int64 { return r.task.Meter.Advance() + r.splitTicks.Load() }

func (r *run) progress() *job.Progress {
	m := &r.task.Meter
	p := &job.Progress{
		OutTime:     float64(m.OutTimeUS.Load()) / 1e6,
		FPS:         m.FPS(),
		Speed:       m.Speed(),
		BytesIn:     m.BytesIn.Load(),
		BytesOut:    m.BytesOut.Load(),
		Throttled:   m.Waiting.Load() > 0,
		ChunksDone:  int(r.chunksDone.Load()),
		ChunksTotal: int(r.chunksTotal.Load()),
	}
	if d := time.Duration(m.Duration.Load()); d > 0 {
		p.Duration = d.Seconds()
		p.Percent = math.Min(100, math.Round(1000*p.OutTime/p.Duration)/10)
	}
	return p
}

// process runs one delivery of a job (pulled at at) and settles it with NATS, while its lease
// holds: a lost lease stops the job and leaves the delivery unsettled (lease.go).
func (w *Worker) process(msg jetstream.Msg, at time.Time, res *bufpool.Reservation) {
	if isChunkSubject(msg.Subject()) {
		w.runChunk(w.workCtx, msg, at, res)
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without metadata", "err", err)
		_ = msg.Term()
		return
	}
	r, jerr := w.newRun(msg, meta)
	r.lease = w.newLease(msg, at, r.log)
	defer r.lease.start()()
	ctx, cancel := context.WithCancelCause(w.workCtx)
	defer cancel(nil)
	r.cancel = cancel
	r.lease.whenLost(func() { cancel(ErrLeaseLost) })
	// Settling must outlive a hard stop: it is how the job gets back to the queue. It must not
	// outlive the lease: the job may be another worker's by then.
	settleCtx, endSettle := r.lease.fenced(context.WithoutCancel(ctx))
	defer endSettle()
	if jerr != nil {
		w.settle(settleCtx, r.log, r, nil, &job.Error{Class: job.ClassInvalidJob, Reason: jerr.Error(), Err: jerr})
		return
	}
	if !w.admit(ctx, settleCtx, r, meta) {
		return
	}
	if !w.register(r) {
		// The same job is already running here (a redelivery after a missed heartbeat): let
		// the running attempt settle it.
		r.log.Warn("job already running on this worker; dropping duplicate delivery")
		return
	}
	defer w.unregister(r)
	w.runJob(ctx, settleCtx, r, res)
}

// newRun decodes and validates a delivery; the run is usable (its id, to report on) even when
// the job is not.
func (w *Worker) newRun(msg jetstream.Msg, meta *jetstream.MsgMetadata) (*run, error) {
	r := &run{attempt: int(meta.NumDelivered), msg: msg, started: time.Now(), w: w}
	j, jerr := job.Decode(msg.Data())
	r.id = jobID(j, msg, meta)
	if jerr == nil {
		j.ID = r.id
		jerr = j.Validate(w.cfg.Presets)
	}
	r.job = j
	if j == nil {
		r.job = &job.Job{ID: r.id}
	}
	r.log = w.log.With("job", r.id, "attempt", r.attempt)
	return r, jerr
}

// admit decides whether this delivery runs here: not a duplicate of a running attempt, within
// the delivery limit, not canceled or already done, and with every encoder it needs. A
// delivery that does not run is settled (or left to the running attempt) here.
func (w *Worker) admit(ctx, settleCtx context.Context, r *run, meta *jetstream.MsgMetadata) bool {
	// A redelivery of a job still running here (a heartbeat lost on the way) is the running
	// attempt's to settle; it must not count against the delivery limit either.
	w.mu.Lock()
	dup := w.running[r.id] != nil
	w.mu.Unlock()
	if dup {
		r.log.Warn("job already running on this worker; dropping duplicate delivery")
		return false
	}
	st, _ := w.status(ctx, r.id)
	if st != nil {
		r.passed, r.stopped = st.Passed, st.Stopped
	}
	if r.counted() > w.cfg.MaxDeliver {
		w.settle(settleCtx, r.log, r, nil, &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("delivery limit reached: %d deliveries, the last ones did not finish (worker killed?)", r.counted()-1)})
		return false
	}
	switch {
	case st != nil && st.CancelRequested:
		w.settle(settleCtx, r.log, r, nil, &job.Error{Class: job.ClassCanceled, Reason: "canceled before it started", Err: ErrCanceled})
		return false
	case st != nil && st.State == job.StateSucceeded && r.attempt > 1 && w.committed(ctx, st.Outputs):
		// Redelivered after its outputs were committed and verified (the ack was lost): done.
		// The worker may have died between the state and the event: the event must be out.
		r.log.Info("already succeeded and outputs in place; acknowledging redelivery")
		if !w.lastEventIs(ctx, r.id, job.EventSucceeded) {
			w.emit(settleCtx, r, job.Event{Type: job.EventSucceeded, Outputs: st.Outputs})
		}
		_ = r.msg.Ack()
		return false
	case st == nil:
		w.emit(ctx, r, job.Event{Type: job.EventQueued, Time: meta.Timestamp})
	}
	if need := w.missing(ctx, r.job); len(need) > 0 {
		if handled, err := w.routeByCapability(ctx, r, st, need); !handled {
			w.settle(settleCtx, r.log, r, nil, err)
		}
		return false
	}
	return true
}

// register records the run as running here; false if the job already runs here.
func (w *Worker) register(r *run) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running[r.id] != nil {
		return false
	}
	w.running[r.id] = r
	w.metrics.running.Inc()
	if r.attempt > 1 {
		w.metrics.redelivered.Inc()
	}
	return true
}

func (w *Worker) unregister(r *run) {
	w.mu.Lock()
	delete(w.running, r.id)
	w.mu.Unlock()
	w.metrics.running.Dec()
}

// runJob runs an admitted delivery, with its deadline and its watch (heartbeats, stall,
// progress), and settles it.
func (w *Worker) runJob(ctx, settleCtx context.Context, r *run, res *bufpool.Reservation) {
	// Until the probe tells the input's length, the cap (or the job's own timeout) applies.
	r.deadline = time.AfterFunc(w.timeout(r.job, 0), func() { r.cancel(ErrTimeout) })
	defer r.deadline.Stop()

	r.log.Info("job started", "input", r.job.Input, "outputs", len(r.job.Outputs))
	w.setStatus(ctx, r, job.StateRunning, nil, nil)
	w.emit(ctx, r, job.Event{Type: job.EventStarted})

	watchDone := make(chan struct{})
	watchStop := make(chan struct{})
	go func() {
		defer close(watchDone)
		w.watch(ctx, r, watchStop)
	}()
	outs, err := w.execute(ctx, r, res)
	close(watchStop)
	<-watchDone
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	w.settle(settleCtx, r.log, r, outs, err)
}

// committed reports whether every output of a succeeded attempt is still in place, as recorded:
// a file of the recorded size, or a ladder's master playlist (its last object).
func (w *Worker) committed(ctx context.Context, outs []job.OutputResult) bool {
	if len(outs) == 0 {
		return false
	}
	for _, o := range outs {
		info, err := w.cfg.Storage.Stat(ctx, o.URL)
		if err != nil || (o.Kind == "" && info.Size >= 0 && info.Size != o.Size) {
			return false
		}
	}
	return true
}

func jobID(j *job.Job, msg jetstream.Msg, meta *jetstream.MsgMetadata) string {
	if j != nil && j.ID != "" && job.ValidID(j.ID) {
		return j.ID
	}
	if j == nil {
		// The job did not decode; its id may still be readable, so the publisher hears why.
		var idOnly struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(msg.Data(), &idOnly) == nil && job.ValidID(idOnly.ID) {
			return idOnly.ID
		}
	}
	if id := msg.Headers().Get("Nats-Msg-Id"); job.ValidID(id) {
		return id
	}
	// Stable across redeliveries, so events of every attempt land on one subject.
	return fmt.Sprintf("seq-%d", meta.Sequence.Stream)
}

// watch stops the job when it stalls, and publishes throttled progress events. (The lease
// sends the heartbeats: lease.go.)
func (w *Worker) watch(ctx context.Context, r *run, stop <-chan struct{}) {
	// Progress reports go out from a goroutine of their own: a publish held up by a NATS
	// failover (up to its timeout) must not hold up the heartbeat that keeps the job here.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { w.reportProgress(ctx, r, stop) })
	hb := time.NewTicker(w.cfg.Heartbeat)
	defer hb.Stop()
	last, lastAt := r.advance(), time.Now()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-hb.C:
			// Input read, output written or ffmpeg's clock moved. A job blocked on the ring
			// with nothing moving (ffmpeg hung, a sink that stopped) is a stall: this worker
			// stops it after StallTimeout. Until then the job is this worker's, and its lease
			// is renewed.
			if a := r.advance(); a != last {
				last, lastAt = a, time.Now()
			}
			if time.Since(lastAt) > w.cfg.StallTimeout {
				r.cancel(fmt.Errorf("%w: no progress for %s", ErrStalled, w.cfg.StallTimeout.Round(time.Second)))
				return
			}
		}
	}
}

// reportProgress publishes a progress event and state every ProgressInterval while the job
// advances. Progress is best effort: a report that cannot go out is skipped, not retried.
func (w *Worker) reportProgress(ctx context.Context, r *run, stop <-chan struct{}) {
	pr := time.NewTicker(w.cfg.ProgressInterval)
	defer pr.Stop()
	lastSent := int64(-1)
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-pr.C:
			if a := r.advance(); a != lastSent {
				lastSent = a
				p := r.progress()
				w.metrics.speed.Set(p.Speed)
				w.emit(ctx, r, job.Event{Type: job.EventProgress, Progress: p})
				w.setStatus(ctx, r, job.StateRunning, p, nil)
			}
		}
	}
}
