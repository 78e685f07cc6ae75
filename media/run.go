package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
	"github.com/transcoder/transcoder/storage"
)

// Run runs the task: input (head, probe, spool), ffmpeg, outputs, every buffer from the task's
// reservation. It returns each output's result, in the job's order, or a classified error
// (job.Error, or an error of the ffmpeg and storage packages); a failed task leaves no output
// behind, and tells what it took back (RolledBackError).
func (e *Engine) Run(ctx context.Context, t *Task) ([]job.OutputResult, error) {
	t = t.metered()
	in, p, err := e.prepared(ctx, t, false)
	if err != nil {
		return nil, err
	}
	defer in.close()
	files, err := e.trackFiles(ctx, t, p, in)
	defer removeFiles(files)
	if err != nil {
		return nil, err
	}
	outs, err := e.createOutputs(ctx, t, p)
	if err != nil {
		return nil, err
	}
	defer outs.abort() // does nothing to the outputs once published
	if err := e.transcode(ctx, t, p, in, outs); err != nil {
		return nil, err
	}
	frames := 0
	if t.Chunk != nil {
		frames = t.Chunk.Frames
	}
	results, err := e.finish(ctx, t, outs, frames)
	for i := range results {
		if i < len(p.Outputs) {
			results[i].Warnings = p.Outputs[i].Warnings
		}
	}
	if err == nil {
		hdrResults(results, p)
	}
	return results, err
}

// finish verifies the outputs ffmpeg wrote (frames: the video frames each must have, 0 when
// not known exactly) and publishes them.
func (e *Engine) finish(ctx context.Context, t *Task, outs outputs, frames int) ([]job.OutputResult, error) {
	c := &check{input: clipSpan(time.Duration(t.Meter.Duration.Load()), t.Job.Clip), meter: &t.Meter, stderr: t.Meter.StderrTail(), lim: e.cfg.Limits, frames: frames}
	err := outs.verify(ctx, c)
	t.phase("verify")
	if err != nil {
		return nil, err
	}
	if t.Lease != nil {
		// Verified, about to commit: only while the task is still this process's.
		if err := t.Lease.Renew(ctx); err != nil {
			return nil, err
		}
	}
	results, err := outs.publish(ctx)
	t.phase("commit")
	return results, err
}

// transcode runs ffmpeg over the input into the outputs' writers, with ffprobe beside it when
// the input was not probed before, and returns when every stage has ended.
func (e *Engine) transcode(ctx context.Context, t *Task, p *Plan, in *input, outs outputs) error {
	proc, err := e.cfg.FFmpeg.Start(ctx, p.Spec)
	if err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	if t.Observer != nil {
		t.Observer.Started(proc.Args(), proc.Pid())
	}
	var prober *ffmpeg.Probe
	if in.probe == nil && t.Chunk == nil {
		// The probe reads the same bytes as ffmpeg, beside it: it costs no time to first byte.
		if prober, err = e.cfg.FFmpeg.StartProbe(ctx); err != nil {
			proc.Stop()
			_ = proc.Wait()
			_ = proc.Close()
			return fmt.Errorf("start ffprobe: %w", err)
		}
	}
	depth, _ := e.outputDepth(len(p.Spec.Outputs)) // checked by plan
	var procErr error
	pl := pipeline.New(ctx, t.Buffers)
	if in.path == "" {
		e.inputStages(pl, t, in, proc, prober)
	}
	for i, wr := range outs.writers(len(p.Spec.Outputs)) {
		outputStages(pl, t, i, proc.Output(i), wr, depth)
	}
	if prober != nil {
		pl.Go("probe", func(ctx context.Context) error { return e.awaitProbe(ctx, t, in, prober) })
	}
	pl.Go("progress", func(ctx context.Context) error {
		for pr := range proc.Progress() {
			t.Meter.OutTimeUS.Store(pr.OutTime.Microseconds())
			t.Meter.Frames.Store(pr.Frame)
			t.Meter.Dup.Store(pr.DupFrames)
			t.Meter.Drop.Store(pr.DropFrames)
			t.Meter.fps.Store(math.Float64bits(pr.FPS))
			t.Meter.speed.Store(math.Float64bits(pr.Speed))
		}
		return nil
	})
	pl.Go("ffmpeg", func(ctx context.Context) error {
		stop := context.AfterFunc(ctx, proc.Stop)
		defer stop()
		procErr = proc.Wait()
		return procErr
	})
	err = pl.Wait()
	t.phase("transcode")
	_ = proc.Close() // the stages closed what they used; this catches the rest
	tail := proc.StderrTail()
	t.Meter.stderr.Store(&tail)
	t.Meter.Skipped.Store(int64(ffmpeg.SkippedFrames(tail)))
	switch {
	case errors.Is(procErr, ffmpeg.ErrNoSpace):
		// ffmpeg writes no file but the task's spool files (faststart outputs).
		return storage.DiskFull("spool", e.cfg.SpoolDir, procErr)
	case errors.Is(err, storage.ErrNoSpace):
		return err // a full disk explains the broken pipe ffmpeg met after it
	case err != nil && procErr != nil && !errors.Is(procErr, ffmpeg.ErrStopped):
		return procErr // ffmpeg's own verdict explains more than the broken pipe it caused
	}
	return err
}

// inputStages feed ffmpeg's stdin (and ffprobe's, while it reads) from the input stage.
func (e *Engine) inputStages(pl *pipeline.Pipeline, t *Task, in *input, proc *ffmpeg.Process, prober *ffmpeg.Probe) {
	ch := pl.Chan(e.cfg.ChanDepth)
	pl.Go("source", func(ctx context.Context) error { return in.feed(ctx, ch) })
	pl.Go("ffmpeg-stdin", func(ctx context.Context) error {
		stdin := proc.Stdin()
		tee := &probeTee{dst: stdin, left: int64(e.cfg.ProbeBytes)}
		if prober != nil {
			tee.probe = prober.Stdin()
		}
		_, err := pipeline.WriteTo(ctx, ch, tee, t.Buffers)
		tee.closeProbe()
		_ = stdin.Close()
		if errors.Is(err, syscall.EPIPE) {
			// ffmpeg stopped reading: it has what it needs, or it failed and says why.
			drain(ctx, ch, t.Buffers)
			return nil
		}
		return err
	})
}

// outputStages move ffmpeg output i through the ring into its writer.
func outputStages(pl *pipeline.Pipeline, t *Task, i int, out io.ReadCloser, wr io.Writer, depth int) {
	ch := pl.Chan(depth)
	pl.Go(fmt.Sprintf("ffmpeg-output-%d", i), func(ctx context.Context) error {
		_, err := pipeline.ReadFrom(ctx, out, t.Buffers, ch)
		_ = out.Close()
		return err
	})
	pl.Go(fmt.Sprintf("sink-%d", i), func(ctx context.Context) error {
		if _, err := pipeline.WriteTo(ctx, ch, wr, t.Buffers); err != nil {
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

// awaitProbe waits for the ffprobe that ran beside ffmpeg and checks the media it describes.
func (e *Engine) awaitProbe(ctx context.Context, t *Task, in *input, prober *ffmpeg.Probe) error {
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
	if pr, err = e.checkMedia(ctx, t, in, pr); err != nil {
		return err
	}
	t.probed(pr)
	return nil
}

// metered is the task with its reservation counting the stages that wait on it.
func (t *Task) metered() *Task {
	if _, ok := t.Buffers.(meteredAcquirer); !ok {
		t.Buffers = meteredAcquirer{acq: t.Buffers, m: &t.Meter}
	}
	return t
}

func (t *Task) phase(name string) {
	if t.Observer != nil {
		t.Observer.Phase(name)
	}
}

func (t *Task) probed(p *ffmpeg.ProbeResult) {
	t.Meter.probe.Store(p)
	t.Meter.Duration.Store(int64(p.Duration))
	if t.Observer != nil {
		t.Observer.Probed(p)
	}
}

// meteredAcquirer counts the stages blocked on the ring: the task is throttled meanwhile.
type meteredAcquirer struct {
	acq pipeline.Acquirer
	m   *Meter
}

func (a meteredAcquirer) Acquire(ctx context.Context) (*bufpool.Buffer, error) {
	a.m.Waiting.Add(1)
	b, err := a.acq.Acquire(ctx)
	a.m.Waiting.Add(-1)
	return b, err
}

func (a meteredAcquirer) Release(b *bufpool.Buffer) { a.acq.Release(b) }

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
