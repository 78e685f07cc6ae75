package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/job"
)

// EnsureStreams creates or updates the jobs, events and dead-letter streams and the state
// bucket; replicas is the number of copies of each (3 on a cluster, see Replicas). It is
// idempotent: every worker and every submitter calls it.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        JobsStream,
		Description: "transcode jobs: a work queue, one message per job, deduplicated by job id",
		// The three priorities exactly: a job on any other subject would match no consumer
		// and wait forever, so its publish is refused instead.
		Subjects: []string{JobSubject(job.PriorityHigh), JobSubject(job.PriorityNormal), JobSubject(job.PriorityLow),
			ChunkSubject(job.PriorityHigh), ChunkSubject(job.PriorityNormal), ChunkSubject(job.PriorityLow)},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Duplicates: 10 * time.Minute,
		MaxMsgSize: 1 << 20,
		Replicas:   replicas,
	}); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        EventsStream,
		Description: "transcode job events, replayable per job",
		Subjects:    []string{EventsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      7 * 24 * time.Hour,
		MaxBytes:    1 << 30,
		Discard:     jetstream.DiscardOld,
		Replicas:    replicas,
	}); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, dlqConfig(replicas)); err != nil {
		return nil, err
	}
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "latest state of each transcode job, by job id",
		History:     1,
		TTL:         30 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
}

// ensureStream leaves a stream that already has this configuration alone and creates or
// updates it otherwise. Checking first matters on a cluster: workers starting together would
// otherwise all update the stream one of them is creating, and such a request can go
// unanswered until it times out.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	err := retry(ctx, func(ctx context.Context) error {
		if s, err := js.Stream(ctx, cfg.Name); err == nil && sameStream(s.CachedInfo().Config, cfg) {
			return nil
		}
		_, err := js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return nil
}

func sameStream(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Retention == want.Retention &&
		have.Storage == want.Storage && have.Duplicates == want.Duplicates &&
		have.MaxMsgSize == want.MaxMsgSize && have.MaxAge == want.MaxAge &&
		have.MaxBytes == want.MaxBytes && have.Discard == want.Discard &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.Replicas == want.Replicas &&
		have.Description == want.Description
}

// ensureKV is ensureStream for a key-value bucket.
func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := retry(ctx, func(ctx context.Context) error {
		if b, err := js.KeyValue(ctx, cfg.Bucket); err == nil {
			if st, err := b.Status(ctx); err == nil && st.TTL() == cfg.TTL && st.History() == int64(max(cfg.History, 1)) {
				if info, ok := st.(*jetstream.KeyValueBucketStatus); !ok || info.StreamInfo().Config.Replicas == max(cfg.Replicas, 1) {
					kv = b
					return nil
				}
			}
		}
		var err error
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ensureConsumers creates or updates the durable pull consumers shared by all workers, one per
// priority, in the order high, normal, low. The server's delivery limit is off: the worker
// counts deliveries itself, so a job Nak'ed at shutdown on its last attempt is never stranded
// in the stream.
func ensureConsumers(ctx context.Context, js jetstream.JetStream, ackWait time.Duration, replicas int) ([]jetstream.Consumer, error) {
	// A work-queue stream takes no overlapping consumers: the single consumer of earlier
	// versions, which took every priority, goes.
	if err := retry(ctx, func(ctx context.Context) error {
		err := js.DeleteConsumer(ctx, JobsStream, legacyConsumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("consumer %s: %w", legacyConsumer, err)
	}
	var out []jetstream.Consumer
	type queue struct {
		durable, what, subject string
	}
	var queues []queue
	for _, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		queues = append(queues, queue{ConsumerFor(p), string(p) + " priority jobs", JobSubject(p)})
	}
	for _, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		queues = append(queues, queue{chunkConsumerFor(p), string(p) + " priority chunks of split jobs", ChunkSubject(p)})
	}
	for _, q := range queues {
		cfg := jetstream.ConsumerConfig{
			Durable:       q.durable,
			Description:   "transcode workers, shared: " + q.what,
			FilterSubject: q.subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ackWait,
			MaxDeliver:    -1,
			MaxAckPending: 10000,
			Replicas:      replicas,
		}
		var c jetstream.Consumer
		err := retry(ctx, func(ctx context.Context) error {
			if have, err := js.Consumer(ctx, JobsStream, cfg.Durable); err == nil {
				hc := have.CachedInfo().Config
				if hc.AckWait == cfg.AckWait && hc.FilterSubject == cfg.FilterSubject && hc.MaxDeliver == cfg.MaxDeliver &&
					hc.MaxAckPending == cfg.MaxAckPending && hc.Replicas == cfg.Replicas {
					c = have
					return nil
				}
			}
			var err error
			c, err = js.CreateOrUpdateConsumer(ctx, JobsStream, cfg)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", cfg.Durable, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// retry runs fn until it succeeds or ctx is done, backing off from about 100 ms to 1 s with
// jitter. Creating streams races other workers and, on a cluster that is still forming, its
// meta leader: a failure then is a reason to wait, not to exit. An attempt gets 1 s (a create
// takes ~70 ms); one that is not answered by then is tried again.
func retry(ctx context.Context, fn func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(delay/2 + rand.N(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}
