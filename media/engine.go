package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
	"github.com/transcoder/transcoder/storage"
)

const bufSize = bufpool.DefaultBufferSize

// Config configures an Engine. Zero values take the documented defaults.
type Config struct {
	// FFmpeg runs ffmpeg and ffprobe. Required.
	FFmpeg *ffmpeg.Runner
	// Storage opens inputs and creates outputs by URL. Required.
	Storage *storage.Store
	// Presets the jobs may name. Required.
	Presets job.Presets
	// Limits bound what a task may make ffmpeg decode and write. Zero fields take
	// job.DefaultLimits.
	Limits job.Limits

	// SpoolDir holds inputs that cannot be streamed (an mp4 with its index at the end) and
	// outputs ffmpeg must seek in (faststart). Default os.TempDir().
	SpoolDir string
	// SpoolLimit is the largest input that is spooled, in bytes. Default 8 GiB.
	SpoolLimit int64
	// ProbeBytes is the most of the input ffprobe is given to describe it. Default 16 MiB.
	ProbeBytes int
	// ChanDepth is the capacity, in buffers, of each channel between stages. Default 4.
	ChanDepth int
	// MaxOutputs is the number of ffmpeg outputs (a ladder's renditions each count) a task's
	// reservation (Buffers) is sized for. A task with more gets shallower output channels,
	// down to one buffer each, and is refused only if even that does not fit. Default 6.
	MaxOutputs int
	// Slots is how many tasks run at once on this machine: the cores are shared among them
	// and their encoders (Spec.Threads). Default 1 (ffmpeg picks its threads).
	Slots int
	// OverlayMaxBytes is the largest overlay image (a job's logo) fetched, in bytes; it is read
	// whole into memory to be checked. Default 4 MiB.
	OverlayMaxBytes int64
	// OverlayMaxPixels is the largest overlay image, in pixels; default 4096x4096.
	OverlayMaxPixels int64
}

func (c *Config) setDefaults() {
	if c.SpoolDir == "" {
		c.SpoolDir = os.TempDir()
	}
	if c.SpoolLimit == 0 {
		c.SpoolLimit = 8 << 30
	}
	if c.ProbeBytes == 0 {
		c.ProbeBytes = 16 << 20
	}
	if c.ChanDepth == 0 {
		c.ChanDepth = 4
	}
	if c.MaxOutputs == 0 {
		// A four-rung ladder and its audio, and one more: 42 buffers (MiB) per task.
		c.MaxOutputs = 6
	}
	if c.Slots == 0 {
		c.Slots = 1
	}
	if c.OverlayMaxBytes == 0 {
		c.OverlayMaxBytes = 4 << 20
	}
	if c.OverlayMaxPixels == 0 {
		c.OverlayMaxPixels = 4096 * 4096
	}
	c.Limits = c.Limits.WithDefaults()
}

// Buffers is the reservation one task needs from the ring: the most buffers its pipeline can
// hold at once. The source holds one (the head, or one in hand) plus the input channel; the
// stdin writer holds one; each output holds one in its reader, its channel, and one in its
// sink.
func (c Config) Buffers() int {
	c.setDefaults()
	return 1 + c.ChanDepth + 1 + c.MaxOutputs*(c.ChanDepth+2)
}

// Engine runs media tasks. It is safe for concurrent use; it holds no state of its own
// besides its configuration.
type Engine struct {
	cfg Config
}

// New validates cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	switch {
	case cfg.FFmpeg == nil:
		return nil, errors.New("media: FFmpeg is required")
	case cfg.Storage == nil:
		return nil, errors.New("media: Storage is required")
	case len(cfg.Presets) == 0:
		return nil, errors.New("media: Presets is required")
	case cfg.ChanDepth < 1:
		return nil, errors.New("media: ChanDepth must be at least 1")
	case cfg.MaxOutputs < 1 || cfg.MaxOutputs > ffmpeg.MaxOutputs:
		return nil, fmt.Errorf("media: MaxOutputs must be 1..%d", ffmpeg.MaxOutputs)
	case cfg.ProbeBytes < 64<<10:
		return nil, errors.New("media: ProbeBytes must be at least 64 KiB")
	case cfg.Slots < 1:
		return nil, errors.New("media: Slots must be at least 1")
	case cfg.SpoolLimit < 0:
		return nil, errors.New("media: SpoolLimit must not be negative")
	case cfg.OverlayMaxBytes < 0:
		return nil, errors.New("media: OverlayMaxBytes must not be negative")
	case cfg.OverlayMaxPixels < 0:
		return nil, errors.New("media: OverlayMaxPixels must not be negative")
	}
	return &Engine{cfg: cfg}, nil
}

// Config is the engine's configuration, defaults filled in.
func (e *Engine) Config() Config { return e.cfg }

// Task is one piece of media work: a job (validated), the attempt that runs it, and the ring
// reservation its buffers come from.
type Task struct {
	// ID and Attempt name the task's temporary files and objects (so parts left by earlier
	// attempts can be recognised) and its spool files.
	ID      string
	Attempt int
	Job     *job.Job
	// Buffers is the reservation every buffer of the task comes from (Config.Buffers of them).
	Buffers pipeline.Acquirer
	// Observer hears of the task's milestones; may be nil.
	Observer Observer
	// Lease, when set, is renewed before anything is committed: a task that no longer holds
	// its work (another process may own it now) publishes nothing. May be nil.
	Lease Lease
	// Meter is what the task reports while it runs; its owner reads it at any time.
	Meter Meter
	// Chunk, when set, makes the task a chunk of a split job: its input is the chunk's GOPs
	// (MPEG-TS), its one output the chunk, encoded with Chunk.Video (see split.go).
	Chunk *ChunkWork
}

// ChunkWork is what a chunk task encodes: the frames of Window, with each of the split job's
// video settings (a file's one, every rung of a ladder: one output each, in the job's outputs'
// order), and how many frames that is.
type ChunkWork struct {
	Videos []ffmpeg.Video
	Window ffmpeg.Window
	Frames int
}

// Observer hears of a task's milestones. Its methods run on the task's goroutines and must
// return quickly.
type Observer interface {
	// Probed is called once the input is described (before or while ffmpeg runs).
	Probed(p *ffmpeg.ProbeResult)
	// Phase is called when a step of the task ends (probe, spool, transcode, verify, ...).
	Phase(name string)
	// Started is called once ffmpeg runs, with its argv (without the program name) and pid.
	Started(argv []string, pid int)
	// FirstByte is called when the first byte of the task's first output reaches its sink.
	FirstByte()
}

// Lease is the hold on a task's work that its runner keeps (a JetStream delivery's ack wait).
type Lease interface {
	// Renew confirms the hold now, or says why it is gone; the commit follows it at once.
	Renew(ctx context.Context) error
}

// Meter is what a running task reports: counters that only grow, and ffmpeg's latest figures.
type Meter struct {
	BytesIn   atomic.Int64
	BytesOut  atomic.Int64
	OutTimeUS atomic.Int64
	fps       atomic.Uint64 // math.Float64bits
	speed     atomic.Uint64
	// Frames, Dup and Drop are ffmpeg's latest counts of video frames encoded, duplicated and
	// dropped (its first video output's, as -progress reports them).
	Frames, Dup, Drop atomic.Int64
	// Skipped is the number of video frames ffmpeg could not decode, once it has exited: the
	// frames before the first keyframe of a capture that starts mid-GOP.
	Skipped atomic.Int64
	// Waiting is the number of the task's stages blocked on the ring right now.
	Waiting atomic.Int32
	// Duration is the input's, in ns, once probed; 0 while unknown.
	Duration atomic.Int64
	probe    atomic.Pointer[ffmpeg.ProbeResult]
	stderr   atomic.Pointer[string]
}

// FPS and Speed are ffmpeg's latest progress figures.
func (m *Meter) FPS() float64   { return math.Float64frombits(m.fps.Load()) }
func (m *Meter) Speed() float64 { return math.Float64frombits(m.speed.Load()) }

// Probe is the input's description once known; nil before.
func (m *Meter) Probe() *ffmpeg.ProbeResult { return m.probe.Load() }

// StderrTail is the end of ffmpeg's stderr once it has exited; "" before.
func (m *Meter) StderrTail() string {
	if s := m.stderr.Load(); s != nil {
		return *s
	}
	return ""
}

// Advance is a number that grows whenever the task makes progress of any kind.
func (m *Meter) Advance() int64 { return m.BytesIn.Load() + m.BytesOut.Load() + m.OutTimeUS.Load() }

// threads shares the machine's cores among the tasks that may run at once and the encoders
// of this one, so that a full worker does not oversubscribe its cores (each x264 would
// otherwise start 1.5 threads per core). 0 (ffmpeg's own choice) with one slot, or when the
// ffmpeg configuration sets threads.
func (e *Engine) threads(spec ffmpeg.Spec) int {
	if e.cfg.Slots <= 1 || e.cfg.FFmpeg.Config().Threads > 0 {
		return 0
	}
	enc := 0
	for _, o := range spec.Outputs {
		if o.Video != nil && o.Video.Codec != "copy" {
			enc++
		}
	}
	perTask := max(1, runtime.GOMAXPROCS(0)/e.cfg.Slots)
	return max(1, perTask/max(1, enc))
}

// outputDepth is the capacity of each output channel for a task with n ffmpeg outputs:
// ChanDepth when the reservation has room for it, shallower when there are more outputs than
// MaxOutputs. A task that does not fit even with one buffer per channel is refused.
func (e *Engine) outputDepth(n int) (int, error) {
	reserved := e.cfg.Buffers()
	input := 2 + e.cfg.ChanDepth // source and stdin stages in hand, and their channel
	depth := min(e.cfg.ChanDepth, (reserved-input)/n-2)
	if depth < 1 {
		return 0, &job.Error{Class: job.ClassInvalidJob, Reason: fmt.Sprintf("the job makes %d ffmpeg outputs; this worker's ring holds at most %d per job (raise max_outputs)", n, (reserved-input)/3)}
	}
	return depth, nil
}
