package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/job"
)

// encoders is what this worker offers: ffmpeg's encoders (asked once), narrowed to
// Config.Encoders when that is set. nil when ffmpeg could not be asked: then every job is
// tried and ffmpeg has the last word.
func (w *Worker) encoders(ctx context.Context) []string {
	if e := w.caps.Load(); e != nil {
		return *e
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	all, err := w.cfg.FFmpeg.Encoders(qctx)
	if err != nil {
		w.log.Warn("ffmpeg -encoders", "err", err)
		return nil
	}
	if len(w.cfg.Encoders) > 0 {
		all = slices.DeleteFunc(all, func(e string) bool { return !slices.Contains(w.cfg.Encoders, e) })
	}
	w.caps.Store(&all)
	return all
}

// missing lists the encoders the job needs that this worker lacks.
func (w *Worker) missing(ctx context.Context, j *job.Job) []string {
	have := w.encoders(ctx)
	if have == nil {
		return nil
	}
	var out []string
	for _, e := range j.Encoders(w.cfg.Presets) {
		if !slices.Contains(have, e) {
			out = append(out, e)
		}
	}
	return out
}

// capableWorker reports whether a live worker other than this one has every encoder in need.
func (w *Worker) capableWorker(ctx context.Context, need []string) (bool, error) {
	if w.registry == nil {
		return false, nil
	}
	lister, err := w.registry.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return false, nil
		}
		return false, err
	}
	for k := range lister.Keys() {
		if k == w.cfg.ID {
			continue
		}
		var wi WorkerInfo
		if err := getJSON(ctx, w.registry, k, &wi); err != nil {
			continue
		}
		if time.Since(wi.Updated) > registryTTL {
			continue
		}
		ok := true
		for _, e := range need {
			ok = ok && slices.Contains(wi.Capabilities, e)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// passDelay is how long a job this worker cannot run waits before it is offered again.
const passDelay = time.Second

// routeByCapability decides what to do with a job that needs encoders this worker lacks. If
// another live worker has them, the delivery is handed back at once (it does not count as an
// attempt: the job's Passed count says so). Otherwise the job fails as transient, so it is
// retried with backoff (a capable worker may be starting) until the delivery limit, each
// retry saying which encoders no live worker has.
func (w *Worker) routeByCapability(ctx context.Context, r *run, st *job.Status, need []string) (handled bool, err error) {
	ok, lerr := w.capableWorker(ctx, need)
	if lerr != nil {
		r.log.Warn("registry", "err", lerr)
	}
	if ok {
		if st == nil {
			st = &job.Status{ID: r.id, State: job.StateQueued}
		}
		st.Passed++
		st.Updated = time.Now().UTC()
		if perr := putJSON(ctx, w.kv, r.id, st); perr != nil {
			r.log.Warn("update state", "err", perr)
		}
		r.log.Info("job needs encoders this worker lacks; handed to a capable worker", "missing", strings.Join(need, ","))
		w.metrics.jobs.WithLabelValues("passed", "").Inc()
		_ = r.msg.NakWithDelay(passDelay)
		return true, nil
	}
	return false, &job.Error{Class: job.ClassTransient, Reason: fmt.Sprintf("no live worker can encode %s", strings.Join(need, ", "))}
}

func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(e.Value(), v)
}
