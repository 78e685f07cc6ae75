package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
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

	duration  atomic.Int64 // of the input in ns, from the probe; 0 while unknown
	probe     atomic.Pointer[ffmpeg.ProbeResult]
	bytesIn   atomic.Int64
	bytesOut  atomic.Int64
	outTimeUS atomic.Int64
	fps       atomic.Uint64 // math.Float64bits
	speed     atomic.Uint64
	waiting   atomic.Int32 // stages blocked on the ring
	pid       atomic.Int64
	phases    []slog.Attr // owned by the job's goroutine
	lastPhase time.Time
	argv      atomic.Pointer[[]string]
	stderr    atomic.Pointer[string]
	passed    int          // deliveries handed on for want of an encoder; carried in the state
	log       *slog.Logger // the worker's, with the job id and attempt on every line
}

// logger is the job's logger (the worker's before the job's has been made).
func (r *run) logger(w *Worker) *slog.Logger {
	if r.log != nil {
		return r.log
	}
	return w.log.With("job", r.id, "attempt", r.attempt)
}

func (r *run) setProbe(p *ffmpeg.ProbeResult) {
	r.probe.Store(p)
	r.duration.Store(int64(p.Duration))
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

// phase records how long the step that just ended took, for the job's log line.
func (r *run) phase(name string) {
	now := time.Now()
	if r.lastPhase.IsZero() {
		r.lastPhase = r.started
	}
	r.phases = append(r.phases, slog.Duration(name, now.Sub(r.lastPhase).Round(time.Millisecond)))
	r.lastPhase = now
}

// advance is a number that grows whenever the job makes progress of any kind.
func (r *run) advance() int64 { return r.bytesIn.Load() + r.bytesOut.Load() + r.outTimeUS.Load() }

func (r *run) progress() *job.Progress {
	p := &job.Progress{
		OutTime:   float64(r.outTimeUS.Load()) / 1e6,
		FPS:       math.Float64frombits(r.fps.Load()),
		Speed:     math.Float64frombits(r.speed.Load()),
		BytesIn:   r.bytesIn.Load(),
		BytesOut:  r.bytesOut.Load(),
		Throttled: r.waiting.Load() > 0,
	}
	if d := time.Duration(r.duration.Load()); d > 0 {
		p.Duration = d.Seconds()
		p.Percent = math.Min(100, math.Round(1000*p.OutTime/p.Duration)/10)
	}
	return p
}

// watchAcquirer marks the run throttled while a stage waits on the ring.
type watchAcquirer struct {
	res *bufpool.Reservation
	r   *run
}

func (a watchAcquirer) Acquire(ctx context.Context) (*bufpool.Buffer, error) {
	a.r.waiting.Add(1)
	b, err := a.res.Acquire(ctx)
	a.r.waiting.Add(-1)
	return b, err
}

func (a watchAcquirer) Release(b *bufpool.Buffer) { a.res.Release(b) }

// process runs one delivery of a job and settles it with NATS.
func (w *Worker) process(msg jetstream.Msg, res *bufpool.Reservation) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without metadata", "err", err)
		_ = msg.Term()
		return
	}
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
	log := w.log.With("job", r.id, "attempt", r.attempt)
	r.log = log
	ctx, cancel := context.WithCancelCause(w.workCtx)
	defer cancel(nil)
	r.cancel = cancel

	// Settling must outlive a hard stop: it is how the job gets back to the queue.
	settleCtx := context.WithoutCancel(ctx)

	if jerr != nil {
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassInvalidJob, Reason: jerr.Error(), Err: jerr})
		return
	}
	// A redelivery of a job still running here (a heartbeat lost on the way) is the running
	// attempt's to settle; it must not count against the delivery limit either.
	w.mu.Lock()
	dup := w.running[r.id] != nil
	w.mu.Unlock()
	if dup {
		log.Warn("job already running on this worker; dropping duplicate delivery")
		return
	}
	st, _ := w.status(ctx, r.id)
	passed := 0
	if st != nil {
		passed = st.Passed
	}
	r.passed = passed
	if r.attempt-passed > w.cfg.MaxDeliver {
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("delivery limit reached: %d deliveries, the last ones did not finish (worker killed?)", r.attempt-1-passed)})
		return
	}
	switch {
	case st != nil && st.CancelRequested:
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassCanceled, Reason: "canceled before it started", Err: ErrCanceled})
		return
	case st != nil && st.State == job.StateSucceeded && r.attempt > 1 && w.committed(ctx, st.Outputs):
		// Redelivered after its outputs were committed and verified (the ack was lost): done.
		// The worker may have died between the state and the event: the event must be out.
		log.Info("already succeeded and outputs in place; acknowledging redelivery")
		if !w.lastEventIs(ctx, r.id, job.EventSucceeded) {
			w.emit(settleCtx, r, job.Event{Type: job.EventSucceeded, Outputs: st.Outputs})
		}
		_ = msg.Ack()
		return
	case st == nil:
		w.emit(ctx, r, job.Event{Type: job.EventQueued, Time: meta.Timestamp})
	}

	if need := w.missing(ctx, j); len(need) > 0 {
		handled, err := w.routeByCapability(ctx, r, st, need)
		if handled {
			return
		}
		w.settle(settleCtx, log, r, nil, err)
		return
	}

	w.mu.Lock()
	if w.running[r.id] != nil {
		w.mu.Unlock()
		// The same job is already running here (a redelivery after a missed heartbeat): let
		// the running attempt settle it.
		log.Warn("job already running on this worker; dropping duplicate delivery")
		return
	}
	w.running[r.id] = r
	w.mu.Unlock()
	w.metrics.running.Inc()
	if r.attempt > 1 {
		w.metrics.redelivered.Inc()
	}
	defer func() {
		w.mu.Lock()
		delete(w.running, r.id)
		w.mu.Unlock()
		w.metrics.running.Dec()
	}()

	// Until the probe tells the input's length, the cap (or the job's own timeout) applies.
	r.deadline = time.AfterFunc(w.timeout(j, 0), func() { cancel(ErrTimeout) })
	defer r.deadline.Stop()

	log.Info("job started", "input", j.Input, "outputs", len(j.Outputs))
	w.setStatus(ctx, r, job.StateRunning, nil, nil)
	w.emit(ctx, r, job.Event{Type: job.EventStarted})

	watchDone := make(chan struct{})
	watchStop := make(chan struct{})
	go func() {
		defer close(watchDone)
		w.watch(ctx, r, watchStop)
	}()
	outs, err := w.transcode(ctx, r, res)
	close(watchStop)
	<-watchDone
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	w.settle(settleCtx, log, r, outs, err)
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

// watch sends InProgress while the job advances, stops it when it stalls, and publishes
// throttled progress events.
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
			// stops it after StallTimeout. Until then the job is this worker's, so the
			// heartbeat goes on: without it NATS would hand the job to another worker after
			// AckWait while it still runs here.
			if a := r.advance(); a != last {
				last, lastAt = a, time.Now()
			}
			if time.Since(lastAt) > w.cfg.StallTimeout {
				r.cancel(fmt.Errorf("%w: no progress for %s", ErrStalled, w.cfg.StallTimeout.Round(time.Second)))
				return
			}
			if err := r.msg.InProgress(); err != nil {
				r.log.Warn("heartbeat failed", "err", err)
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
				w.emit(ctx, r, job.Event{Type: job.EventProgress, Progress: p})
				w.setStatus(ctx, r, job.StateRunning, p, nil)
			}
		}
	}
}

// transcode runs the job's media path: input -> (probe) -> (spool) -> ffmpeg -> outputs, all
// through the job's reservation of the ring.
func (w *Worker) transcode(ctx context.Context, r *run, res *bufpool.Reservation) ([]job.OutputResult, error) {
	acq := watchAcquirer{res: res, r: r}
	f, err := w.cfg.Storage.Open(ctx, r.job.Input)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	defer func() { _ = f.Close() }()
	src := countingReader{r: f, n: &r.bytesIn}

	// The head tells an mp4 whose index follows its media, which cannot stream. A plan that
	// depends on the input (a ladder's rungs) probes the head first: one buffer, which is
	// enough for nearly every input and quick to probe; then, if ffprobe needs more, as much
	// as the input side of the pipeline may hold (so the head never holds buffers the outputs
	// need); then the whole input, spooled.
	needProbe := r.job.NeedsProbe(w.cfg.Presets)
	head, eof, err := readHead(ctx, src, acq, 1)
	if err != nil {
		releaseAll(acq, head)
		return nil, err
	}
	in := ffmpeg.Input{}
	var probe *ffmpeg.ProbeResult
	spoolInput := scanMP4(chunks(head)) == mp4MoovTail
	if !spoolInput && needProbe {
		probe, err = w.cfg.FFmpeg.ProbeChunks(ctx, chunks(head))
		if maxHead := min(w.cfg.ChanDepth+1, max(1, w.cfg.ProbeBytes/bufSize)); err != nil && !eof && maxHead > len(head) {
			more, moreEOF, rerr := readHead(ctx, src, acq, maxHead-len(head))
			head, eof = append(head, more...), moreEOF
			if rerr != nil {
				releaseAll(acq, head)
				return nil, rerr
			}
			probe, err = w.cfg.FFmpeg.ProbeChunks(ctx, chunks(head))
		}
		if err != nil && eof {
			releaseAll(acq, head)
			return nil, err
		}
		// The head was not enough to describe the input (an mp4 whose index is larger than
		// the head, say): spool it and probe the file.
		spoolInput = err != nil
		r.phase("probe")
	}
	if spoolInput {
		path, err := spool(ctx, w.cfg.SpoolDir, "transcoder-spool-"+r.id+"-*", head, src, acq, w.cfg.SpoolLimit)
		releaseAll(acq, head)
		head = nil
		if err != nil {
			return nil, err
		}
		defer func() { _ = os.Remove(path) }()
		if probe, err = w.cfg.FFmpeg.ProbeFile(ctx, path); err != nil {
			return nil, err
		}
		in.Path = path
		r.phase("spool")
	}
	if probe != nil {
		if err := r.job.CheckMedia(w.cfg.Presets, probe, w.cfg.Limits); err != nil {
			releaseAll(acq, head)
			return nil, err
		}
		r.setProbe(probe)
	}
	mp, err := r.job.PlanMedia(w.cfg.Presets, in, w.cfg.Limits, probe)
	if err != nil {
		releaseAll(acq, head)
		return nil, err
	}
	spec := mp.Spec
	spec.Threads = w.threadsPerEncoder(spec)
	depth, err := w.outputDepth(len(spec.Outputs))
	if err != nil {
		releaseAll(acq, head)
		return nil, err
	}

	// One writer per ffmpeg output: a file sink, or a ladder rendition.
	writers := make([]io.Writer, len(spec.Outputs))
	files := make([]*outSink, len(mp.Outputs))
	ladders := make([]*ladderSink, len(mp.Outputs))
	images := make([]*imageSink, len(mp.Outputs))
	committed := false
	defer func() {
		if committed {
			return
		}
		for _, s := range files {
			if s != nil {
				s.Abort()
			}
		}
		for _, l := range ladders {
			if l != nil {
				l.abort()
			}
		}
		for _, im := range images {
			if im != nil {
				im.abort()
			}
		}
	}()
	var first func()
	if w.cfg.Hooks.FirstOutputByte != nil {
		first = func() { w.cfg.Hooks.FirstOutputByte(r.id) }
	}
	for i, po := range mp.Outputs {
		url := po.Resolved.Location.String()
		if po.Resolved.Thumbnails != nil {
			s := newImageSink(ctx, storeAdapter{st: w.cfg.Storage, jobID: r.id, attempt: r.attempt}, url, spec.Outputs[po.Spec[0]].Images, &r.bytesOut)
			if i == 0 {
				s.first = first
			}
			images[i] = s
			writers[po.Spec[0]] = s
			continue
		}
		if job.IsLadder(po.Resolved.Container) {
			l, err := newLadderSink(ctx, storeAdapter{st: w.cfg.Storage, jobID: r.id, attempt: r.attempt}, url, po, &r.bytesOut)
			if err != nil {
				releaseAll(acq, head)
				return nil, err
			}
			for k, si := range po.Spec {
				writers[si] = l.rends[k]
			}
			if i == 0 {
				l.rends[0].first = first
			}
			ladders[i] = l
			continue
		}
		s, err := newOutSink(ctx, w.cfg.Storage, url, w.cfg.SpoolDir, r.id, r.attempt, &r.bytesOut)
		if err != nil {
			releaseAll(acq, head)
			return nil, err
		}
		if i == 0 {
			s.first = first
		}
		files[i] = s
		writers[po.Spec[0]] = s
		if po.Resolved.Faststart {
			// ffmpeg writes the file itself (it seeks back to put the index in front); it is
			// copied to the sink through the ring once complete.
			path := filepath.Join(w.cfg.SpoolDir, fmt.Sprintf("transcoder-faststart-%s-%d-%d.%s", r.id, r.attempt, i, po.Resolved.Container))
			spec.Outputs[po.Spec[0]].Path = path
			defer func() { _ = os.Remove(path) }()
			writers[po.Spec[0]] = io.Discard // its pipe stays empty
		}
	}

	proc, err := w.cfg.FFmpeg.Start(ctx, spec)
	if err != nil {
		releaseAll(acq, head)
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	argv := proc.Args()
	r.argv.Store(&argv)
	r.pid.Store(int64(proc.Pid()))
	defer r.pid.Store(0)

	var prober *ffmpeg.Probe
	if probe == nil {
		// The probe reads the same bytes as ffmpeg, beside it: it costs no time to first byte.
		if prober, err = w.cfg.FFmpeg.StartProbe(ctx); err != nil {
			releaseAll(acq, head)
			proc.Stop()
			_ = proc.Wait()
			_ = proc.Close()
			return nil, fmt.Errorf("start ffprobe: %w", err)
		}
	}

	var procErr error
	p := pipeline.New(ctx, acq)
	if in.Path == "" {
		inCh := p.Chan(w.cfg.ChanDepth)
		p.Go("source", func(ctx context.Context) error {
			for i, b := range head {
				select {
				case inCh <- b:
				case <-ctx.Done():
					releaseAll(acq, head[i:])
					close(inCh)
					return ctx.Err()
				}
			}
			_, err := pipeline.ReadFrom(ctx, src, acq, inCh)
			return err
		})
		p.Go("ffmpeg-stdin", func(ctx context.Context) error {
			stdin := proc.Stdin()
			tee := &probeTee{dst: stdin, left: int64(w.cfg.ProbeBytes)}
			if prober != nil {
				tee.probe = prober.Stdin()
			}
			_, err := pipeline.WriteTo(ctx, inCh, tee, acq)
			tee.closeProbe()
			_ = stdin.Close()
			if errors.Is(err, syscall.EPIPE) {
				// ffmpeg stopped reading: it has what it needs, or it failed and says why.
				drain(ctx, inCh, acq)
				return nil
			}
			return err
		})
	}
	for i, wr := range writers {
		ch := p.Chan(depth)
		out := proc.Output(i)
		p.Go(fmt.Sprintf("ffmpeg-output-%d", i), func(ctx context.Context) error {
			_, err := pipeline.ReadFrom(ctx, out, acq, ch)
			_ = out.Close()
			return err
		})
		p.Go(fmt.Sprintf("sink-%d", i), func(ctx context.Context) error {
			if _, err := pipeline.WriteTo(ctx, ch, wr, acq); err != nil {
				return err
			}
			if c, ok := wr.(io.Closer); ok {
				// The stream ended: a ladder's last segment goes out now; an image stream
				// must not end inside an image.
				return c.Close()
			}
			return nil
		})
	}
	if prober != nil {
		p.Go("probe", func(ctx context.Context) error {
			select {
			case <-prober.Done():
			case <-ctx.Done():
			}
			pr, err := prober.Wait()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			if err := r.job.CheckMedia(w.cfg.Presets, pr, w.cfg.Limits); err != nil {
				return err
			}
			r.setProbe(pr)
			return nil
		})
	}
	p.Go("progress", func(ctx context.Context) error {
		for pr := range proc.Progress() {
			r.outTimeUS.Store(pr.OutTime.Microseconds())
			r.fps.Store(math.Float64bits(pr.FPS))
			r.speed.Store(math.Float64bits(pr.Speed))
			w.metrics.speed.Set(pr.Speed)
		}
		return nil
	})
	p.Go("ffmpeg", func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, proc.Stop)
		defer stop()
		procErr = proc.Wait()
		return procErr
	})
	err = p.Wait()
	r.phase("transcode")
	_ = proc.Close() // the stages closed what they used; this catches the rest
	tail := proc.StderrTail()
	r.stderr.Store(&tail)
	if err != nil {
		// ffmpeg's own verdict explains more than the broken pipe it caused.
		if procErr != nil && !errors.Is(procErr, ffmpeg.ErrStopped) {
			return nil, procErr
		}
		return nil, err
	}
	// Spooled (faststart) outputs go to their sinks now, through the ring.
	for i, s := range files {
		if s == nil || !mp.Outputs[i].Resolved.Faststart {
			continue
		}
		if err := copySpool(ctx, spec.Outputs[po0(mp, i)].Path, s, acq); err != nil {
			return nil, err
		}
	}
	r.phase("publish-spooled")
	// Flush and verify every file output at once: ffprobe reads the page cache while fsync
	// writes it. Ladders were verified segment by segment; their checks are on the numbers.
	results := make([]job.OutputResult, len(mp.Outputs))
	errs := make([]error, 2*len(mp.Outputs))
	var wg sync.WaitGroup
	for i, s := range files {
		switch {
		case images[i] != nil:
			errs[2*i] = images[i].verify()
			continue
		case ladders[i] != nil:
			errs[2*i] = ladders[i].verify(time.Duration(r.duration.Load()), tail)
			continue
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.Sync(); err != nil {
				errs[2*i] = fmt.Errorf("output: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			results[i], errs[2*i+1] = w.verify(ctx, r, spec.Outputs[po0(mp, i)], s, tail)
		}()
	}
	wg.Wait()
	r.phase("verify")
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for i, s := range files {
		if images[i] != nil {
			if results[i], err = images[i].publish(time.Duration(r.duration.Load())); err != nil {
				return nil, err
			}
			continue
		}
		if s == nil {
			res, err := ladders[i].publish()
			if err != nil {
				return nil, fmt.Errorf("publish %s: %w", mp.Outputs[i].Resolved.Container, err)
			}
			res.Kind = mp.Outputs[i].Resolved.Container
			results[i] = res
			continue
		}
		if err := s.Commit(ctx); err != nil {
			return nil, err
		}
		files[i] = nil // committed: nothing to abort
		results[i].URL = mp.Outputs[i].Resolved.Location.String()
	}
	committed = true
	r.phase("commit")
	return results, nil
}

// threadsPerEncoder shares the machine's cores among the jobs that may run at once and the
// encoders of this job, so that a full worker does not oversubscribe its cores (each x264 would
// otherwise start 1.5 threads per core). 0 (ffmpeg's own choice) when the worker runs one job
// at a time, or when the ffmpeg configuration sets threads.
func (w *Worker) threadsPerEncoder(spec ffmpeg.Spec) int {
	if w.cfg.Slots <= 1 || w.cfg.FFmpeg.Config().Threads > 0 {
		return 0
	}
	enc := 0
	for _, o := range spec.Outputs {
		if o.Video != nil && o.Video.Codec != "copy" {
			enc++
		}
	}
	perJob := max(1, runtime.GOMAXPROCS(0)/w.cfg.Slots)
	return max(1, perJob/max(1, enc))
}

// copySpool streams a spool file into a sink, one ring buffer at a time.
func copySpool(ctx context.Context, path string, dst io.Writer, acq pipeline.Acquirer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spooled output: %w", err)
	}
	defer func() { _ = f.Close() }()
	for {
		b, err := acq.Acquire(ctx)
		if err != nil {
			return err
		}
		n, rerr := f.Read(b.Space())
		if n > 0 {
			if _, err := dst.Write(b.Space()[:n]); err != nil {
				acq.Release(b)
				return fmt.Errorf("output: %w", err)
			}
		}
		acq.Release(b)
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("spooled output: %w", rerr)
		}
	}
}

// po0 is the ffmpeg output of single-file job output i.
func po0(mp *job.MediaPlan, i int) int { return mp.Outputs[i].Spec[0] }

// outputDepth is the capacity of each output channel for a job with n ffmpeg outputs: ChanDepth
// when the reservation has room for it, shallower when there are more outputs than MaxOutputs.
// A job that does not fit even with one buffer per channel is refused.
func (w *Worker) outputDepth(n int) (int, error) {
	reserved := w.cfg.JobBuffers()
	input := 2 + w.cfg.ChanDepth // source and stdin stages in hand, and their channel
	depth := min(w.cfg.ChanDepth, (reserved-input)/n-2)
	if depth < 1 {
		return 0, &job.Error{Class: job.ClassInvalidJob, Reason: fmt.Sprintf("the job makes %d ffmpeg outputs; this worker's ring holds at most %d per job (raise max_outputs)", n, (reserved-input)/3)}
	}
	return depth, nil
}

// probeTee writes to ffmpeg's stdin and, until the probe has read enough or left, to ffprobe's.
type probeTee struct {
	dst   *os.File
	probe *os.File // nil once closed
	left  int64
}

func (t *probeTee) Write(p []byte) (int, error) {
	n, err := t.dst.Write(p)
	if t.probe != nil {
		m := min(int64(n), t.left)
		if _, perr := t.probe.Write(p[:m]); perr != nil || m == t.left {
			t.closeProbe() // ffprobe has what it needs (EPIPE), or the limit is reached
		} else {
			t.left -= m
		}
	}
	return n, err
}

func (t *probeTee) closeProbe() {
	if t.probe != nil {
		_ = t.probe.Close()
		t.probe = nil
	}
}

func drain(ctx context.Context, in <-chan *bufpool.Buffer, acq pipeline.Acquirer) {
	for {
		select {
		case b, ok := <-in:
			if !ok {
				return
			}
			acq.Release(b)
		case <-ctx.Done():
			return
		}
	}
}

// verify probes an output before it is committed: the streams asked for are there and it is as
// long as the input. ffmpeg exits 0 on a truncated input, so a short output is how a truncated
// input shows.
func (w *Worker) verify(ctx context.Context, r *run, want ffmpeg.Output, s *outSink, stderr string) (job.OutputResult, error) {
	res := job.OutputResult{Size: s.n, SHA256: s.Sum()}
	pr, err := w.cfg.FFmpeg.ProbeFile(ctx, s.local)
	if err != nil {
		if ffmpeg.TruncatedInput(stderr) {
			return res, &job.Error{Class: job.ClassInvalidInput, Reason: "input is truncated: no output could be made", Err: err}
		}
		return res, fmt.Errorf("verify output: %w", err)
	}
	if pr.Duration == 0 {
		// webm/mkv from a pipe carry no duration: measure the packets.
		if pr.Duration, err = w.cfg.FFmpeg.MeasureDuration(ctx, s.local); err != nil {
			return res, fmt.Errorf("verify output: %w", err)
		}
	}
	res.Duration = math.Round(pr.Duration.Seconds()*1000) / 1000
	// A stream is owed only if the output asks for it and the input has it.
	var inVideo, inAudio bool
	if in := r.probe.Load(); in != nil {
		_, inVideo = in.Video()
		_, inAudio = in.Audio()
	}
	if v, ok := pr.Video(); ok {
		res.Width, res.Height = v.Width, v.Height
	} else if want.Video != nil && inVideo {
		return res, &job.Error{Class: job.ClassInternal, Reason: "output has no video stream"}
	}
	if _, ok := pr.Audio(); !ok && want.Audio != nil && inAudio {
		return res, &job.Error{Class: job.ClassInternal, Reason: "output has no audio stream"}
	}
	// An output cut by -fs or -t: the input asked for more than the limits allow.
	lim := w.cfg.Limits
	if s.n >= lim.MaxOutputBytes {
		return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %d bytes (max_output_bytes)", s.n)}
	}
	if pr.Duration >= lim.MaxDuration-time.Second {
		return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %s long (max_duration %s)", pr.Duration.Round(time.Second), lim.MaxDuration)}
	}
	if d := time.Duration(r.duration.Load()); d > 0 {
		tol := max(time.Second, d/50)
		if pr.Duration < d-tol {
			if ffmpeg.TruncatedInput(stderr) {
				return res, &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("input is truncated: only %.1fs of %.1fs could be decoded", pr.Duration.Seconds(), d.Seconds())}
			}
			return res, &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("output is %.1fs long, input %.1fs", pr.Duration.Seconds(), d.Seconds())}
		}
	}
	return res, nil
}
