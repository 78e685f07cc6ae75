package job

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// EventType names a step in a job's life. Events are published on transcode.events.<job id>.
type EventType string

// Event types, in the order a job can meet them.
const (
	EventQueued    EventType = "queued"
	EventStarted   EventType = "started"
	EventProgress  EventType = "progress"
	EventSucceeded EventType = "succeeded"
	EventFailed    EventType = "failed"
	EventCanceled  EventType = "canceled"
	// EventRetrying says an attempt failed with a transient error and the job will run again.
	EventRetrying EventType = "retrying"
)

// Terminal reports whether no event follows this one.
func (t EventType) Terminal() bool {
	return t == EventSucceeded || t == EventFailed || t == EventCanceled
}

// Class says why a job failed; it decides whether the job is retried.
type Class string

// Failure classes.
const (
	ClassInvalidJob   Class = "invalid_job"   // the job JSON or its fields are wrong: never retried
	ClassInvalidInput Class = "invalid_input" // the media is corrupt, truncated, unsupported or missing: never retried
	ClassTransient    Class = "transient"     // the worker or the system failed (killed, stalled, shutting down): retried with backoff
	ClassTimeout      Class = "timeout"       // the job ran past its timeout: not retried
	ClassCanceled     Class = "canceled"      // someone canceled it
	ClassInternal     Class = "internal"      // ffmpeg or the worker failed for a reason of their own: retried up to the delivery limit
)

// Error is a classified failure: what the worker reports in a failed event.
type Error struct {
	Class  Class
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Reason == "" {
		return string(e.Class) + ": " + e.Err.Error()
	}
	return string(e.Class) + ": " + e.Reason
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of a classified error, or "" when err carries none.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ""
}

// Event is one message on transcode.events.<job id>.
type Event struct {
	Type     EventType         `json:"type"`
	JobID    string            `json:"job_id"`
	Attempt  int               `json:"attempt,omitempty"`
	WorkerID string            `json:"worker_id,omitempty"`
	Time     time.Time         `json:"time"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Progress *Progress         `json:"progress,omitempty"`
	Outputs  []OutputResult    `json:"outputs,omitempty"`
	// Split is a split job's account, in its succeeded event.
	Split *SplitResult `json:"split,omitempty"`
	Error *Failure     `json:"error,omitempty"`
	// RetryIn is set on retrying events.
	RetryIn Duration `json:"retry_in,omitempty"`
}

// Progress is a snapshot of a running transcode.
type Progress struct {
	Percent  float64 `json:"percent"`
	FPS      float64 `json:"fps,omitempty"`
	Speed    float64 `json:"speed,omitempty"`
	OutTime  float64 `json:"out_time"` // seconds of output produced
	Duration float64 `json:"duration,omitempty"`
	BytesIn  int64   `json:"bytes_in"`
	BytesOut int64   `json:"bytes_out"`
	// Throttled is true while the ring has no free buffer for this job: the job is waiting on
	// its consumers (backpressure), not on ffmpeg.
	Throttled bool `json:"throttled,omitempty"`
	// ChunksDone and ChunksTotal count a split job's chunks.
	ChunksDone  int `json:"chunks_done,omitempty"`
	ChunksTotal int `json:"chunks_total,omitempty"`
}

// SplitResult is what a split job was cut into and who encoded it.
type SplitResult struct {
	Chunks  int      `json:"chunks"`
	Encodes int      `json:"encodes"` // chunk encodes started, redone ones included
	Workers []string `json:"workers"` // the workers that encoded chunks
}

// ChunkTask is one chunk of a split job, as its coordinator publishes it for any worker.
type ChunkTask struct {
	Job   string `json:"job"`   // the split job's id
	Index int    `json:"index"` // the chunk's, from 0
	Input string `json:"input"` // the chunk's GOPs (MPEG-TS), an object URL
	// Outputs are where each encode of the chunk goes (object URLs), one per video of Videos:
	// a file's one video, a ladder's rungs.
	Outputs []string       `json:"outputs"`
	Videos  []ffmpeg.Video `json:"videos"`
	Window  ffmpeg.Window  `json:"window"`
	Frames  int            `json:"frames"`
}

// OutputResult describes a committed output.
type OutputResult struct {
	// SkippedFrames counts the input's video frames that could not be decoded and are not in
	// the output: those before the first keyframe of a capture that starts mid-GOP.
	SkippedFrames int `json:"skipped_frames,omitempty"`
	// URL is the output; for a ladder, its master playlist (hls) or manifest (dash).
	URL string `json:"url"`
	// Kind is "hls" or "dash" for a ladder (Size then counts every segment and playlist of
	// it), empty for a single file.
	Kind     string  `json:"kind,omitempty"`
	Size     int64   `json:"size"`
	Duration float64 `json:"duration"` // seconds
	Width    int     `json:"width,omitempty"`
	Height   int     `json:"height,omitempty"`
	SHA256   string  `json:"sha256"`
	// Frames is the number of video frames of a single-file output (its first video stream).
	Frames int `json:"frames,omitempty"`
	// Streams are the output's streams as verified: each one's start and duration (seconds,
	// as ffprobe reports them) and its frames (video) or audio frames.
	Streams []StreamResult `json:"streams,omitempty"`
	// AVOffset is the video's start minus the audio's (seconds): the lip sync, the same as
	// the input's within one audio frame.
	AVOffset *float64 `json:"av_offset,omitempty"`
	// Warnings say what of the input the output left out: an image subtitle track that its
	// container cannot carry (kept in mkv; burn it in with burn_subtitles).
	Warnings []string `json:"warnings,omitempty"`

	// Issue 14, part 2 (jobfeat).
	// Loudness is a loudness-normalised output's account: its target, the input track's
	// loudness and the output's, each as measured.
	Loudness *LoudnessResult `json:"loudness,omitempty"`
	// HDR says what became of an HDR input's HDR in this output: HDRKept or HDRToneMapped.
	// Empty for an SDR input (an HDR preset encodes it as the SDR it is, in 10 bits).
	HDR string `json:"hdr,omitempty"`
}

// What an output did with an HDR input (OutputResult.HDR).
const (
	HDRKept       = "kept"        // an HDR output: the input's transfer, primaries and mastering metadata
	HDRToneMapped = "tone-mapped" // an SDR output: converted to BT.709
)

// LoudnessResult is the loudness of a normalised output and of its input's track.
type LoudnessResult struct {
	Target   float64                `json:"target"`    // LUFS
	TruePeak float64                `json:"true_peak"` // the limit, dBTP
	Input    ffmpeg.LoudnessMeasure `json:"input"`
	Output   ffmpeg.LoudnessMeasure `json:"output"`
}

// StreamResult is one verified stream of an output.
type StreamResult struct {
	Type     string  `json:"type"` // video | audio | subtitle (Frames: its cues)
	Start    float64 `json:"start"`
	Duration float64 `json:"duration"`
	Frames   int     `json:"frames"`
}

// Failure is the error part of a failed (or retrying) event.
type Failure struct {
	Class      Class  `json:"class"`
	Reason     string `json:"reason"`
	StderrTail string `json:"stderr_tail,omitempty"`
	Argv       string `json:"argv,omitempty"`
	// Removed lists the outputs this attempt had published before it failed, and took back:
	// a failed job leaves none of its outputs behind.
	Removed []string `json:"removed_outputs,omitempty"`
}

// State is a job's state in the TRANSCODE_STATE bucket.
type State string

// States.
const (
	StateQueued    State = "queued"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
	StateCanceled  State = "canceled"
)

// Status is the value stored under the job id in the TRANSCODE_STATE bucket.
type Status struct {
	ID       string         `json:"id"`
	State    State          `json:"state"`
	Attempt  int            `json:"attempt,omitempty"`
	WorkerID string         `json:"worker_id,omitempty"`
	Updated  time.Time      `json:"updated"`
	Input    string         `json:"input,omitempty"`
	Progress *Progress      `json:"progress,omitempty"`
	Outputs  []OutputResult `json:"outputs,omitempty"`
	Error    *Failure       `json:"error,omitempty"`
	// CancelRequested is set by `transcoder cancel` so a queued job is dropped when pulled.
	CancelRequested bool `json:"cancel_requested,omitempty"`
	// ChunksDone and ChunksTotal count a split job's chunks while it runs; Split is its
	// account once it has succeeded.
	ChunksDone  int          `json:"chunks_done,omitempty"`
	ChunksTotal int          `json:"chunks_total,omitempty"`
	Split       *SplitResult `json:"split,omitempty"`
	// Passed counts deliveries handed on by workers that lack an encoder the job needs while
	// another live worker has it; they do not count against the delivery limit.
	Passed int `json:"passed,omitempty"`
	// Stopped counts deliveries handed back by a worker shutting down (drain); they do not
	// count against the delivery limit either. A worker killed outright records none, so a
	// job that keeps killing its worker still reaches the limit.
	Stopped int `json:"stopped,omitempty"`
}

// DeadLetter is what the worker keeps about a job that failed for good (stream TRANSCODE_DLQ,
// subject transcode.dlq.<id>): enough to understand the failure and to retry it.
type DeadLetter struct {
	ID            string          `json:"id"`
	Time          time.Time       `json:"time"`
	WorkerID      string          `json:"worker_id"`
	Attempts      int             `json:"attempts"`
	Class         Class           `json:"class"`
	Reason        string          `json:"reason"`
	Job           json.RawMessage `json:"job,omitempty"`     // the message as published, when it is JSON
	Payload       string          `json:"payload,omitempty"` // the message as published, when it is not
	Subject       string          `json:"subject"`
	Argv          string          `json:"argv,omitempty"`
	FFmpegVersion string          `json:"ffmpeg_version,omitempty"`
	Probe         json.RawMessage `json:"probe,omitempty"`
	StderrTail    string          `json:"stderr_tail,omitempty"`
}
