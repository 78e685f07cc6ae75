package worker

import "github.com/transcoder/transcoder/job"

// Names of what the worker keeps on NATS. They are the contract with publishers and operators.
const (
	JobsStream     = "TRANSCODE_JOBS"
	JobsSubjects   = "transcode.jobs.>"
	legacyConsumer = "transcoders"
	EventsStream   = "TRANSCODE_EVENTS"
	EventsSubjects = "transcode.events.>"
	StateBucket    = "TRANSCODE_STATE"
	cancelSubjects = "transcode.cancel.*"
	// UploadsBucket is the object store `transcoder submit --upload` puts inputs in. Workers
	// create it, so that a submitter, who may write to it, need not create streams.
	UploadsBucket = "uploads"
)

// JobSubject is the subject a job of the given priority is published on.
func JobSubject(p job.Priority) string {
	if p == "" {
		p = job.PriorityNormal
	}
	return "transcode.jobs." + string(p)
}

// ConsumerFor names the shared durable consumer of one priority's jobs.
func ConsumerFor(p job.Priority) string { return "transcoders-" + string(p) }

// EventSubject is the subject of a job's events.
func EventSubject(id string) string { return "transcode.events." + id }

// CancelSubject is where a cancel request for the job is published.
func CancelSubject(id string) string { return "transcode.cancel." + id }
