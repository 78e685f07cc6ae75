package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
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
	ctx, cancel := context.WithCancelCause(w.workCtx)
	defer cancel(nil)
	r.cancel = cancel

	// Settling must outlive a hard stop: it is how the job gets back to the queue.
	settleCtx := context.WithoutCancel(ctx)

	if jerr != nil {
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassInvalidJob, Reason: jerr.Error(), Err: jerr})
		return
	}
	if r.attempt > w.cfg.MaxDeliver {
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("delivery limit reached: %d deliveries, the last ones did not finish (worker killed?)", r.attempt-1)})
		return
	}
	st, _ := w.status(ctx, r.id)
	switch {
	case st != nil && st.CancelRequested:
		w.settle(settleCtx, log, r, nil, &job.Error{Class: job.ClassCanceled, Reason: "canceled before it started", Err: ErrCanceled})
		return
	case st != nil && st.State == job.StateSucceeded && r.attempt > 1 && committed(st.Outputs):
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

// committed reports whether every output of a succeeded attempt is still in place, as recorded.
func committed(outs []job.OutputResult) bool {
	if len(outs) == 0 {
		return false
	}
	for _, o := range outs {
		loc, err := job.ParseLocation(o.URL)
		if err != nil {
			return false
		}
		st, err := os.Stat(loc.Path)
		if err != nil || st.Size() != o.Size {
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
	hb := time.NewTicker(w.cfg.Heartbeat)
	defer hb.Stop()
	pr := time.NewTicker(w.cfg.ProgressInterval)
	defer pr.Stop()
	last, lastAt := r.advance(), time.Now()
	lastSent := int64(-1)
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-hb.C:
			a := r.advance()
			switch {
			case a != last:
				// Input read, output written or ffmpeg's clock moved. A job blocked on the ring
				// with nothing moving (ffmpeg hung, a sink that stopped) is a stall.
				last, lastAt = a, time.Now()
				if err := r.msg.InProgress(); err != nil {
					w.log.Warn("heartbeat failed", "job", r.id, "err", err)
				}
			case time.Since(lastAt) > w.cfg.StallTimeout:
				r.cancel(fmt.Errorf("%w: no progress for %s", ErrStalled, w.cfg.StallTimeout.Round(time.Second)))
				return
			}
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

// transcode runs the job's media path: input -> probe -> (spool) -> ffmpeg -> outputs, all
// through the job's reservation of the ring.
func (w *Worker) transcode(ctx context.Context, r *run, res *bufpool.Reservation) ([]job.OutputResult, error) {
	acq := watchAcquirer{res: res, r: r}
	loc, _ := job.ParseLocation(r.job.Input)
	f, err := openInput(loc)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	src := countingReader{r: f, n: &r.bytesIn}

	// One buffer of the head tells an mp4 whose index follows its media, which cannot stream.
	head, _, err := readHead(ctx, src, acq, 1)
	if err != nil {
		releaseAll(acq, head)
		return nil, err
	}
	in := ffmpeg.Input{}
	if scanMP4(chunks(head)) == mp4MoovTail {
		path, err := spool(ctx, w.cfg.SpoolDir, "transcoder-spool-"+r.id+"-*", head, src, acq, w.cfg.SpoolLimit)
		releaseAll(acq, head)
		head = nil
		if err != nil {
			return nil, err
		}
		defer func() { _ = os.Remove(path) }()
		probe, err := w.cfg.FFmpeg.ProbeFile(ctx, path)
		if err != nil {
			return nil, err
		}
		if err := r.job.CheckMedia(w.cfg.Presets, probe, w.cfg.Limits); err != nil {
			return nil, err
		}
		r.setProbe(probe)
		in.Path = path
		r.phase("spool")
	}
	spec, err := r.job.Plan(w.cfg.Presets, in, w.cfg.Limits)
	if err != nil {
		releaseAll(acq, head)
		return nil, err
	}

	sinks := make([]*fileSink, 0, len(spec.Outputs))
	defer func() {
		for _, s := range sinks {
			s.Abort()
		}
	}()
	for i := range spec.Outputs {
		ro, _ := r.job.Resolve(i, w.cfg.Presets)
		s, err := newFileSink(ro.Location, r.id, r.attempt, &r.bytesOut)
		if err != nil {
			releaseAll(acq, head)
			return nil, err
		}
		if i == 0 && w.cfg.Hooks.FirstOutputByte != nil {
			s.first = func() { w.cfg.Hooks.FirstOutputByte(r.id) }
		}
		sinks = append(sinks, s)
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
	if in.Path == "" {
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
			tee := &probeTee{dst: stdin, probe: prober.Stdin(), left: int64(w.cfg.ProbeBytes)}
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
	for i, s := range sinks {
		ch := p.Chan(w.cfg.ChanDepth)
		out := proc.Output(i)
		p.Go(fmt.Sprintf("ffmpeg-output-%d", i), func(ctx context.Context) error {
			_, err := pipeline.ReadFrom(ctx, out, acq, ch)
			_ = out.Close()
			return err
		})
		p.Go(fmt.Sprintf("sink-%d", i), func(ctx context.Context) error {
			_, err := pipeline.WriteTo(ctx, ch, s, acq)
			return err
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
	// Flush and verify every output at once: ffprobe reads the page cache while fsync writes it.
	results := make([]job.OutputResult, len(sinks))
	errs := make([]error, 2*len(sinks))
	var wg sync.WaitGroup
	for i, s := range sinks {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := s.Close(); err != nil {
				errs[2*i] = fmt.Errorf("output: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			results[i], errs[2*i+1] = w.verify(ctx, r, spec.Outputs[i], s, tail)
		}()
	}
	wg.Wait()
	r.phase("verify")
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for i, s := range sinks {
		if err := s.Commit(); err != nil {
			return nil, err
		}
		ro, _ := r.job.Resolve(i, w.cfg.Presets)
		results[i].URL = ro.Location.String()
	}
	sinks = nil
	r.phase("commit")
	return results, nil
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
func (w *Worker) verify(ctx context.Context, r *run, want ffmpeg.Output, s *fileSink, stderr string) (job.OutputResult, error) {
	res := job.OutputResult{Size: s.n, SHA256: s.Sum()}
	pr, err := w.cfg.FFmpeg.ProbeFile(ctx, s.tmp)
	if err != nil {
		if ffmpeg.TruncatedInput(stderr) {
			return res, &job.Error{Class: job.ClassInvalidInput, Reason: "input is truncated: no output could be made", Err: err}
		}
		return res, fmt.Errorf("verify output: %w", err)
	}
	if pr.Duration == 0 {
		// webm/mkv from a pipe carry no duration: measure the packets.
		if pr.Duration, err = w.cfg.FFmpeg.MeasureDuration(ctx, s.tmp); err != nil {
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
