package worker

import (
	"context"
	"errors"
	"io"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
)

// Explanation is what a job would run: the ffmpeg argv (without the program name) and whether
// the input would be spooled to a file rather than streamed into pipe:0.
type Explanation struct {
	Argv    []string
	Spooled bool
	Probe   *ffmpeg.ProbeResult
	Spec    ffmpeg.Spec
}

// Explain plans the job as a worker would, without running it: it reads the head of the input
// through st, decides streaming or spooling, probes, and builds the argv.
func Explain(ctx context.Context, runner *ffmpeg.Runner, st *storage.Store, presets job.Presets, j *job.Job, lim job.Limits) (*Explanation, error) {
	loc, err := job.ParseLocation(j.Input)
	if err != nil {
		return nil, err
	}
	f, err := st.Open(ctx, j.Input)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, 4*bufSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	head = head[:n]
	ex := &Explanation{Spooled: scanMP4([][]byte{head}) == mp4MoovTail}
	in := ffmpeg.Input{}
	if ex.Spooled {
		in.Path = "SPOOL_FILE"
	}
	// A local file can be probed whole; anything else by its head, as the worker does for
	// plans that need the probe first.
	if loc.IsFile() {
		ex.Probe, err = runner.ProbeFile(ctx, loc.Path)
	} else {
		ex.Probe, err = runner.ProbeChunks(ctx, [][]byte{head})
	}
	if err != nil {
		return nil, err
	}
	if err := j.CheckMedia(presets, ex.Probe, lim); err != nil {
		return nil, err
	}
	mp, err := j.PlanMedia(presets, in, lim, ex.Probe)
	if err != nil {
		return nil, err
	}
	ex.Spec = mp.Spec
	if ex.Argv, err = runner.Args(ex.Spec); err != nil {
		return nil, err
	}
	return ex, nil
}
