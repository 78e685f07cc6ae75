package worker

import (
	"context"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// execute runs the job's media work through the media core, every buffer from the job's
// reservation. The run hears of its milestones (media.Observer) and reads its Meter for the
// heartbeat and the progress events.
func (w *Worker) execute(ctx context.Context, r *run, res *bufpool.Reservation) ([]job.OutputResult, error) {
	r.task.ID, r.task.Attempt, r.task.Job = r.id, r.attempt, r.job
	r.task.Buffers, r.task.Observer, r.task.Lease = res, r, r.lease
	defer r.pid.Store(0)
	if w.wantsSplit(ctx, r) {
		return w.executeSplit(ctx, r, res)
	}
	return w.media.Run(ctx, &r.task)
}

// Started records ffmpeg's argv and pid, for the dashboard and a failure's report.
func (r *run) Started(argv []string, pid int) {
	r.argv.Store(&argv)
	r.pid.Store(int64(pid))
	if h := r.w.cfg.Hooks.FFmpegStarted; h != nil {
		h(r.id, argv, pid)
	}
}

// FirstByte is the first byte of the job's first output.
func (r *run) FirstByte() {
	if h := r.w.cfg.Hooks.FirstOutputByte; h != nil {
		h(r.id)
	}
}

// Explain plans the job as this worker would run its first attempt, without running it: the
// argv is the one the worker starts for this job id.
func (w *Worker) Explain(ctx context.Context, j *job.Job) (*media.Explanation, error) {
	if err := j.Validate(w.cfg.Presets); err != nil {
		return nil, err
	}
	return w.media.Explain(ctx, &media.Task{ID: j.ID, Attempt: 1, Job: j})
}

var _ media.Observer = (*run)(nil)
