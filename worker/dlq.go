package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/job"
)

// Dead letters: one record per job that failed for good, kept 30 days.
const (
	DLQStream   = "TRANSCODE_DLQ"
	DLQSubjects = "transcode.dlq.>"
)

// DLQSubject is the subject of a job's dead letter.
func DLQSubject(id string) string { return "transcode.dlq." + id }

func dlqConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              DLQStream,
		Description:       "transcode jobs that failed for good, with their diagnostics",
		Subjects:          []string{DLQSubjects},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		MaxMsgsPerSubject: 1,
		MaxAge:            30 * 24 * time.Hour,
		MaxMsgSize:        1 << 20,
		Replicas:          replicas,
	}
}

// deadLetter records a job that failed for good, retried through a failover like the outcome
// event (within the settle budget).
func (w *Worker) deadLetter(ctx context.Context, r *run, fail *job.Failure) {
	dl := job.DeadLetter{
		ID: r.id, Time: time.Now().UTC(), WorkerID: w.cfg.ID, Attempts: r.attempt,
		Class: fail.Class, Reason: fail.Reason, Subject: r.msg.Subject(),
		Argv: fail.Argv, FFmpegVersion: w.version(ctx), StderrTail: fail.StderrTail,
	}
	if data := r.msg.Data(); json.Valid(data) {
		dl.Job = data
	} else {
		dl.Payload = string(data)
	}
	if p := r.task.Meter.Probe(); p != nil {
		dl.Probe, _ = json.Marshal(p)
	}
	w.retry(ctx, r, "dead letter", func(ctx context.Context) error { return publishJSON(ctx, w.js, DLQSubject(r.id), dl) })
}

// DeadLetters lists the dead letters, oldest first.
func (c *Client) DeadLetters(ctx context.Context) ([]job.DeadLetter, error) {
	s, err := c.js.Stream(ctx, DLQStream)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	var out []job.DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("dlq: %w", err)
	}
	// Every batch is read to its end so no fetch is left running behind the caller.
	for seen := uint64(0); seen < info.State.Msgs; {
		batch, err := cons.Fetch(int(min(info.State.Msgs-seen, 256)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("dlq: %w", err)
		}
		n := uint64(0)
		for m := range batch.Messages() {
			n++
			var dl job.DeadLetter
			if json.Unmarshal(m.Data(), &dl) == nil {
				out = append(out, dl)
			}
		}
		if n == 0 {
			break
		}
		seen += n
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// RetryDeadLetter publishes the dead job again, as it was first published, and removes its dead
// letter. Its events continue on the same subject; attempts count from one again.
func (c *Client) RetryDeadLetter(ctx context.Context, id string) error {
	s, err := c.js.Stream(ctx, DLQStream)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, DLQSubject(id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("no dead letter for job %s", id)
	}
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	var dl job.DeadLetter
	if err := json.Unmarshal(m.Data, &dl); err != nil {
		return fmt.Errorf("dlq record of %s: %w", id, err)
	}
	payload := []byte(dl.Job)
	if dl.Job == nil {
		payload = []byte(dl.Payload)
	}
	st := job.Status{ID: id, State: job.StateQueued, Updated: time.Now().UTC()}
	if b, err := json.Marshal(st); err == nil {
		if _, err := c.kv.Put(ctx, id, b); err != nil {
			return fmt.Errorf("reset state of %s: %w", id, err)
		}
	}
	msg := nats.NewMsg(dl.Subject)
	if msg.Subject == "" {
		msg.Subject = JobSubject(job.PriorityNormal)
	}
	msg.Data = payload
	// A fresh dedup id: the job id itself may still be in the dedup window.
	msg.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-retry-%d", id, time.Now().UnixNano()))
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("republish %s: %w", id, err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(DLQSubject(id))); err != nil {
		return fmt.Errorf("remove dead letter of %s: %w", id, err)
	}
	return nil
}
