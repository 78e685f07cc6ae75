package worker

import (
	"context"
	"errors"
	"io"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
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
// (default probe size), decides streaming or spooling, probes, and builds the argv.
func Explain(ctx context.Context, runner *ffmpeg.Runner, presets job.Presets, j *job.Job) (*Explanation, error) {
	loc, err := job.ParseLocation(j.Input)
	if err != nil {
		return nil, err
	}
	f, err := openInput(loc)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, 2<<20)
	n, err := io.ReadFull(f, head)
	eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !eof {
		return nil, err
	}
	head = head[:n]
	ex := &Explanation{Spooled: scanMP4([][]byte{head}) == mp4MoovTail}
	in := ffmpeg.Input{}
	if !ex.Spooled {
		ex.Probe, err = runner.ProbeChunks(ctx, [][]byte{head})
		if err != nil && errors.Is(err, ffmpeg.ErrInvalidInput) && !eof {
			ex.Spooled = true
		} else if err != nil {
			return nil, err
		}
	}
	if ex.Spooled {
		// The worker probes its spool copy; the original is the same bytes.
		if ex.Probe, err = runner.ProbeFile(ctx, loc.Path); err != nil {
			return nil, err
		}
		in.Path = "SPOOL_FILE"
	}
	if ex.Spec, err = j.Plan(presets, ex.Probe, in); err != nil {
		return nil, err
	}
	if ex.Argv, err = runner.Args(ex.Spec); err != nil {
		return nil, err
	}
	return ex, nil
}
