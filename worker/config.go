package worker

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// Config configures a Worker. Zero values take the documented defaults.
type Config struct {
	// Conn is the NATS connection. Required. The worker does not close it.
	Conn *nats.Conn
	// FFmpeg runs ffmpeg and ffprobe. Required.
	FFmpeg *ffmpeg.Runner
	// Presets the jobs may name. Required.
	Presets job.Presets

	// ID names this worker in events and logs. Default: hostname-pid-random.
	ID string
	// Slots is how many jobs run at once. Default: half the CPUs, at least 1.
	Slots int
	// RingBuffers is the number of 1 MiB buffers in the ring, shared by all jobs. It bounds the
	// worker's media memory. Default: enough for Slots jobs (JobBuffers each).
	RingBuffers int
	// ChanDepth is the capacity, in buffers, of each channel between stages. Default 4.
	ChanDepth int
	// MaxOutputs is the number of ffmpeg outputs (a ladder's renditions each count) a job's
	// reservation is sized for. A job with more gets shallower output channels, down to one
	// buffer each, and is refused only if even that does not fit. Default 6.
	MaxOutputs int
	// ProbeBytes is the most of the input ffprobe is given, beside ffmpeg, to describe it.
	// Default 16 MiB.
	ProbeBytes int
	// Storage opens inputs and creates outputs by URL (file, http(s), nats object store, s3),
	// with its file roots and network policy. Default: a store New makes (and Shutdown closes)
	// from StorageConfig.
	Storage *storage.Store
	// StorageConfig configures the store New makes when Storage is nil. Its JetStream (for
	// nats://), ObjectReplicas and TempDir are this worker's (its connection, Replicas, SpoolDir)
	// unless set. Default: any absolute path; private networks refused.
	StorageConfig storage.Config
	// SpoolDir holds inputs that cannot be streamed (mp4 with the index at the end). Default:
	// os.TempDir().
	SpoolDir string
	// SpoolLimit is the largest input the worker spools, in bytes. Default 8 GiB.
	SpoolLimit int64
	// OverlayMaxBytes and OverlayMaxPixels bound a job's overlay image (media.Config's;
	// defaults 4 MiB, 4096x4096).
	OverlayMaxBytes, OverlayMaxPixels int64

	// AckWait is how long NATS waits for an ack or a heartbeat before redelivering. Default 30s.
	// It also bounds the lease of each delivery (lease.go): a job whose heartbeats go
	// unanswered for AckWait less a fifth is stopped and left to NATS, before it redelivers.
	AckWait time.Duration
	// Heartbeat is how often InProgress is sent (and its answer awaited) while the job runs;
	// at most 2/5 of AckWait, so that one lost heartbeat does not lose the lease. Default
	// AckWait/3.
	Heartbeat time.Duration
	// StallTimeout stops a job whose input and output have not advanced for this long; it is
	// retried. Default 2m.
	StallTimeout time.Duration
	// MaxDeliver is how often a job is tried before it fails for good. Default 5.
	MaxDeliver int
	// Backoff is the delay before retry n (the last entry repeats). Default 5s, 30s, 2m, 10m.
	Backoff []time.Duration
	// A job that sets no timeout gets TimeoutFactor times its input's duration, at least
	// TimeoutFloor; no job runs longer than TimeoutCap, whatever it asks. Defaults 10m, 10, 12h.
	TimeoutFloor  time.Duration
	TimeoutFactor float64
	TimeoutCap    time.Duration
	// ProgressInterval throttles progress events. Default 1s.
	ProgressInterval time.Duration
	// FetchWait is how long one pull request waits for a job. Default 5s.
	FetchWait time.Duration

	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Limits bound what a job may make the worker decode and write. Zero fields take
	// job.DefaultLimits.
	Limits job.Limits
	// Encoders, when set, narrows the encoders this worker offers (and advertises) to these
	// (ffmpeg names: libx264, libsvtav1, ...): a job that needs another is handed to a worker
	// that has it. Default: every encoder ffmpeg has.
	Encoders []string
	// SplitMinDuration: a job whose split mode is auto is split when its input is longer than
	// this and more than one worker is alive. Default 5m.
	SplitMinDuration time.Duration
	// NoRegistry keeps the worker out of TRANSCODE_WORKERS: for one-shot runs on a private
	// server, where no one else can see it.
	NoRegistry bool
	// Hooks are called at a job's milestones; for benchmarks and metrics. Optional.
	Hooks Hooks
}

// Hooks are optional callbacks. They run on the job's goroutines and must return quickly.
type Hooks struct {
	// FirstOutputByte is called when the first byte of a job's first output reaches its sink.
	FirstOutputByte func(jobID string)
	// FFmpegStarted is called once a job's ffmpeg runs, with its argv (without the program
	// name) and pid.
	FFmpegStarted func(jobID string, argv []string, pid int)
	// AfterState is called when a job has succeeded and its state is written, before its
	// succeeded event; BeforeAck after the event, before the ack. (Tests crash workers there.)
	AfterState func(jobID string)
	BeforeAck  func(jobID string)
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		// Random too: in containers every worker may be pid 1 on a reused hostname.
		h, _ := os.Hostname()
		var b [3]byte
		_, _ = rand.Read(b[:])
		c.ID = fmt.Sprintf("%s-%d-%x", sanitizeID(h), os.Getpid(), b)
	}
	if c.Slots == 0 {
		c.Slots = max(1, runtime.NumCPU()/2)
	}
	if c.ChanDepth == 0 {
		c.ChanDepth = 4
	}
	if c.MaxOutputs == 0 {
		// A four-rung ladder and its audio, and one more: 42 buffers (MiB) per job.
		c.MaxOutputs = 6
	}
	if c.ProbeBytes == 0 {
		c.ProbeBytes = 16 << 20
	}
	if c.RingBuffers == 0 {
		c.RingBuffers = c.Slots * c.JobBuffers()
	}
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	if c.SpoolLimit == 0 {
		c.SpoolLimit = 8 << 30
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = c.AckWait / 3
	}
	if c.SplitMinDuration == 0 {
		c.SplitMinDuration = 5 * time.Minute
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = 2 * time.Minute
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}
	}
	if c.TimeoutFloor == 0 {
		c.TimeoutFloor = 10 * time.Minute
	}
	if c.TimeoutFactor == 0 {
		c.TimeoutFactor = 10
	}
	if c.TimeoutCap == 0 {
		c.TimeoutCap = 12 * time.Hour
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = time.Second
	}
	if c.FetchWait == 0 {
		c.FetchWait = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.WithDefaults()
}

// JobBuffers is the reservation one job takes from the ring before it is pulled: the most
// buffers its pipeline can hold at once (media.Config.Buffers).
func (c *Config) JobBuffers() int { return c.mediaConfig().Buffers() }

// mediaConfig is the configuration of the worker's media core: one definition for the jobs
// it runs and for Explain.
func (c *Config) mediaConfig() media.Config {
	return media.Config{
		FFmpeg: c.FFmpeg, Storage: c.Storage, Presets: c.Presets, Limits: c.Limits,
		SpoolDir: c.SpoolDir, SpoolLimit: c.SpoolLimit, ProbeBytes: c.ProbeBytes,
		ChanDepth: c.ChanDepth, MaxOutputs: c.MaxOutputs, Slots: c.Slots,
		OverlayMaxBytes: c.OverlayMaxBytes, OverlayMaxPixels: c.OverlayMaxPixels,
	}
}

// sanitizeID keeps the characters a worker id may have.
func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'; !ok {
			b[i] = '-'
		}
	}
	if len(b) == 0 || b[0] == '-' || b[0] == '_' {
		b = append([]byte("w"), b...)
	}
	return string(b)
}

func (c *Config) validate() error {
	switch {
	case c.Conn == nil:
		return fmt.Errorf("worker: Conn is required")
	case c.FFmpeg == nil:
		return fmt.Errorf("worker: FFmpeg is required")
	case len(c.Presets) == 0:
		return fmt.Errorf("worker: Presets is required")
	case !job.ValidID(c.ID):
		return fmt.Errorf("worker: ID %q: letters, digits, '-' and '_' only", c.ID)
	case c.Slots < 1:
		return fmt.Errorf("worker: Slots must be at least 1")
	case c.ChanDepth < 1:
		return fmt.Errorf("worker: ChanDepth must be at least 1")
	case c.MaxOutputs < 1 || c.MaxOutputs > ffmpeg.MaxOutputs:
		return fmt.Errorf("worker: MaxOutputs must be 1..%d", ffmpeg.MaxOutputs)
	case c.ProbeBytes < 64<<10:
		return fmt.Errorf("worker: ProbeBytes must be at least 64 KiB")
	case c.RingBuffers < c.JobBuffers():
		return fmt.Errorf("worker: RingBuffers %d cannot hold one job (%d buffers)", c.RingBuffers, c.JobBuffers())
	case c.AckWait < time.Second:
		return fmt.Errorf("worker: AckWait must be at least 1s")
	case c.Heartbeat <= 0 || c.Heartbeat > leaseTTL(c.AckWait)/2:
		return fmt.Errorf("worker: Heartbeat must be positive and at most 2/5 of AckWait (%s): a job's lease ends at 4/5 of it, and must outlast one lost heartbeat", leaseTTL(c.AckWait)/2)
	case c.MaxDeliver < 1:
		return fmt.Errorf("worker: MaxDeliver must be at least 1")
	case c.StallTimeout < c.Heartbeat:
		return fmt.Errorf("worker: StallTimeout must be at least Heartbeat")
	case c.TimeoutFloor < 0 || c.TimeoutFactor < 0 || c.TimeoutCap < c.TimeoutFloor:
		return fmt.Errorf("worker: TimeoutFloor, TimeoutFactor must be positive and TimeoutCap at least TimeoutFloor")
	}
	return nil
}
