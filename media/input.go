package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
	"github.com/transcoder/transcoder/storage"
)

// input is a task's input stage: the opened source, the head read for the probe, and the spool
// file when the input cannot stream. It owns the head's buffers: feed hands them to ffmpeg's
// stdin channel, and close gives back whatever feed did not, so every path releases them here
// and nowhere else.
type input struct {
	acq   pipeline.Acquirer
	r     *storage.Reader
	src   io.Reader // r, counted
	head  []*bufpool.Buffer
	eof   bool   // the whole input is in head
	path  string // the spool file ffmpeg reads; "" when it reads pipe:0
	probe *ffmpeg.ProbeResult
	// local is the input's own path when it is a local file: explain probes it instead of
	// spooling a copy (the same bytes, so the same description).
	local string
	// extra are more files ffmpeg reads beside the input (overlay images), removed with it.
	extra []string
}

// openInput opens the task's input and prepares it for ffmpeg. The head tells an mp4 whose
// index follows its media, which cannot stream: it is spooled. A plan that depends on the input
// (a ladder's rungs, thumbnail times, an SDR output's tone-mapping of an HDR input, unless the
// head shows the video SDR: see sdrMP4) probes the head first: one buffer, which is enough for
// nearly every input and quick to probe; then, if ffprobe needs more, as much as the input side
// of the pipeline may hold (so the head never holds buffers the outputs need); then the whole
// input, spooled. On error nothing is left open or held.
func (e *Engine) openInput(ctx context.Context, t *Task, explain bool) (*input, error) {
	r, err := e.cfg.Storage.Open(ctx, t.Job.Input)
	if err != nil {
		return nil, fmt.Errorf("open input: %w", err)
	}
	in := &input{acq: t.Buffers, r: r, src: countingReader{r: r, n: &t.Meter.BytesIn}}
	if explain {
		if loc, err := job.ParseLocation(t.Job.Input); err == nil && loc.IsFile() {
			in.local = loc.Path
		}
	}
	if err := e.prepare(ctx, t, in); err != nil {
		in.close()
		return nil, err
	}
	return in, nil
}

func (e *Engine) prepare(ctx context.Context, t *Task, in *input) error {
	if err := in.readHead(ctx, 1); err != nil {
		return err
	}
	var first []byte // what the sniffers below read: the head's first buffer
	if len(in.head) > 0 {
		first = in.head[0].Bytes()
	}
	// A loudness normalisation reads the input twice: measured, then transcoded.
	loudness := t.Chunk == nil && t.Job.NormalisesLoudness()
	spoolInput := scanMP4(chunks(in.head)) == mp4MoovTail || needsSeek(first) || loudness
	// A multiplex whose programme the job leaves to the worker: the plan picks it from the probe.
	multiplex := t.Job.Program == 0 && tsPrograms(first) > 1
	// An SDR output of an HDR input is tone-mapped: the plan needs the input's colour. (A
	// chunk's plan is made: it needs no probe.)
	colour := t.Chunk == nil && t.Job.EncodesSDR(e.cfg.Presets) && !sdrMP4(first)
	// Outputs that keep or burn tracks by the input's streams: the plan needs them, unless only
	// the defaults are asked for and the head shows nothing to choose from.
	need, headEnough := t.Job.TracksNeedProbe(e.cfg.Presets)
	tracks := t.Chunk == nil && need && (!headEnough || !plainTracks(first))
	// A text track burned in is read from the input file by ffmpeg's subtitles filter.
	spoolInput = spoolInput || t.Chunk == nil && t.Job.BurnsInputSubtitles()
	if t.Chunk == nil && !spoolInput && (multiplex || colour || tracks || t.Job.NeedsProbe(e.cfg.Presets)) {
		probe, err := e.cfg.FFmpeg.ProbeChunks(ctx, chunks(in.head))
		if maxHead := min(e.cfg.ChanDepth+1, max(1, e.cfg.ProbeBytes/bufSize)); (err != nil || undescribed(probe)) && !in.eof && maxHead > len(in.head) {
			if rerr := in.readHead(ctx, maxHead-len(in.head)); rerr != nil {
				return rerr
			}
			probe, err = e.cfg.FFmpeg.ProbeChunks(ctx, chunks(in.head))
		}
		if err != nil && in.eof {
			return err
		}
		// The head was not enough to describe the input (an mp4 whose index is larger than
		// the head, or a capture whose first keyframe is further in, say): spool it and probe
		// the file.
		spoolInput = err != nil || undescribed(probe)
		in.probe = probe
		t.phase("probe")
	}
	if spoolInput {
		if err := e.spoolInput(ctx, t, in); err != nil {
			return err
		}
		t.phase("spool")
	}
	if in.probe != nil {
		probe, err := e.checkMedia(ctx, t, in, in.probe)
		if err != nil {
			return err
		}
		if err := e.frameHDR(ctx, t, in, probe); err != nil {
			return err
		}
		in.probe = probe
		t.probed(in.probe)
	}
	return nil
}

// spoolInput writes the input to the task's spool file and probes that file.
func (e *Engine) spoolInput(ctx context.Context, t *Task, in *input) error {
	in.path = e.spoolPath(t)
	var err error
	if in.local != "" {
		in.probe, err = e.cfg.FFmpeg.ProbeFile(ctx, in.local)
		in.releaseHead()
		return err
	}
	err = spool(ctx, in.path, in.head, in.src, in.acq, e.cfg.SpoolLimit)
	in.releaseHead()
	if err != nil {
		in.path = ""
		return err
	}
	in.probe, err = e.cfg.FFmpeg.ProbeFile(ctx, in.path)
	return err
}

// spoolPath is the file an input that cannot stream is spooled to: named by the task, so that
// explain shows the argv the worker runs.
func (e *Engine) spoolPath(t *Task) string {
	return filepath.Join(e.cfg.SpoolDir, fmt.Sprintf("transcoder-spool-%s-%d", t.ID, t.Attempt))
}

// readHead adds up to n buffers to the head, each as full as the input allows.
func (in *input) readHead(ctx context.Context, n int) error {
	for ; n > 0 && !in.eof; n-- {
		b, err := in.acq.Acquire(ctx)
		if err != nil {
			return err
		}
		m, rerr := io.ReadFull(in.src, b.Space())
		b.SetLen(m)
		if m > 0 {
			in.head = append(in.head, b)
		} else {
			in.acq.Release(b)
		}
		switch {
		case errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF):
			in.eof = true
		case rerr != nil:
			return fmt.Errorf("read input: %w", rerr)
		}
	}
	return nil
}

// feed is the source stage: the head, then the rest of the input, into ffmpeg's stdin
// channel. Each buffer sent belongs to the channel's reader; what is not sent stays in the head
// for close.
func (in *input) feed(ctx context.Context, ch chan<- *bufpool.Buffer) error {
	for len(in.head) > 0 {
		select {
		case ch <- in.head[0]:
			in.head = in.head[1:]
		case <-ctx.Done():
			close(ch)
			return ctx.Err()
		}
	}
	if in.eof {
		close(ch)
		return nil
	}
	_, err := pipeline.ReadFrom(ctx, in.src, in.acq, ch)
	return err
}

func (in *input) releaseHead() {
	for _, b := range in.head {
		in.acq.Release(b)
	}
	in.head = nil
}

// close releases what the input stage still holds: the head, the spool file, the source.
func (in *input) close() {
	in.releaseHead()
	if in.path != "" && in.local == "" {
		_ = os.Remove(in.path)
	}
	for _, p := range in.extra {
		_ = os.Remove(p)
	}
	_ = in.r.Close()
}

// countingReader counts bytes read so the watchdog sees the input advance.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func chunks(bufs []*bufpool.Buffer) [][]byte {
	c := make([][]byte, len(bufs))
	for i, b := range bufs {
		c[i] = b.Bytes()
	}
	return c
}
