// Package worker pulls transcode jobs from NATS JetStream and runs them: admission against the
// buffer ring, the job's pipeline around a supervised ffmpeg, heartbeats, events, state, cancel
// and drain. How a failure is acknowledged (ack, nak with delay, term) is decided in one place,
// disposition.go, from the error's class.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// Worker runs jobs from the shared consumer. Start it, then Shutdown it.
type Worker struct {
	cfg  Config
	log  *slog.Logger
	ring *bufpool.Pool
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	cons []jetstream.Consumer // one per priority: high, normal, low

	// bell is rung (without blocking) by a subscription to the job subjects; pulls counts the
	// jobs pulled, for pullOrder. Both belong to the fetch loop.
	bell                  chan struct{}
	rung                  atomic.Uint32 // bit i: queue i (high, normal, low) had a job published
	bellSub, chunkBellSub *nats.Subscription
	pulls                 uint64

	slots chan struct{}

	mu      sync.Mutex
	running map[string]*run
	started bool
	stopped bool

	// fetchCtx stops pulling (soft stop); workCtx stops running jobs (hard stop). They are the
	// worker's own lifetime contexts.
	fetchCtx  context.Context
	fetchStop context.CancelFunc
	workCtx   context.Context
	workStop  context.CancelCauseFunc
	loopDone  chan struct{}
	jobs      sync.WaitGroup
	cancelSub *nats.Subscription
	// ffmpegVersion goes into dead letters and the registry; learned beside the first jobs,
	// not before them.
	ffmpegVersion atomic.Pointer[string]
	metrics       *metrics
	advertDone    chan struct{}
	ownStorage    bool                     // Storage was made by New, so Shutdown closes it
	caps          atomic.Pointer[[]string] // encoders offered, learned once
	registry      jetstream.KeyValue       // nil with NoRegistry
	media         *media.Engine            // runs each job's media work
	// Split jobs (split.go): chunk records, the chunk task consumers (high, normal, low), and
	// the chunks running here, by record key, for cancel.
	splitKV   jetstream.KeyValue
	chunkCons []jetstream.Consumer
	chunkRuns map[string]context.CancelCauseFunc
	warnings  []string // found at Start, for the registry (WorkerInfo.Warnings)
	live      struct { // liveWorkers' count, and when it was taken
		sync.Mutex
		n  int
		at time.Time
	}
}

// Errors that end a job for a reason of the worker's, not of ffmpeg's.
var (
	ErrShutdown = errors.New("worker: shutting down")
	ErrCanceled = errors.New("worker: job canceled")
	ErrTimeout  = errors.New("worker: job timed out")
	ErrStalled  = errors.New("worker: job stalled")
)

// New validates cfg and allocates the ring. Nothing touches NATS until Start.
func New(cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ring, err := bufpool.New(bufpool.Config{Buffers: cfg.RingBuffers})
	if err != nil {
		return nil, fmt.Errorf("worker: ring: %w", err)
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	ownStorage := cfg.Storage == nil
	if ownStorage {
		sc := cfg.StorageConfig
		if sc.JetStream == nil {
			sc.JetStream = js
		}
		if sc.ObjectReplicas == 0 {
			sc.ObjectReplicas = Replicas(cfg.Conn)
		}
		if sc.TempDir == "" {
			sc.TempDir = cfg.SpoolDir
		}
		if cfg.Storage, err = storage.New(sc); err != nil {
			return nil, fmt.Errorf("worker: storage: %w", err)
		}
	}
	eng, err := media.New(cfg.mediaConfig())
	if err != nil {
		if ownStorage {
			cfg.Storage.Close()
		}
		return nil, fmt.Errorf("worker: %w", err)
	}
	w := &Worker{
		media:      eng,
		ownStorage: ownStorage,
		cfg:        cfg,
		log:        cfg.Logger.With("worker", cfg.ID),
		ring:       ring,
		js:         js,
		slots:      make(chan struct{}, cfg.Slots),
		running:    map[string]*run{},
	}
	w.metrics = newMetrics(w)
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Ring exposes the ring's statistics.
func (w *Worker) Ring() bufpool.Stats { return w.ring.Stats() }

// Start creates what the worker needs on NATS and starts pulling jobs. ctx bounds only the setup.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker: already started")
	}
	replicas := Replicas(w.cfg.Conn)
	kv, err := EnsureStreams(ctx, w.js, replicas)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	cons, err := ensureConsumers(ctx, w.js, w.cfg.AckWait, replicas)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if w.splitKV, err = ensureSplitStores(ctx, w.js, replicas); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := ensureObjectStore(ctx, w.js, jetstream.ObjectStoreConfig{Bucket: UploadsBucket,
		Description: "inputs uploaded by transcoder submit --upload", Replicas: replicas}); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	w.bell = make(chan struct{}, 1)
	// Jobs and chunk tasks ring the same bell.
	ring := func(m *nats.Msg) {
		w.rung.Or(1 << priorityIndex(m.Subject))
		select {
		case w.bell <- struct{}{}:
		default:
		}
	}
	if w.bellSub, err = w.cfg.Conn.Subscribe(JobsSubjects, ring); err != nil {
		return fmt.Errorf("worker: subscribe %s: %w", JobsSubjects, err)
	}
	if w.chunkBellSub, err = w.cfg.Conn.Subscribe(ChunksSubjects, ring); err != nil {
		return fmt.Errorf("worker: subscribe %s: %w", ChunksSubjects, err)
	}
	w.kv, w.cons, w.chunkCons = kv, cons[:3], cons[3:]
	w.chunkRuns = map[string]context.CancelCauseFunc{}
	// What this worker can encode decides which jobs it takes: learned now (ffmpeg -encoders,
	// tens of ms), not on the path of the first job.
	w.encoders(ctx)
	var registry jetstream.KeyValue
	if !w.cfg.NoRegistry {
		if registry, err = ensureRegistry(ctx, w.js, replicas); err != nil {
			return fmt.Errorf("worker: %w", err)
		}
		w.registry = registry
	}
	w.cancelSub, err = w.cfg.Conn.Subscribe(cancelSubjects, w.onCancel)
	if err != nil {
		return fmt.Errorf("worker: subscribe %s: %w", cancelSubjects, err)
	}
	w.warnings = w.checkSpool()
	w.fetchCtx, w.fetchStop = context.WithCancel(context.Background())
	w.workCtx, w.workStop = context.WithCancelCause(context.Background())
	w.loopDone = make(chan struct{})
	w.advertDone = make(chan struct{})
	w.started = true
	go w.fetchLoop()
	go func() {
		defer close(w.advertDone)
		if registry != nil {
			w.advertise(w.workCtx, registry)
		}
	}()
	w.log.Info("worker started", "slots", w.cfg.Slots, "ring_buffers", w.cfg.RingBuffers,
		"job_buffers", w.cfg.JobBuffers(), "ack_wait", w.cfg.AckWait)
	return nil
}

// checkSpool warns when SpoolLimit is more than the spool directory's disk has free: an input
// that size could not be spooled (it would fail as transient, "no space left on device").
func (w *Worker) checkSpool() []string {
	size, free, ok := storage.FreeSpace(w.cfg.SpoolDir)
	if !ok || uint64(w.cfg.SpoolLimit) <= free {
		return nil
	}
	msg := fmt.Sprintf("spool_limit %s is larger than the free space of the spool %s (%s disk, %s free): larger inputs that must be spooled fail with no space left on device",
		storage.Bytes(uint64(w.cfg.SpoolLimit)), w.cfg.SpoolDir, storage.Bytes(size), storage.Bytes(free))
	w.log.Warn(msg, "spool_dir", w.cfg.SpoolDir, "spool_limit", w.cfg.SpoolLimit, "free", free)
	return []string{msg}
}

// Shutdown stops pulling at once, lets running jobs finish until ctx is done, then stops their
// ffmpeg and Naks them for immediate redelivery elsewhere. It returns when every job goroutine
// has exited; the error is ctx's when jobs had to be stopped. Calls after the first do nothing.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.mu.Unlock()
	w.fetchStop()
	<-w.loopDone
	done := make(chan struct{})
	go func() { w.jobs.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		w.log.Warn("grace period over: stopping running jobs", "running", w.Running())
		w.workStop(ErrShutdown)
		<-done
	}
	w.workStop(ErrShutdown)
	<-w.advertDone
	for _, sub := range []*nats.Subscription{w.cancelSub, w.bellSub, w.chunkBellSub} {
		if uerr := sub.Unsubscribe(); uerr != nil && !errors.Is(uerr, nats.ErrConnectionClosed) {
			w.log.Warn("unsubscribe", "err", uerr)
		}
	}
	if w.ownStorage {
		w.cfg.Storage.Close()
	}
	w.log.Info("worker stopped", "ring_in_use", w.ring.Stats().InUse)
	return err
}

// JobInfo describes a job running on this worker.
type JobInfo struct {
	ID       string
	Attempt  int
	Pid      int // ffmpeg's process id, 0 while it is not running
	Progress *job.Progress
}

// Jobs lists the jobs running now.
func (w *Worker) Jobs() []JobInfo {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]JobInfo, 0, len(w.running))
	for _, r := range w.running {
		out = append(out, JobInfo{ID: r.id, Attempt: r.attempt, Pid: int(r.pid.Load()), Progress: r.progress()})
	}
	return out
}

// Running is the number of jobs running now.
func (w *Worker) Running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// fetchLoop pulls one job whenever a slot is free and the ring can reserve the job's buffers;
// a saturated worker simply stops pulling, and other workers take the jobs.
func (w *Worker) fetchLoop() {
	defer close(w.loopDone)
	retry := time.NewTimer(0)
	<-retry.C
	for {
		select {
		case w.slots <- struct{}{}:
		case <-w.fetchCtx.Done():
			return
		}
		res, err := w.ring.Reserve(w.fetchCtx, w.cfg.JobBuffers())
		if err != nil {
			<-w.slots
			return
		}
		msg, at, err := w.fetchOne()
		if msg == nil {
			res.Close()
			<-w.slots
			if err != nil {
				if w.fetchCtx.Err() != nil {
					return
				}
				w.log.Warn("fetch failed", "err", err)
				retry.Reset(time.Second)
				select {
				case <-retry.C:
				case <-w.fetchCtx.Done():
					return
				}
			}
			continue
		}
		if w.fetchCtx.Err() != nil {
			// Pulled as we began to stop: give it straight back.
			w.handBack(msg)
			res.Close()
			<-w.slots
			return
		}
		w.jobs.Add(1)
		go func() {
			defer w.jobs.Done()
			defer func() { res.Close(); <-w.slots }()
			w.process(msg, at, res)
		}()
	}
}

// handBack naks a job pulled just as the worker began to stop, having first recorded the
// delivery as stopped (job.Status.Stopped): it was not the job's attempt.
func (w *Worker) handBack(msg jetstream.Msg) {
	defer func() { _ = msg.Nak() }()
	if isChunkSubject(msg.Subject()) {
		return // a chunk task: its record counts encodes, not deliveries
	}
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	j, err := job.Decode(msg.Data())
	if err != nil {
		return // terminated as invalid when next delivered, before the limit is looked at
	}
	r := &run{id: jobID(j, msg, meta), attempt: int(meta.NumDelivered), msg: msg, w: w, job: j}
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	created, err := w.recordStopped(ctx, r.id)
	if err != nil {
		r.logger(w).Warn("record the hand-back; the delivery counts", "err", err)
		return
	}
	if created {
		// The next delivery finds a state and would not announce the job: announce it now.
		w.emit(ctx, r, job.Event{Type: job.EventQueued, Time: meta.Timestamp})
	}
}

// recordStopped adds one to the job's Stopped count, creating its state if it has none. It
// compares and swaps: a cancel request written meanwhile must not be lost.
func (w *Worker) recordStopped(ctx context.Context, id string) (created bool, err error) {
	return w.swapState(ctx, id, func(st *job.Status) bool { st.Stopped++; return true })
}

// recordCancel sets CancelRequested in the state of a job that has not ended, creating a
// queued state if it has none (a submitter's job no worker has taken yet).
func (w *Worker) recordCancel(ctx context.Context, id string) error {
	_, err := w.swapState(ctx, id, func(st *job.Status) bool {
		ended := st.State == job.StateSucceeded || st.State == job.StateFailed || st.State == job.StateCanceled
		if st.CancelRequested || ended {
			return false
		}
		st.CancelRequested = true
		return true
	})
	if errors.Is(err, errStateContended) {
		return nil // other workers recording it, or the job ending
	}
	return err
}

// errStateContended: the state changed under every compare and swap of swapState.
var errStateContended = errors.New("worker: the job's state changed under every update")

// swapState applies change to the job's state (a queued one when it has none) by compare and
// swap, three tries; change returns false to leave the state as it is. created: it had none.
func (w *Worker) swapState(ctx context.Context, id string, change func(*job.Status) bool) (created bool, err error) {
	for range 3 {
		st := job.Status{ID: id, State: job.StateQueued}
		var rev uint64
		e, err := w.kv.Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return false, err
		default:
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return false, err
			}
			rev = e.Revision()
		}
		if !change(&st) {
			return false, nil
		}
		st.Updated = time.Now().UTC()
		b, err := json.Marshal(st)
		if err != nil {
			return false, err
		}
		if rev == 0 {
			_, err = w.kv.Create(ctx, id, b)
		} else {
			_, err = w.kv.Update(ctx, id, b, rev)
		}
		if err == nil {
			return rev == 0, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, err
		}
	}
	return false, fmt.Errorf("%w: %s", errStateContended, id)
}

// priorityIndex is the queue (0 high, 1 normal, 2 low) of a job subject.
func priorityIndex(subject string) uint {
	switch subject {
	case JobSubject(job.PriorityHigh), ChunkSubject(job.PriorityHigh):
		return 0
	case JobSubject(job.PriorityLow), ChunkSubject(job.PriorityLow):
		return 2
	}
	return 1
}

// lowEvery: one pull in lowEvery looks at the low queue first, so a stream of high and normal
// jobs cannot starve low ones forever.
const lowEvery = 5

// pullOrder is the order in which the priority queues (indexes into Worker.cons: high,
// normal, low) are tried for the n-th pull.
func pullOrder(n uint64) [3]int {
	if n%lowEvery == lowEvery-1 {
		return [3]int{2, 1, 0}
	}
	return [3]int{0, 1, 2}
}

// fetchOne takes the next job, highest priority first (see pullOrder). It sweeps the queues
// without waiting; when they are empty it waits for the doorbell (a job published) or
// FetchWait (redeliveries ring no bell), and returns nil, nil if nothing came. at is a time
// before the job was delivered: where its lease starts.
func (w *Worker) fetchOne() (msg jetstream.Msg, at time.Time, err error) {
	order := pullOrder(w.pulls)
	deadline := time.NewTimer(w.cfg.FetchWait)
	defer deadline.Stop()
	var rung uint32
	for {
		for _, i := range order {
			at = time.Now()
			// Chunks of split jobs already running go before new jobs of the same priority.
			msg, err = w.pull(w.chunkCons[i], 0)
			if err == nil && msg == nil {
				msg, err = w.pull(w.cons[i], 0)
			}
			if err == nil && msg == nil && rung&(1<<i) != 0 {
				// The bell can ring before its job is stored: give that queue a moment.
				msg, err = w.pull(w.cons[i], 25*time.Millisecond)
			}
			if err != nil || msg != nil {
				if msg != nil {
					w.pulls++
				}
				return msg, at, err
			}
		}
		select {
		case <-w.bell:
			rung = w.rung.Swap(0)
		case <-deadline.C:
			return nil, at, nil
		case <-w.fetchCtx.Done():
			return nil, at, w.fetchCtx.Err()
		}
	}
}

// pull takes at most one message from c, waiting at most wait (0: only what is there now).
func (w *Worker) pull(c jetstream.Consumer, wait time.Duration) (jetstream.Msg, error) {
	var batch jetstream.MessageBatch
	var err error
	if wait == 0 {
		batch, err = c.FetchNoWait(1)
	} else {
		// The server ends the request (its expiry) and the client waits for that answer: a
		// client-side deadline shorter than the request's life could drop a job delivered
		// just as it passed, leaving it unacked until AckWait.
		batch, err = c.Fetch(1, jetstream.FetchMaxWait(wait))
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrInvalidOption) {
			return nil, nil // too little time left for a request: an empty answer
		}
		return nil, err
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if msg == nil {
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
	}
	return msg, nil
}

func (w *Worker) onCancel(m *nats.Msg) {
	id := m.Subject[len("transcode.cancel."):]
	w.mu.Lock()
	r := w.running[id]
	w.mu.Unlock()
	chunksOnly := m.Header.Get(chunksOnlyHeader) != ""
	if r != nil && !chunksOnly {
		w.log.Info("cancel requested", "job", id)
		r.cancel(ErrCanceled)
	}
	if r == nil && !chunksOnly && job.ValidID(id) {
		// A submitter may not write states: the workers record its cancel, so a queued job is
		// dropped when pulled. Every worker hears it; compare and swap keeps one write.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := w.recordCancel(ctx, id); err != nil {
			w.log.Warn("record cancel request", "job", id, "err", err)
		}
		cancel()
	}
	w.mu.Lock()
	for key, cancel := range w.chunkRuns {
		if strings.HasPrefix(key, id+".") {
			cancel(ErrCanceled)
		}
	}
	w.mu.Unlock()
}
