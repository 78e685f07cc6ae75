package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// Split jobs (README.md, "Split jobs"). The worker that takes a split job coordinates it: it
// cuts the source (media.PrepareSplit), puts each chunk's GOPs in the chunks object store and
// publishes a chunk task for it on transcode.chunks.<priority>, where any worker's free slot
// takes it as it takes jobs (same admission, heartbeats and classes). The coordinator encodes
// chunks too, in its own slot, while it waits: a fleet whose every slot coordinates still
// finishes. A chunk's record in SplitBucket says who encoded it, how often it was started and
// whether it is done: a done chunk stays done, so a redelivered split job resumes. When every
// chunk is done the coordinator stitches them with the audio it encoded meanwhile.

const (
	// ChunksBucket is the object store of split jobs' chunks: inputs (GOPs) and encodes.
	ChunksBucket = "TRANSCODE_CHUNKS"
	// SplitBucket is the KV bucket of chunk records, key "<job id>.<chunk index>".
	SplitBucket = "TRANSCODE_SPLIT"
	// ChunksSubjects are the subjects of chunk tasks.
	ChunksSubjects = "transcode.chunks.>"
	// chunkObjectsTTL removes what a job that never ended left in the chunks store.
	chunkObjectsTTL = 7 * 24 * time.Hour
)

// chunksOnlyHeader on a cancel message stops the job's chunks only: its coordinator has
// ended it already, and settles it itself.
const chunksOnlyHeader = "Transcoder-Chunks-Only"

// ChunkSubject is the subject a chunk task of the given priority is published on.
func ChunkSubject(p job.Priority) string {
	if p == "" {
		p = job.PriorityNormal
	}
	return "transcode.chunks." + string(p)
}

func chunkConsumerFor(p job.Priority) string { return "transcoders-chunks-" + string(p) }

func isChunkSubject(s string) bool { return strings.HasPrefix(s, "transcode.chunks.") }

// chunkRecord is a chunk's record in SplitBucket.
type chunkRecord struct {
	Done    bool         `json:"done,omitempty"`
	Worker  string       `json:"worker,omitempty"` // the last to start it; who encoded it once done
	Encodes int          `json:"encodes"`
	Outputs []string     `json:"outputs,omitempty"` // the chunk's encodes, one per video of the output
	Failed  *job.Failure `json:"failed,omitempty"`  // failed for good: so does the job
}

func chunkKey(id string, i int) string { return fmt.Sprintf("%s.%d", id, i) }

func chunkURL(id, name string) string { return "nats://" + ChunksBucket + "/" + id + "/" + name }

// ensureSplitStores creates the chunk records bucket and the chunks object store.
func ensureSplitStores(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: SplitBucket, Description: "chunk records of split jobs", History: 1,
		TTL: chunkObjectsTTL, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, err
	}
	err = ensureObjectStore(ctx, js, jetstream.ObjectStoreConfig{Bucket: ChunksBucket,
		Description: "chunks of split jobs", TTL: chunkObjectsTTL, Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return nil, err
	}
	return kv, nil
}

// ensureObjectStore creates the object store unless it exists (with whatever settings).
func ensureObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) error {
	err := retry(ctx, func(ctx context.Context) error {
		if _, err := js.ObjectStore(ctx, cfg.Bucket); err == nil {
			return nil
		}
		_, err := js.CreateObjectStore(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("object store %s: %w", cfg.Bucket, err)
	}
	return nil
}

// wantsSplit tells whether a job may be split: asked for (on), or auto with more than one
// worker alive (its input's length is checked on its head next).
func (w *Worker) wantsSplit(ctx context.Context, r *run) bool {
	if !r.job.Splittable() {
		return false // a clip, a loudness pass or an overlay: see job.Splittable
	}
	switch r.job.SplitMode() {
	case job.SplitOn:
		return true
	case job.SplitAuto:
		return w.liveWorkers(ctx) > 1
	}
	return false
}

// liveWorkers counts the workers in the registry (1, this one, without a registry). The count
// is kept for liveTTL: listing a large fleet's registry for every job would cost more than the
// jobs' dispatch.
func (w *Worker) liveWorkers(ctx context.Context) int {
	if w.registry == nil {
		return 1
	}
	w.live.Lock()
	defer w.live.Unlock()
	if time.Since(w.live.at) < liveTTL {
		return w.live.n
	}
	w.live.n, w.live.at = w.countRegistry(ctx), time.Now()
	return w.live.n
}

// liveTTL is how long a count of live workers is used.
const liveTTL = 5 * time.Second

func (w *Worker) countRegistry(ctx context.Context) int {
	keys, err := w.registry.ListKeys(ctx)
	if err != nil {
		return 1
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// executeSplit runs a split job as its coordinator. An input that cannot be split runs whole
// (auto) or fails as invalid_input (on).
func (w *Worker) executeSplit(ctx context.Context, r *run, res *bufpool.Reservation) ([]job.OutputResult, error) {
	r.task.ID, r.task.Attempt, r.task.Job = r.id, r.attempt, r.job
	r.task.Buffers, r.task.Observer, r.task.Lease = res, r, r.lease
	opts := media.SplitOptions{Chunk: r.job.ChunkDuration()}
	if r.job.SplitMode() == job.SplitAuto {
		opts.MinDuration = w.cfg.SplitMinDuration
	}
	s, err := w.media.PrepareSplit(ctx, &r.task, opts)
	if errors.Is(err, media.ErrUnsplittable) {
		if r.job.SplitMode() == job.SplitOn {
			return nil, &job.Error{Class: job.ClassInvalidInput, Reason: err.Error(), Err: err}
		}
		r.log.Info("running whole", "why", err.Error())
		return w.media.Run(ctx, &r.task)
	}
	if err != nil {
		return nil, err
	}
	defer s.Close()
	sp := &splitRun{w: w, r: r, s: s, res: res, total: len(s.Plan.Chunks)}
	outs, err := sp.run(ctx)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err) // canceled, timed out, shutting down: what ended it
	}
	// The job ends here when it failed for good, or on its last delivery: no attempt resumes it.
	// A coordinator that lost its lease decides nothing: the job may be another's now.
	ended := err != nil && !errors.Is(err, ErrLeaseLost) && (terminal(err) || r.counted() >= w.cfg.MaxDeliver)
	if ended {
		// Chunks of the job still encoding elsewhere stop (their workers hear the job's cancel
		// subject), and find no record to write once cleaned up.
		m := nats.NewMsg(CancelSubject(r.id))
		m.Header.Set(chunksOnlyHeader, "1")
		_ = w.cfg.Conn.PublishMsg(m)
	}
	if err == nil || ended {
		sp.cleanup(ctx)
	}
	return outs, err
}

// terminal reports whether a failure ends the job for good (no redelivery resumes it).
func terminal(err error) bool {
	class, _ := classify(err)
	return class != job.ClassTransient && class != job.ClassInternal
}

// splitRun is one attempt of a split job's coordination.
type splitRun struct {
	w     *Worker
	r     *run
	s     *media.Split
	res   *bufpool.Reservation
	total int
}

func (sp *splitRun) run(ctx context.Context) ([]job.OutputResult, error) {
	r, w := sp.r, sp.w
	r.chunksTotal.Store(int64(sp.total))
	if err := sp.publish(ctx); err != nil {
		return nil, err
	}
	r.Phase("chunks published")
	sp.s.StartAudio(ctx)
	recs, err := sp.await(ctx)
	if err != nil {
		return nil, err
	}
	r.Phase("chunks")
	var videos []string
	defer func() {
		for _, v := range videos {
			_ = os.Remove(v)
		}
	}()
	for k := range sp.s.Videos {
		videos = append(videos, filepath.Join(w.cfg.SpoolDir, fmt.Sprintf("transcoder-stitch-%s-%d-%d.ts", r.id, r.attempt, k)))
		if err := sp.fetch(ctx, recs, k, videos[k]); err != nil {
			return nil, err
		}
	}
	outs, err := w.media.Stitch(ctx, &r.task, sp.s, videos)
	if err != nil {
		return nil, err
	}
	acct := &job.SplitResult{Chunks: sp.total}
	for _, rec := range recs {
		acct.Encodes += rec.Encodes
		if !slices.Contains(acct.Workers, rec.Worker) {
			acct.Workers = append(acct.Workers, rec.Worker)
		}
	}
	r.split.Store(acct)
	return outs, nil
}

// publish puts every chunk that is not done in the chunks store and publishes its task.
func (sp *splitRun) publish(ctx context.Context) error {
	r, w := sp.r, sp.w
	for _, i := range sp.s.Plan.ByCost() {
		c := sp.s.Plan.Chunks[i]
		if rec, _ := w.chunkRecord(ctx, r.id, i); rec != nil && rec.Done && w.stored(ctx, rec.Outputs) {
			continue // done by an earlier attempt
		}
		in := chunkURL(r.id, fmt.Sprintf("in-%05d.ts", i))
		if err := sp.put(ctx, i, in); err != nil {
			return err
		}
		// The record exists before its task: a chunk run finds none once the job has ended.
		if err := w.updateChunk(ctx, r.id, i, true, func(*chunkRecord) {}); err != nil {
			return fmt.Errorf("chunk %d record: %w", i, err)
		}
		task := job.ChunkTask{Job: r.id, Index: i, Input: in, Window: c.Window, Frames: c.Frames, Videos: sp.s.Videos}
		for k := range sp.s.Videos {
			task.Outputs = append(task.Outputs, chunkURL(r.id, fmt.Sprintf("out-%05d-%d.ts", i, k)))
		}
		// One task per chunk: a later attempt's publish of a chunk whose task is still in the
		// stream (queued, or held by a worker that died) is dropped as a duplicate (within the
		// stream's 10 minute window), so that the chunk is not encoded twice at once. Past the
		// window, the record tells whoever takes the second task that the chunk is done.
		id := jetstream.WithMsgID(fmt.Sprintf("%s.chunk.%d", r.id, i))
		if err := publishJSON(ctx, w.js, ChunkSubject(r.job.Priority), task, id); err != nil {
			return fmt.Errorf("publish chunk %d: %w", i, err)
		}
	}
	return nil
}

// put copies chunk i's GOPs into the chunks store, through the job's ring reservation.
func (sp *splitRun) put(ctx context.Context, i int, url string) error {
	src, _, err := sp.s.ChunkInput(i)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	wr, err := sp.w.cfg.Storage.Create(ctx, url, storage.CreateOptions{JobID: sp.r.id, Attempt: sp.r.attempt, ContentType: "video/mp2t"})
	if err != nil {
		return fmt.Errorf("chunk %d: %w", i, err)
	}
	if _, err := media.Copy(ctx, wr, src, sp.res); err != nil {
		wr.Abort()
		return fmt.Errorf("chunk %d: %w", i, err)
	}
	if err := wr.Commit(ctx); err != nil {
		wr.Abort()
		return fmt.Errorf("chunk %d: %w", i, err)
	}
	return nil
}

// await encodes chunk tasks in this slot while there are any, and waits for the others' until
// every chunk of the job is done. A chunk that failed for good fails the job with its class.
// The records are followed through the bucket's watch (a job of N chunks costs N updates, not N
// reads per update), and read again every resyncEvery in case the watch lost some while this
// slot was encoding.
func (sp *splitRun) await(ctx context.Context) ([]chunkRecord, error) {
	r, w := sp.r, sp.w
	watch, err := w.splitKV.Watch(ctx, r.id+".*")
	if err != nil {
		return nil, fmt.Errorf("watch chunks: %w", err)
	}
	defer func() { _ = watch.Stop() }()
	recs := make([]chunkRecord, sp.total)
	// The coordinator's slot takes chunks once the audio encode (on this worker, about as much
	// work as a chunk) is over: its core does one thing at a time, and the other workers take
	// the chunks meanwhile, so that all finish together.
	audio := sp.s.AudioDone()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	resync := time.Now()
	for {
		if time.Since(resync) > resyncEvery {
			resync = time.Now()
			for i := range recs {
				if rec, err := w.chunkRecord(ctx, r.id, i); err == nil {
					recs[i] = *rec
				}
			}
		}
		done, failed := 0, (*job.Failure)(nil)
		for _, rec := range recs {
			if rec.Done {
				done++
			}
			if rec.Failed != nil {
				failed = rec.Failed
			}
		}
		r.chunksDone.Store(int64(done))
		r.splitTicks.Add(1)
		if failed != nil {
			return nil, &job.Error{Class: failed.Class, Reason: "a chunk failed: " + failed.Reason}
		}
		if done == sp.total {
			return recs, nil
		}
		if audio == nil {
			at := time.Now()
			if msg, _ := w.pullChunk(); msg != nil {
				w.runChunk(ctx, msg, at, sp.res)
				drainWatch(watch, recs, r.id)
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-audio:
			audio = nil
		case e, ok := <-watch.Updates():
			if !ok {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				return nil, errors.New("worker: the chunk records' watch ended")
			}
			// nil marks the end of the values the bucket had when the watch began.
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				applyRecord(recs, r.id, e)
			}
		case <-tick.C:
		}
	}
}

// resyncEvery is how often a coordinator reads every chunk record again.
const resyncEvery = 5 * time.Second

// drainWatch applies the updates the watch holds, without waiting.
func drainWatch(watch jetstream.KeyWatcher, recs []chunkRecord, id string) {
	for {
		select {
		case e, ok := <-watch.Updates():
			if !ok {
				return // stopped: await sees why
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				applyRecord(recs, id, e)
			}
		default:
			return
		}
	}
}

// applyRecord sets the record a watch update carries.
func applyRecord(recs []chunkRecord, id string, e jetstream.KeyValueEntry) {
	i, err := strconv.Atoi(strings.TrimPrefix(e.Key(), id+"."))
	if err != nil || i < 0 || i >= len(recs) {
		return
	}
	var rec chunkRecord
	if json.Unmarshal(e.Value(), &rec) == nil {
		recs[i] = rec
	}
}

// stored reports whether every object named is in its store.
func (w *Worker) stored(ctx context.Context, urls []string) bool {
	for _, u := range urls {
		if _, err := w.cfg.Storage.Stat(ctx, u); err != nil {
			return false
		}
	}
	return len(urls) > 0
}

// fetch concatenates video k of the encoded chunks, in order, into a local file for the stitch.
func (sp *splitRun) fetch(ctx context.Context, recs []chunkRecord, k int, path string) error {
	w := sp.w
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("stitch: %w", storage.NoSpace(err, "spool", w.cfg.SpoolDir))
	}
	defer func() { _ = f.Close() }()
	for i, rec := range recs {
		if k >= len(rec.Outputs) {
			return fmt.Errorf("chunk %d: %d encodes recorded, video %d wanted", i, len(rec.Outputs), k)
		}
		rd, err := w.cfg.Storage.Open(ctx, rec.Outputs[k])
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		_, err = media.Copy(ctx, f, rd, sp.res)
		_ = rd.Close()
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, storage.NoSpace(err, "spool", w.cfg.SpoolDir))
		}
	}
	return storage.NoSpace(f.Close(), "spool", w.cfg.SpoolDir)
}

// cleanup removes the job's chunk objects and records: the job has ended.
func (sp *splitRun) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	for i := range sp.total {
		_ = sp.w.cfg.Storage.Delete(ctx, chunkURL(sp.r.id, fmt.Sprintf("in-%05d.ts", i)))
		for k := range sp.s.Videos {
			_ = sp.w.cfg.Storage.Delete(ctx, chunkURL(sp.r.id, fmt.Sprintf("out-%05d-%d.ts", i, k)))
		}
		_ = sp.w.splitKV.Delete(ctx, chunkKey(sp.r.id, i))
	}
}

// chunkRecord reads a chunk's record, nil if it has none.
func (w *Worker) chunkRecord(ctx context.Context, id string, i int) (*chunkRecord, error) {
	e, err := w.splitKV.Get(ctx, chunkKey(id, i))
	if err != nil {
		return nil, err
	}
	var rec chunkRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// errNoRecord: the chunk has no record; its job has ended and was cleaned up.
var errNoRecord = errors.New("worker: no chunk record")

// updateChunk changes a chunk's record with compare and swap: two workers that started the
// same chunk both count. Only the coordinator creates records (create); for anyone else a
// missing record is errNoRecord.
func (w *Worker) updateChunk(ctx context.Context, id string, i int, create bool, fn func(*chunkRecord)) error {
	key := chunkKey(id, i)
	for range 10 {
		var rec chunkRecord
		var rev uint64
		e, err := w.splitKV.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) && !create:
			return errNoRecord
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			if err := json.Unmarshal(e.Value(), &rec); err != nil {
				return err
			}
			rev = e.Revision()
		}
		fn(&rec)
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = w.splitKV.Create(ctx, key, b)
		} else {
			_, err = w.splitKV.Update(ctx, key, b, rev)
		}
		if err == nil || (!errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch)) {
			return err
		}
	}
	return fmt.Errorf("worker: chunk record %s changed under every update", key)
}

// pullChunk takes a chunk task that is waiting, highest priority first; nil if none.
func (w *Worker) pullChunk() (jetstream.Msg, error) {
	for _, c := range w.chunkCons {
		if msg, err := w.pull(c, 0); err != nil || msg != nil {
			return msg, err
		}
	}
	return nil, nil
}

// runChunk encodes one chunk task and settles it: done (ack), failed for good (its record says
// so, and the job fails; term), or retried alone (nak with backoff) until the delivery limit.
func (w *Worker) runChunk(ctx context.Context, msg jetstream.Msg, at time.Time, res *bufpool.Reservation) {
	meta, err := msg.Metadata()
	var ct job.ChunkTask
	if err == nil {
		err = json.Unmarshal(msg.Data(), &ct)
	}
	if err != nil || !job.ValidID(ct.Job) || ct.Index < 0 {
		w.log.Warn("chunk task refused", "err", err)
		_ = msg.Term()
		return
	}
	log := w.log.With("job", ct.Job, "chunk", ct.Index, "attempt", meta.NumDelivered)
	// A chunk task is fenced like a job: past its lease it stops, and writes nothing more.
	l := w.newLease(msg, at, log)
	defer l.start()()
	ctx, unfence := l.fenced(ctx)
	defer unfence()
	if st, _ := w.status(ctx, ct.Job); st != nil && (st.CancelRequested || st.State == job.StateSucceeded || st.State == job.StateFailed || st.State == job.StateCanceled) {
		_ = msg.Ack() // its job has ended
		return
	}
	if rec, _ := w.chunkRecord(ctx, ct.Job, ct.Index); rec != nil && (rec.Done || rec.Failed != nil) {
		_ = msg.Ack()
		return
	}
	if need := w.missingEncoders(ctx, ct.Videos); len(need) > 0 {
		// Capability routing, as for jobs: a worker that has the encoder takes it. A chunk
		// task's deliveries are not its attempts (its record counts encodes), so it waits for
		// one without running out.
		log.Info("chunk needs an encoder this worker lacks; handed on", "need", need)
		_ = msg.NakWithDelay(w.cfg.Backoff[0])
		return
	}
	if err := w.updateChunk(ctx, ct.Job, ct.Index, false, func(rec *chunkRecord) { rec.Encodes++; rec.Worker = w.cfg.ID }); err != nil {
		if errors.Is(err, errNoRecord) {
			_ = msg.Ack() // its job has ended
			return
		}
		log.Warn("chunk record", "err", err)
	}
	start := time.Now()
	err = w.encodeChunk(ctx, l, ct, int(meta.NumDelivered), res)
	w.settleChunk(ctx, log, l, ct, int(meta.NumDelivered), err)
	if err == nil {
		log.Info("chunk encoded", "frames", ct.Frames, "elapsed", time.Since(start).Round(time.Millisecond))
	}
}

// missingEncoders lists the encoders of videos this worker does not have.
func (w *Worker) missingEncoders(ctx context.Context, videos []ffmpeg.Video) []string {
	have := w.encoders(ctx)
	var out []string
	for _, v := range videos {
		if have != nil && !slices.Contains(have, v.Codec) && !slices.Contains(out, v.Codec) {
			out = append(out, v.Codec)
		}
	}
	return out
}

// encodeChunk runs the chunk's media task, canceled with its job (its lease sends the
// heartbeats).
func (w *Worker) encodeChunk(ctx context.Context, l *lease, ct job.ChunkTask, attempt int, res *bufpool.Reservation) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	key := chunkKey(ct.Job, ct.Index)
	w.mu.Lock()
	w.chunkRuns[key] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.chunkRuns, key)
		w.mu.Unlock()
	}()
	id := fmt.Sprintf("%s-c%d", ct.Job, ct.Index)
	task := &media.Task{ID: id, Attempt: attempt, Buffers: res, Lease: l,
		Job:   &job.Job{ID: id, Input: ct.Input},
		Chunk: &media.ChunkWork{Videos: ct.Videos, Window: ct.Window, Frames: ct.Frames}}
	for _, u := range ct.Outputs {
		task.Job.Outputs = append(task.Job.Outputs, job.Output{URL: u})
	}
	_, err := w.media.Run(ctx, task)
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(cause, err)
	}
	return err
}

func (w *Worker) settleChunk(ctx context.Context, log *slog.Logger, l *lease, ct job.ChunkTask, attempt int, err error) {
	msg := l.msg
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	sctx, unfence := l.fenced(sctx)
	defer unfence()
	var class job.Class
	var reason string
	if err != nil {
		class, reason = classify(err)
	}
	fenced := errors.Is(err, ErrLeaseLost) || l.Lost()
	act, delay := decide(class, attempt, w.cfg.MaxDeliver, w.cfg.Backoff, errors.Is(err, ErrShutdown) || ctx.Err() != nil, fenced)
	switch {
	case act == actLeave:
		log.Warn("chunk abandoned: lease lost; nothing recorded, the task left to NATS")
	case act == actAck:
		w.chunkDone(sctx, log, msg, ct)
	case class == job.ClassCanceled:
		log.Warn("chunk canceled")
		_ = msg.Ack()
	case act == actNak:
		log.Warn("chunk failed", "class", class, "reason", reason)
		_ = msg.NakWithDelay(delay)
	default:
		log.Warn("chunk failed", "class", class, "reason", reason)
		_ = w.updateChunk(sctx, ct.Job, ct.Index, false, func(rec *chunkRecord) { rec.Failed = &job.Failure{Class: class, Reason: reason} })
		_ = msg.TermWithReason(string(class))
	}
}

// chunkDone records an encoded chunk as done and acks its task.
func (w *Worker) chunkDone(ctx context.Context, log *slog.Logger, msg jetstream.Msg, ct job.ChunkTask) {
	uerr := w.updateChunk(ctx, ct.Job, ct.Index, false, func(rec *chunkRecord) { rec.Done, rec.Worker, rec.Outputs = true, w.cfg.ID, ct.Outputs })
	if errors.Is(uerr, errNoRecord) {
		// The job ended while this chunk was encoded: nothing will stitch it.
		for _, u := range ct.Outputs {
			_ = w.cfg.Storage.Delete(ctx, u)
		}
		_ = msg.Ack()
		return
	}
	if uerr != nil {
		log.Warn("chunk done, record not written: it is redone", "err", uerr)
		_ = msg.Nak()
		return
	}
	_ = msg.DoubleAck(ctx)
}
