package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed" // the dashboard page
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/job"
)

// The dashboard is a read-only page on the metrics address: GET / serves the page (one HTML
// file, inline CSS and JS, no external resources) and GET /api/dashboard the JSON it polls.
// Everything it shows is read from NATS, so the page of any one worker shows the whole fleet.
const (
	// dashboardTTL is how long a snapshot is served before NATS is asked again: a hundred open
	// browsers cost NATS what one does.
	dashboardTTL = time.Second
	// dashboardTimeout bounds the gathering of one snapshot.
	dashboardTimeout = 5 * time.Second
	// dashboardFailures is how many of the latest dead letters the dashboard lists.
	dashboardFailures = 20
	// dashboardScan bounds the dead-letter sequence numbers read to find them (a retried or
	// redelivered dead letter leaves a gap).
	dashboardScan = 200
	// dashboardMaxJobs bounds the running jobs looked up.
	dashboardMaxJobs = 500
	// dashboardMaxText bounds a reason or a metadata value, in bytes.
	dashboardMaxText = 1000
)

// Dashboard is the JSON document of GET /api/dashboard: a snapshot of the fleet, taken at Time
// and served to every caller for about a second. A part that could not be read is empty and its
// error is in Errors; the rest is still there.
type Dashboard struct {
	Time     time.Time `json:"time"`      // when the snapshot was taken
	WorkerID string    `json:"worker_id"` // the worker serving it
	// Workers are the live workers of the registry (TRANSCODE_WORKERS), by id. The serving
	// worker's own counts are live; the others' are as of their last heartbeat (every 5 s).
	Workers []DashboardWorker `json:"workers"`
	// Jobs are the jobs running now on the live workers, with their latest progress (state
	// bucket TRANSCODE_STATE), by worker then id.
	Jobs []DashboardJob `json:"jobs"`
	// Queues are the jobs waiting and in flight by priority: high, normal, low.
	Queues []DashboardQueue `json:"queues"`
	// Failures are the latest jobs that failed for good (dead letters, TRANSCODE_DLQ), newest
	// first, at most 20.
	Failures []DashboardFailure `json:"failures"`
	// Errors says what could not be read, one line each.
	Errors []string `json:"errors,omitempty"`
}

// DashboardWorker is one live worker.
type DashboardWorker struct {
	ID           string    `json:"id"`
	Host         string    `json:"host"`
	PID          int       `json:"pid"`
	Version      string    `json:"version"` // ffmpeg's version line
	Slots        int       `json:"slots"`
	SlotsUsed    int       `json:"slots_used"`
	Running      []string  `json:"running"` // job ids
	RingCapacity int       `json:"ring_capacity"`
	RingInUse    int       `json:"ring_in_use"`
	RingReserved int       `json:"ring_reserved"`
	Encoders     int       `json:"encoders"` // ffmpeg encoders available
	Started      time.Time `json:"started,omitzero"`
	Updated      time.Time `json:"updated,omitzero"` // last heartbeat
	// HeartbeatAge is the time since the last heartbeat in seconds; null before the first.
	HeartbeatAge *float64 `json:"heartbeat_age_seconds"`
	// Self marks the worker serving the dashboard.
	Self bool `json:"self,omitempty"`
}

// DashboardJob is one running job.
type DashboardJob struct {
	ID       string        `json:"id"`
	WorkerID string        `json:"worker_id"`
	Attempt  int           `json:"attempt"`
	Input    string        `json:"input"`
	Updated  time.Time     `json:"updated,omitzero"`
	Progress *job.Progress `json:"progress,omitempty"` // percent, fps, speed, out_time, ...
	// Metadata is the job's own, known only for jobs on the serving worker (the state bucket
	// does not keep it).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// DashboardQueue is one priority's shared consumer.
type DashboardQueue struct {
	Priority    job.Priority `json:"priority"`
	Consumer    string       `json:"consumer"`
	Pending     uint64       `json:"pending"`     // published, not yet delivered
	AckPending  int          `json:"ack_pending"` // delivered, not yet settled (running or waiting for a retry)
	Redelivered int          `json:"redelivered"` // delivered more than once and not yet settled
	Waiting     int          `json:"waiting"`     // pull requests of idle workers
}

// DashboardFailure is one job that failed for good.
type DashboardFailure struct {
	ID       string            `json:"id"`
	Time     time.Time         `json:"time"`
	WorkerID string            `json:"worker_id"`
	Attempts int               `json:"attempts"`
	Class    job.Class         `json:"class"`
	Reason   string            `json:"reason"`
	Input    string            `json:"input,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

//go:embed dashboard.html
var dashboardHTML []byte

// dashboardCSP allows the page its own inline script and style (by hash), requests to its own
// origin, and nothing else: no images, no frames, no forms, no other scripts.
var dashboardCSP = func() string {
	hash := func(open, close string) string {
		_, rest, ok := bytes.Cut(dashboardHTML, []byte(open))
		body, _, ok2 := bytes.Cut(rest, []byte(close))
		if !ok || !ok2 {
			panic("worker: dashboard.html lacks " + open)
		}
		sum := sha256.Sum256(body)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + hash("<script>", "</script>") +
		"; style-src " + hash("<style>", "</style>") +
		"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// dashboard serves the page and its snapshot, cached for dashboardTTL.
type dashboard struct {
	w *Worker

	mu   sync.Mutex // held while a snapshot is gathered: callers meanwhile wait for it
	at   time.Time
	body []byte
}

func newDashboard(w *Worker) *dashboard { return &dashboard{w: w} }

func (d *dashboard) servePage(rw http.ResponseWriter, _ *http.Request) {
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = rw.Write(dashboardHTML)
}

func (d *dashboard) serveAPI(rw http.ResponseWriter, _ *http.Request) {
	body := d.snapshot()
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = rw.Write(body)
}

// snapshot returns the encoded snapshot, gathering a new one when the cached one is older than
// dashboardTTL. The gathering is not tied to the caller's request: other callers wait for it.
func (d *dashboard) snapshot() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.body != nil && time.Since(d.at) < dashboardTTL {
		return d.body
	}
	ctx, cancel := context.WithTimeout(context.Background(), dashboardTimeout)
	defer cancel()
	snap := d.w.dashboardSnapshot(ctx)
	body, err := json.Marshal(snap)
	if err != nil { // cannot happen: every field encodes
		body, _ = json.Marshal(Dashboard{Time: snap.Time, WorkerID: snap.WorkerID, Errors: []string{"encode: " + err.Error()}})
	}
	d.at, d.body = time.Now(), body
	return body
}

// dashboardSnapshot reads the fleet's state from NATS. It never fails as a whole: what it cannot
// read is named in Errors.
func (w *Worker) dashboardSnapshot(ctx context.Context) *Dashboard {
	now := time.Now().UTC()
	snap := &Dashboard{
		Time: now, WorkerID: w.cfg.ID,
		Workers: []DashboardWorker{}, Jobs: []DashboardJob{}, Queues: []DashboardQueue{}, Failures: []DashboardFailure{},
	}
	fail := func(what string, err error) { snap.Errors = append(snap.Errors, what+": "+err.Error()) }

	w.mu.Lock()
	started, stopped, kv, cons := w.started, w.stopped, w.kv, w.cons
	w.mu.Unlock()
	if !started {
		snap.Errors = append(snap.Errors, "worker not started: it has not connected its streams yet")
		return snap
	}
	live := !stopped

	snap.Workers = w.dashboardWorkers(ctx, now, live, fail)
	snap.Jobs = w.dashboardJobs(ctx, kv, snap.Workers, live, fail)
	snap.Queues = dashboardQueues(ctx, cons, fail)
	snap.Failures = w.dashboardFailures(ctx, fail)
	return snap
}

// dashboardWorkers lists the registry, with this worker's own counts taken live.
func (w *Worker) dashboardWorkers(ctx context.Context, now time.Time, live bool, fail func(string, error)) []DashboardWorker {
	var infos []WorkerInfo
	err := w.readRegistry(ctx, func(wi WorkerInfo) { infos = append(infos, wi) })
	if err != nil && (!w.cfg.NoRegistry || !errors.Is(err, jetstream.ErrBucketNotFound)) {
		fail("workers", err)
	}
	out := make([]DashboardWorker, 0, len(infos)+1)
	self := -1
	for _, wi := range infos {
		dw := DashboardWorker{
			ID: wi.ID, Host: wi.Host, PID: wi.PID, Version: wi.Version, Slots: wi.Slots, SlotsUsed: len(wi.Running),
			Running: wi.Running, RingCapacity: wi.RingCapacity, RingInUse: wi.RingInUse, RingReserved: wi.RingReserved,
			Encoders: len(wi.Capabilities), Started: wi.Started, Updated: wi.Updated,
		}
		if dw.Running == nil {
			dw.Running = []string{}
		}
		if !wi.Updated.IsZero() {
			age := max(0, now.Sub(wi.Updated).Seconds())
			dw.HeartbeatAge = &age
		}
		if wi.ID == w.cfg.ID {
			self = len(out)
		}
		out = append(out, dw)
	}
	if live {
		// This worker's counts are known now, not as of its last heartbeat; and it is listed
		// even before its first heartbeat, or when it stays out of the registry.
		if self < 0 {
			host, _ := os.Hostname()
			dw := DashboardWorker{ID: w.cfg.ID, Host: host, PID: os.Getpid()}
			if v := w.ffmpegVersion.Load(); v != nil {
				dw.Version = *v
			}
			self = len(out)
			out = append(out, dw)
		}
		running := []string{}
		for _, j := range w.Jobs() {
			running = append(running, j.ID)
		}
		sort.Strings(running)
		st := w.ring.Stats()
		dw := &out[self]
		dw.Self, dw.Slots, dw.SlotsUsed, dw.Running = true, w.cfg.Slots, len(running), running
		dw.RingCapacity, dw.RingInUse, dw.RingReserved = st.Capacity, st.InUse, st.Reserved
	} else if self >= 0 {
		out = append(out[:self], out[self+1:]...) // stopped: its entry is on its way out
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// readRegistry calls fn with every entry of TRANSCODE_WORKERS: one watch, not a request per key.
func (w *Worker) readRegistry(ctx context.Context, fn func(WorkerInfo)) error {
	kv, err := w.js.KeyValue(ctx, WorkersBucket)
	if err != nil {
		return err
	}
	watch, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = watch.Stop() }()
	for {
		select {
		case e, ok := <-watch.Updates():
			if !ok {
				return errors.New("registry watch ended")
			}
			if e == nil { // every current entry delivered
				return nil
			}
			var wi WorkerInfo
			if json.Unmarshal(e.Value(), &wi) == nil && wi.ID != "" {
				fn(wi)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// dashboardJobs looks up the state of every job the live workers run.
func (w *Worker) dashboardJobs(ctx context.Context, kv jetstream.KeyValue, workers []DashboardWorker, live bool, fail func(string, error)) []DashboardJob {
	owner := map[string]string{}
	var ids []string
	for _, dw := range workers {
		for _, id := range dw.Running {
			if _, ok := owner[id]; !ok && len(ids) < dashboardMaxJobs {
				owner[id] = dw.ID
				ids = append(ids, id)
			}
		}
	}
	// What this worker runs is known here, with live progress and the job's metadata.
	local := map[string]DashboardJob{}
	if live {
		w.mu.Lock()
		for id, r := range w.running {
			dj := DashboardJob{ID: id, WorkerID: w.cfg.ID, Attempt: r.attempt, Progress: r.progress()}
			if r.job != nil {
				dj.Input, dj.Metadata = r.job.Input, clip(maps.Clone(r.job.Metadata))
			}
			local[id] = dj
		}
		w.mu.Unlock()
	}
	out := []DashboardJob{}
	var firstErr error
	for _, id := range ids {
		st, err := getStatus(ctx, kv, id)
		lj, isLocal := local[id]
		switch {
		case err != nil && !errors.Is(err, jetstream.ErrKeyNotFound):
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", id, err)
			}
			if isLocal {
				out = append(out, lj)
			}
			continue
		case err != nil || st.State != job.StateRunning:
			// Not running any more (the registry is up to 5 s behind), or not yet recorded.
			if isLocal {
				out = append(out, lj)
			}
			continue
		}
		dj := DashboardJob{ID: id, WorkerID: st.WorkerID, Attempt: st.Attempt, Input: st.Input, Updated: st.Updated, Progress: st.Progress}
		if dj.WorkerID == "" {
			dj.WorkerID = owner[id]
		}
		if isLocal {
			dj.Attempt, dj.Progress, dj.Metadata = lj.Attempt, lj.Progress, lj.Metadata
			if dj.Input == "" {
				dj.Input = lj.Input
			}
		}
		out = append(out, dj)
	}
	if firstErr != nil {
		fail("running jobs", firstErr)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].WorkerID != out[j].WorkerID {
			return out[i].WorkerID < out[j].WorkerID
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// dashboardQueues reads the three shared consumers.
func dashboardQueues(ctx context.Context, cons []jetstream.Consumer, fail func(string, error)) []DashboardQueue {
	out := []DashboardQueue{}
	for i, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		q := DashboardQueue{Priority: p, Consumer: ConsumerFor(p)}
		if i >= len(cons) {
			fail("queue "+string(p), errors.New("consumer not set up"))
			out = append(out, q)
			continue
		}
		info, err := cons[i].Info(ctx)
		if err != nil {
			fail("queue "+string(p), err)
			out = append(out, q)
			continue
		}
		q.Pending, q.AckPending, q.Redelivered, q.Waiting = info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting
		out = append(out, q)
	}
	return out
}

// dashboardFailures reads the latest dead letters, newest first. The stream keeps one per job,
// in the order they were written, so the latest are at its end.
func (w *Worker) dashboardFailures(ctx context.Context, fail func(string, error)) []DashboardFailure {
	out := []DashboardFailure{}
	s, err := w.js.Stream(ctx, DLQStream)
	if err != nil {
		fail("failures", err)
		return out
	}
	st := s.CachedInfo().State
	for seq, tries := st.LastSeq, 0; seq >= st.FirstSeq && seq > 0 && len(out) < dashboardFailures && tries < dashboardScan; seq, tries = seq-1, tries+1 {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			fail("failures", err)
			break
		}
		var dl job.DeadLetter
		if json.Unmarshal(m.Data, &dl) != nil {
			continue
		}
		f := DashboardFailure{
			ID: dl.ID, Time: dl.Time, WorkerID: dl.WorkerID, Attempts: dl.Attempts, Class: dl.Class,
			Reason: truncate(dl.Reason),
		}
		// The job as published, when it was JSON: each field on its own, so a wrong one (the
		// reason it failed, maybe) does not hide the others.
		var raw struct {
			Input    json.RawMessage `json:"input"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if len(dl.Job) > 0 && json.Unmarshal(dl.Job, &raw) == nil {
			_ = json.Unmarshal(raw.Input, &f.Input)
			_ = json.Unmarshal(raw.Metadata, &f.Metadata)
			f.Input, f.Metadata = truncate(f.Input), clip(f.Metadata)
		}
		out = append(out, f)
	}
	return out
}

// clip bounds metadata for display: 20 entries, each value truncated.
func clip(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make(map[string]string, min(len(keys), 20))
	for _, k := range keys[:min(len(keys), 20)] {
		out[truncate(k)] = truncate(m[k])
	}
	return out
}

// truncate cuts s to dashboardMaxText bytes, at a character boundary.
func truncate(s string) string {
	if len(s) <= dashboardMaxText {
		return s
	}
	cut := dashboardMaxText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
