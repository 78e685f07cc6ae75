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
// It does what its NATS user may (deploy/nats/server.conf): a submitter's jobs get their
// queued state and event from the worker that takes them, a viewer's Submit is refused.
type Client struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	perms *permissions
}

// NewClient looks up the streams and the state bucket, creating them (as a worker does) only
// where they are missing and the user may, and returns a client. It gives up after 30 s (a
// server without JetStream, a cluster that does not form).
func NewClient(ctx context.Context, nc *nats.Conn) (*Client, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &Client{nc: nc, js: js, perms: askPermissions(ctx, nc)}
	if c.kv, err = c.openStreams(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// User is the connection's NATS user, as the server names it ("" when it does not say).
func (c *Client) User() string { return c.perms.userName() }

// openStreams returns the state bucket once the streams and it exist. Only when one is missing
// (no worker has started yet) does it create them: a client's settings do not replace the
// workers', and a submitter or viewer may not create streams.
func (c *Client) openStreams(ctx context.Context) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	missing := ""
	err := retry(ctx, func(ctx context.Context) error {
		missing = ""
		for _, name := range []string{JobsStream, EventsStream, DLQStream, kvStream(StateBucket)} {
			_, err := c.js.Stream(ctx, name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				missing = name
				return nil
			}
			if err != nil {
				return err
			}
		}
		var err error
		kv, err = c.js.KeyValue(ctx, StateBucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("worker: look up streams: %w", err)
	}
	if missing == "" {
		return kv, nil
	}
	if create := "$JS.API.STREAM.CREATE." + missing; !c.perms.mayPublish(create) {
		return nil, fmt.Errorf("stream %s does not exist yet (start a worker first): %w", missing,
			&PermissionError{Op: "publish", Subject: create, User: c.User()})
	}
	return EnsureStreams(ctx, c.js, Replicas(c.nc))
}

// kvStream is the stream that holds a key-value bucket.
func kvStream(bucket string) string { return "KV_" + bucket }

// kvSubject is the subject a key of a bucket is written on.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

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
	subject := JobSubject(j.Priority)
	if !c.perms.mayPublish(subject) {
		return "", &PermissionError{Op: "publish", Subject: subject, User: c.User()}
	}
	data, err := json.Marshal(j)
	if err != nil {
		return "", err
	}
	// A user who may not write states and events (a submitter) leaves both to the worker that
	// takes the job: it records queued when it finds no state.
	if c.perms.mayPublish(kvSubject(StateBucket, j.ID)) {
		st := job.Status{ID: j.ID, State: job.StateQueued, Updated: time.Now().UTC(), Input: j.Input}
		if b, err := json.Marshal(st); err == nil {
			// Create, not Put: a worker that was faster must not be overwritten.
			_, _ = c.kv.Create(ctx, j.ID, b)
		}
	}
	if c.perms.mayPublish(EventSubject(j.ID)) {
		ev := job.Event{Type: job.EventQueued, JobID: j.ID, Time: time.Now().UTC(), Metadata: j.Metadata}
		if err := publishJSON(ctx, c.js, EventSubject(j.ID), ev); err != nil {
			return "", fmt.Errorf("publish queued event: %w", err)
		}
	}
	msg := nats.NewMsg(subject)
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
// dropped when it is pulled. The request is recorded in the job's state, by the client when
// its user may write states, else by the workers that hear it (see Worker.onCancel); a
// job of such a user that no worker has taken yet has no state, and is canceled all the same.
func (c *Client) Cancel(ctx context.Context, id string) error {
	if !job.ValidID(id) {
		return fmt.Errorf("invalid job id %q", id)
	}
	if !c.perms.mayPublish(CancelSubject(id)) {
		return &PermissionError{Op: "publish", Subject: CancelSubject(id), User: c.User()}
	}
	mayWrite := c.perms.mayPublish(kvSubject(StateBucket, id))
	for range 5 {
		e, err := c.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if mayWrite {
				return ErrNotFound
			}
			break
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
		if !mayWrite {
			break
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
