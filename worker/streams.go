package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStreams creates or updates the jobs, events and dead-letter streams and the state bucket. It is
// idempotent: every worker and every submitter calls it.
// replicas is the number of copies of each (3 on a cluster, see Replicas).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        JobsStream,
			Description: "transcode jobs: a work queue, one message per job, deduplicated by job id",
			Subjects:    []string{JobsSubjects},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  10 * time.Minute,
			MaxMsgSize:  1 << 20,
			Replicas:    replicas,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", JobsStream, err)
	}
	if err := retry(ctx, func(ctx context.Context) error {
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        EventsStream,
			Description: "transcode job events, replayable per job",
			Subjects:    []string{EventsSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      7 * 24 * time.Hour,
			MaxBytes:    1 << 30,
			Discard:     jetstream.DiscardOld,
			Replicas:    replicas,
		})
		return err
	}); err != nil {
		return nil, fmt.Errorf("stream %s: %w", EventsStream, err)
	}
	if err := ensureDLQ(ctx, js, replicas); err != nil {
		return nil, err
	}
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      StateBucket,
			Description: "latest state of each transcode job, by job id",
			History:     1,
			TTL:         30 * 24 * time.Hour,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", StateBucket, err)
	}
	return kv, nil
}

// ensureConsumer creates or updates the durable pull consumer shared by all workers. The
// server's delivery limit is off: the worker counts deliveries itself, so a job Nak'ed at
// shutdown on its last attempt is never stranded in the stream.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, replicas int) (jetstream.Consumer, error) {
	var c jetstream.Consumer
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		c, err = js.CreateOrUpdateConsumer(ctx, JobsStream, jetstream.ConsumerConfig{
			Durable:       ConsumerName,
			Description:   "transcode workers, shared",
			FilterSubject: JobsSubjects,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    -1,
			MaxAckPending: 10000,
			Replicas:      replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", ConsumerName, err)
	}
	return c, nil
}

// retry runs fn until it succeeds or ctx is done, backing off from 250 ms to 2 s. Creating
// streams races other workers and, on a cluster that is still forming, its meta leader: a
// failure then is a reason to wait, not to exit.
func retry(ctx context.Context, fn func(context.Context) error) error {
	delay := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second) // a create takes ~70 ms; a stuck one is retried
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, 2*time.Second)
	}
}
