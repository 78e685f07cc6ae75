package media

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// Kind is what an output of a plan is made of, and so how it is written, verified and
// published.
type Kind int

const (
	// KindFile is one file or object, streamed from ffmpeg's pipe to its store.
	KindFile Kind = iota
	// KindFaststart is one mp4/m4a with its index in front (every single-file mp4 and m4a:
	// see plainMP4): ffmpeg writes a spool file (it seeks back to put the index there), which
	// goes to the store once complete.
	KindFaststart
	// KindLadder is an HLS or DASH ladder: a CMAF stream per rendition, cut into segments.
	KindLadder
	// KindImages is a poster, spread thumbnails or a sprite sheet, from one MJPEG stream.
	KindImages
)

func (k Kind) String() string {
	return [...]string{"file", "faststart file", "ladder", "images"}[k]
}

// Plan is a task resolved once: its outputs, each of an explicit kind, and the final ffmpeg
// spec (threads and spool paths included), which nothing edits afterwards.
type Plan struct {
	Spec    ffmpeg.Spec
	Outputs []PlannedOutput
	// Sidecars are the subtitles_in files, one per Spec.SubtitleInputs entry.
	Sidecars []job.Sidecar
}

// PlannedOutput is one output of the job: what the job asked for and the ffmpeg outputs
// (indexes into Spec.Outputs) that make it.
type PlannedOutput struct {
	job.PlannedOutput
	Kind Kind
	URL  string
}

// prepared opens the task's input stage and plans the task against it: what Run and Explain
// share, so that explain shows what runs. On error nothing is left open.
func (e *Engine) prepared(ctx context.Context, t *Task, explain bool) (*input, *Plan, error) {
	in, err := e.openInput(ctx, t, explain)
	if err != nil {
		return nil, nil, err
	}
	p, err := e.plan(ctx, t, in)
	if err != nil {
		in.close()
		return nil, nil, err
	}
	return in, p, nil
}

// plan resolves the task against its input (probe may be nil when the job does not need it
// before ffmpeg starts) into the final spec.
func (e *Engine) plan(ctx context.Context, t *Task, in *input) (*Plan, error) {
	if t.Chunk != nil {
		return e.chunkPlan(t)
	}
	mp, err := t.Job.PlanMedia(e.cfg.Presets, ffmpeg.Input{Path: in.path}, e.cfg.Limits, in.probe)
	if err != nil {
		return nil, err
	}
	p := &Plan{Spec: mp.Spec, Sidecars: mp.Sidecars}
	p.Spec.Outputs = append([]ffmpeg.Output(nil), mp.Spec.Outputs...)
	p.Spec.Threads = e.threads(p.Spec)
	for i, po := range mp.Outputs {
		out := PlannedOutput{PlannedOutput: po, URL: po.Resolved.Location.String()}
		switch {
		case po.Resolved.Thumbnails != nil:
			out.Kind = KindImages
		case job.IsLadder(po.Resolved.Container):
			out.Kind = KindLadder
		case po.Resolved.Faststart || plainMP4(po.Resolved.Container):
			out.Kind = KindFaststart
			p.Spec.Outputs[po.Spec[0]].Path = e.faststartPath(t, i, po.Resolved.Container)
		}
		p.Outputs = append(p.Outputs, out)
	}
	e.placeTrackFiles(t, p)
	if _, err := e.outputDepth(len(p.Spec.Outputs)); err != nil {
		return nil, err
	}
	// What the plan needs fetched or measured before ffmpeg starts: overlay images, and the
	// loudness of the audio tracks it normalises.
	if err := e.fetchOverlays(ctx, t, in, p); err != nil {
		return nil, err
	}
	if err := e.measureLoudness(ctx, t, in, p); err != nil {
		return nil, err
	}
	return p, nil
}

// plainMP4 tells the containers written as a plain file, index in front, rather than
// fragmented into the pipe: only the plain mp4 muxer has what ffmpeg's CLI output has, edit
// lists that start the video at its first frame and trim the audio encoder's priming, and
// stream durations that are the presented ones. A fragmented mp4 cannot carry the priming
// trim, and its durations count the decode timestamps (a stream starting after a gap comes
// out long), so lip sync and durations would be off against the input by a frame or more.
// The price: the output reaches its store once encoded, not while (ffmpeg seeks in the file).
func plainMP4(container string) bool { return container == "mp4" || container == "m4a" }

// faststartPath is the file ffmpeg writes output i of a faststart task to.
func (e *Engine) faststartPath(t *Task, i int, container string) string {
	return filepath.Join(e.cfg.SpoolDir, fmt.Sprintf("transcoder-faststart-%s-%d-%d.%s", t.ID, t.Attempt, i, container))
}

// chunkPlan is a chunk task's plan: its window of the GOPs it is given, on their own clock,
// encoded to MPEG-TS with the split job's video settings.
func (e *Engine) chunkPlan(t *Task) (*Plan, error) {
	if n := len(t.Chunk.Videos); n == 0 || n != len(t.Job.Outputs) || n > e.cfg.MaxOutputs {
		return nil, &job.Error{Class: job.ClassInvalidJob, Reason: fmt.Sprintf("a chunk task has one output per video (%d outputs, %d videos, at most %d)", len(t.Job.Outputs), n, e.cfg.MaxOutputs)}
	}
	lim := e.cfg.Limits.WithDefaults()
	p := &Plan{Spec: ffmpeg.Spec{Input: ffmpeg.Input{Format: "mpegts"}, CopyTS: true, MaxPixels: lim.MaxPixels}}
	for i, out := range t.Job.Outputs {
		loc, err := job.ParseLocation(out.URL)
		if err != nil {
			return nil, &job.Error{Class: job.ClassInvalidJob, Reason: "chunk output: " + err.Error()}
		}
		v, w := t.Chunk.Videos[i], t.Chunk.Window
		o := ffmpeg.Output{Container: "mpegts", Video: &v, Window: &w, MaxBytes: lim.MaxOutputBytes}
		if err := o.Validate(); err != nil {
			return nil, &job.Error{Class: job.ClassInvalidJob, Reason: "chunk: " + err.Error(), Err: err}
		}
		p.Spec.Outputs = append(p.Spec.Outputs, o)
		p.Outputs = append(p.Outputs, PlannedOutput{PlannedOutput: job.PlannedOutput{Resolved: job.ResolvedOutput{Location: loc, Container: "mpegts"}, Spec: []int{i}}, Kind: KindFile, URL: loc.String()})
	}
	p.Spec.Threads = e.threads(p.Spec)
	return p, nil
}
