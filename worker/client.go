package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/transcoder/transcoder/job"
)

// ErrNotFound is returned for a job id the state bucket does not know.
var ErrNotFound = errors.New("worker: job not found")

// Client submits, follows and cancels jobs. Any NATS client can do the same by publishing the
// job JSON on transcode.jobs.<priority>; Client adds ids, dedup headers and the queued state.
type Client struct {
	nc *nats.Conn
	js jetstream.JetStream
	kv jetstream.KeyValue
}

// NewClient ensures the streams and the state bucket exist and returns a client. It gives up
// after 30 s (a server without JetStream, a cluster that does not form).
func NewClient(ctx context.Context, nc *nats.Conn) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kv, err := EnsureStreams(ctx, js, Replicas(nc))
	if err != nil {
		return nil, err
	}
	return &Client{nc: nc, js: js, kv: kv}, nil
}

// Prepare fills in what a submitted job gets by default: version, id and creation time.
func Prepare(j *job.Job) {
	if j.Version == 0 {
		j.Version = job.Version
	}
	if j.ID == "" {
		j.ID = nuid.Next()
	}
	if j.Created.IsZero() {
		j.Created = time.Now().UTC().Truncate(time.Millisecond)
	}
}

// Submit publishes the job (after Prepare) with its id as Nats-Msg-Id, so a publish retried
// within the dedup window is stored once. It records the queued state and event first, so a
// watcher sees queued before started.
func (c *Client) Submit(ctx context.Context, j *job.Job) (string, error) {
	Prepare(j)
	data, err := json.Marshal(j)
	if err != nil {
		return "", err
	}
	st := job.Status{ID: j.ID, State: job.StateQueued, Updated: time.Now().UTC(), Input: j.Input}
	if b, err := json.Marshal(st); err == nil {
		// Create, not Put: a worker that was faster must not be overwritten.
		_, _ = c.kv.Create(ctx, j.ID, b)
	}
	ev := job.Event{Type: job.EventQueued, JobID: j.ID, Time: time.Now().UTC(), Metadata: j.Metadata}
	if err := publishJSON(ctx, c.js, EventSubject(j.ID), ev); err != nil {
		return "", fmt.Errorf("publish queued event: %w", err)
	}
	msg := nats.NewMsg(JobSubject(j.Priority))
	msg.Data = data
	msg.Header.Set(jetstream.MsgIDHeader, j.ID)
	if _, err := c.js.PublishMsg(ctx, msg); err != nil {
		return "", fmt.Errorf("publish job: %w", err)
	}
	return j.ID, nil
}

// Status returns the job's latest state.
func (c *Client) Status(ctx context.Context, id string) (*job.Status, error) {
	st, err := getStatus(ctx, c.kv, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	return st, err
}

// Cancel asks for the job to stop: a running job is stopped by its worker, a queued one is
// dropped when it is pulled.
func (c *Client) Cancel(ctx context.Context, id string) error {
	if !job.ValidID(id) {
		return fmt.Errorf("invalid job id %q", id)
	}
	for range 5 {
		e, err := c.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var st job.Status
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return err
		}
		if st.State == job.StateSucceeded || st.State == job.StateFailed || st.State == job.StateCanceled {
			return fmt.Errorf("job %s already %s", id, st.State)
		}
		st.CancelRequested = true
		b, _ := json.Marshal(st)
		if _, err := c.kv.Update(ctx, id, b, e.Revision()); err != nil {
			continue // raced with the worker; read again
		}
		break
	}
	return c.nc.Publish(CancelSubject(id), nil)
}

// Watch delivers the job's events, from the first, to fn until a terminal event, which it
// returns.
func (c *Client) Watch(ctx context.Context, id string, fn func(job.Event)) (job.Event, error) {
	cons, err := c.js.OrderedConsumer(ctx, EventsStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{EventSubject(id)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return job.Event{}, fmt.Errorf("watch %s: %w", id, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return job.Event{}, fmt.Errorf("watch %s: %w", id, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return job.Event{}, ctx.Err()
			}
			return job.Event{}, fmt.Errorf("watch %s: %w", id, err)
		}
		var ev job.Event
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			continue
		}
		if fn != nil {
			fn(ev)
		}
		if ev.Type.Terminal() {
			return ev, nil
		}
	}
}
