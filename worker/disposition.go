package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
)

// classify gives an error its class and a one-line reason. It is the only place that maps the
// packages' errors to classes.
func classify(err error) (job.Class, string) {
	var je *job.Error
	switch {
	case errors.Is(err, ErrCanceled):
		return job.ClassCanceled, "canceled"
	case errors.Is(err, ErrTimeout):
		return job.ClassTimeout, "job ran past its timeout"
	case errors.Is(err, ErrShutdown):
		return job.ClassTransient, "worker shutting down"
	case errors.Is(err, ErrStalled):
		return job.ClassTransient, err.Error()
	case errors.Is(err, ErrLeaseLost):
		return job.ClassTransient, ErrLeaseLost.Error()
	case errors.As(err, &je):
		return je.Class, je.Error()[len(je.Class)+2:]
	case errors.Is(err, job.ErrInvalid):
		return job.ClassInvalidJob, err.Error()
	case errors.Is(err, job.ErrUnsupportedMedia):
		return job.ClassInvalidInput, err.Error()
	}
	switch {
	case errors.Is(err, storage.ErrForbiddenAddress), errors.Is(err, storage.ErrNotAllowedPath), errors.Is(err, storage.ErrUnsupportedScheme):
		// The job names a place this worker must not reach: it never will.
		return job.ClassInvalidJob, err.Error()
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrForbidden), errors.Is(err, storage.ErrTooLarge), errors.Is(err, storage.ErrRejected):
		return job.ClassInvalidInput, err.Error()
	case storage.Transient(err):
		return job.ClassTransient, err.Error()
	}
	var fe *ffmpeg.Error
	if errors.As(err, &fe) {
		reason := fe.Reason
		if reason == "" {
			reason = fe.Error()
		}
		switch {
		case errors.Is(err, ffmpeg.ErrInvalidInput):
			return job.ClassInvalidInput, reason
		case errors.Is(err, ffmpeg.ErrTransient), errors.Is(err, ffmpeg.ErrStopped):
			return job.ClassTransient, reason
		default:
			return job.ClassInternal, reason
		}
	}
	if errors.Is(err, ffmpeg.ErrInvalidInput) {
		return job.ClassInvalidInput, err.Error()
	}
	if errors.Is(err, ffmpeg.ErrTransient) {
		return job.ClassTransient, err.Error()
	}
	return job.ClassInternal, err.Error()
}

// action is how a delivery is settled with JetStream.
type action int

const (
	actAck   action = iota // done
	actTerm                // never redeliver
	actNak                 // redeliver after delay
	actLeave               // neither: the lease is lost, NATS redelivers it (maybe to another worker)
)

// decide maps an outcome to an action: a delivery whose lease is lost (fenced) is left alone,
// whatever its outcome, for it may be another worker's now; success acks; invalid jobs, invalid
// media, timeouts and cancels terminate; transient and internal failures retry with backoff
// until the delivery limit, then terminate; a shutdown hands the job back at once.
func decide(class job.Class, attempt, maxDeliver int, backoff []time.Duration, shutdown, fenced bool) (action, time.Duration) {
	switch {
	case fenced:
		return actLeave, 0
	case class == "":
		return actAck, 0
	case shutdown && (class == job.ClassTransient || class == job.ClassInternal):
		return actNak, 0
	case class == job.ClassTransient || class == job.ClassInternal:
		if attempt >= maxDeliver {
			return actTerm, 0
		}
		i := min(max(attempt-1, 0), len(backoff)-1)
		return actNak, backoff[i]
	default:
		return actTerm, 0
	}
}

// counted is this delivery's number among those that count against the delivery limit:
// deliveries handed on for want of an encoder or handed back at a shutdown are not the job's
// attempts. A delivery whose worker was killed counts, so a crash loop reaches the limit.
func (r *run) counted() int { return r.attempt - r.passed - r.stopped }

func retryNote(attempt, maxDeliver int) string {
	return fmt.Sprintf(" (attempt %d of %d)", attempt, maxDeliver)
}
