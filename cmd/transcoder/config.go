package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"
	"go.uber.org/automaxprocs/maxprocs"
	"go.yaml.in/yaml/v3"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/sandbox"
	"github.com/transcoder/transcoder/storage"
	"github.com/transcoder/transcoder/worker"
)

// fileConfig is the worker configuration as a file, the environment and flags give it. It is
// parsed here only; packages get their typed Config. configs/worker.example.yaml documents it.
type fileConfig struct {
	NATS             string          `yaml:"nats"`
	Creds            string          `yaml:"creds"`
	NKey             string          `yaml:"nkey"`
	TLSCA            string          `yaml:"tls_ca"`
	TLSCert          string          `yaml:"tls_cert"`
	TLSKey           string          `yaml:"tls_key"`
	Listen           string          `yaml:"listen"`
	Data             string          `yaml:"data"`
	Presets          string          `yaml:"presets"`
	ID               string          `yaml:"id"`
	Slots            int             `yaml:"slots"`
	RingBuffers      int             `yaml:"ring_buffers"`
	ChanDepth        int             `yaml:"chan_depth"`
	MaxOutputs       int             `yaml:"max_outputs"`
	ProbeBytes       int             `yaml:"probe_bytes"`
	SpoolDir         string          `yaml:"spool_dir"`
	SpoolLimit       int64           `yaml:"spool_limit"`
	OverlayMaxBytes  int64           `yaml:"overlay_max_bytes"`
	OverlayMaxPixels int64           `yaml:"overlay_max_pixels"`
	AckWait          time.Duration   `yaml:"ack_wait"`
	Heartbeat        time.Duration   `yaml:"heartbeat"`
	StallTimeout     time.Duration   `yaml:"stall_timeout"`
	SplitMinDuration time.Duration   `yaml:"split_min_duration"`
	MaxDeliver       int             `yaml:"max_deliver"`
	Backoff          []time.Duration `yaml:"backoff"`
	TimeoutFloor     time.Duration   `yaml:"timeout_floor"`
	TimeoutFactor    float64         `yaml:"timeout_factor"`
	TimeoutCap       time.Duration   `yaml:"timeout_cap"`
	ProgressInterval time.Duration   `yaml:"progress_interval"`
	GracePeriod      time.Duration   `yaml:"grace_period"`
	KillDelay        time.Duration   `yaml:"kill_delay"`
	MaxMemory        int64           `yaml:"max_memory"`
	MaxCPUTime       time.Duration   `yaml:"max_cpu_time"`
	TolerateErrors   bool            `yaml:"tolerate_input_errors"`
	Sandbox          string          `yaml:"sandbox"`
	SandboxUser      string          `yaml:"sandbox_user"`
	MaxWidth         int             `yaml:"max_width"`
	MaxHeight        int             `yaml:"max_height"`
	MaxPixels        int64           `yaml:"max_pixels"`
	MaxStreams       int             `yaml:"max_streams"`
	MaxSideStreams   int             `yaml:"max_side_streams"`
	MaxDuration      time.Duration   `yaml:"max_duration"`
	MaxOutputBytes   int64           `yaml:"max_output_bytes"`
	Threads          int             `yaml:"threads"`
	MetricsAddr      string          `yaml:"metrics_addr"`
	Encoders         []string        `yaml:"encoders"`
	FileRoots        []string        `yaml:"file_roots"`
	AllowPrivate     bool            `yaml:"allow_private_networks"`
	MaxInputBytes    int64           `yaml:"max_input_bytes"`
	HTTPRetries      int             `yaml:"http_retries"`
	S3Endpoint       string          `yaml:"s3_endpoint"`
	S3Region         string          `yaml:"s3_region"`
	S3Secure         bool            `yaml:"s3_secure"`
	S3PartSize       int64           `yaml:"s3_part_size"`
	LogFormat        string          `yaml:"log_format"`
	LogLevel         string          `yaml:"log_level"`
}

// defaultConfig is configs/worker.example.yaml itself, so the documented defaults are the
// defaults.
func defaultConfig() (fileConfig, error) {
	var c fileConfig
	if err := decodeYAML(configs.WorkerExample, &c); err != nil {
		return c, fmt.Errorf("built-in config: %w", err)
	}
	return c, nil
}

func decodeYAML(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// loadConfig applies, in order: built-in defaults, the file, TRANSCODER_* variables, and the
// flags that were set on the command line.
func loadConfig(path string, env []string, flags *pflag.FlagSet) (fileConfig, error) {
	c, err := defaultConfig()
	if err != nil {
		return c, err
	}
	return overlayConfig(c, path, env, flags)
}

// overlayConfig applies the file, TRANSCODER_* variables and the flags that were set over c:
// `worker` and `run` read their settings through it, over different defaults.
func overlayConfig(c fileConfig, path string, env []string, flags *pflag.FlagSet) (fileConfig, error) {
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := decodeYAML(data, &c); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	v := reflect.ValueOf(&c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		key := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		envKey := "TRANSCODER_" + strings.ToUpper(key)
		for _, kv := range env {
			if val, ok := strings.CutPrefix(kv, envKey+"="); ok {
				if err := setField(v.Field(i), val); err != nil {
					return c, fmt.Errorf("%s: %w", envKey, err)
				}
			}
		}
		if flags != nil {
			if f := flags.Lookup(strings.ReplaceAll(key, "_", "-")); f != nil && f.Changed {
				if err := setField(v.Field(i), f.Value.String()); err != nil {
					return c, fmt.Errorf("--%s: %w", f.Name, err)
				}
			}
		}
	}
	if c.Data == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		c.Data = filepath.Join(home, ".local", "share", "transcoder", "nats")
	}
	return c, nil
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case string:
		f.SetString(s)
	case bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.SetBool(v)
	case float64:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		f.SetFloat(v)
	case int, int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(n)
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration", s)
		}
		f.SetInt(int64(d))
	case []string:
		var ss []string
		for _, p := range strings.Split(strings.Trim(s, "[]"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				ss = append(ss, p)
			}
		}
		f.Set(reflect.ValueOf(ss))
	case []time.Duration:
		var ds []time.Duration
		for _, p := range strings.Split(strings.Trim(s, "[]"), ",") {
			d, err := time.ParseDuration(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("%q is not a list of durations", s)
			}
			ds = append(ds, d)
		}
		f.Set(reflect.ValueOf(ds))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

// registerSharedFlags registers the flags that `worker` and `run` both take; loadConfig
// applies them by name.
func registerSharedFlags(f *pflag.FlagSet, configPath *string) {
	f.StringVar(configPath, "config", os.Getenv("TRANSCODER_CONFIG"), "YAML config file (see configs/worker.example.yaml); TRANSCODER_* variables and flags override it")
	f.Int("slots", 0, "jobs at once (default half the CPUs)")
	f.Int("ring-buffers", 0, "1 MiB buffers in the ring (default slots x per-job need)")
	f.Duration("ack-wait", 0, "redelivery timeout without heartbeats (default 30s)")
	f.String("log-format", "", "text or json")
	f.String("log-level", "", "debug, info, warn or error")
}

// workerConfig is the worker the configuration describes, on nc.
func (c fileConfig) workerConfig(nc *nats.Conn, runner *ffmpeg.Runner, presets job.Presets, log *slog.Logger) worker.Config {
	return worker.Config{
		Conn: nc, FFmpeg: runner, Presets: presets, Logger: log, StorageConfig: c.storageConfig(),
		ID: c.ID, Slots: c.Slots, RingBuffers: c.RingBuffers, ChanDepth: c.ChanDepth,
		MaxOutputs: c.MaxOutputs, ProbeBytes: c.ProbeBytes, SpoolDir: c.SpoolDir,
		SpoolLimit: c.SpoolLimit, OverlayMaxBytes: c.OverlayMaxBytes, OverlayMaxPixels: c.OverlayMaxPixels,
		AckWait: c.AckWait, Heartbeat: c.Heartbeat,
		StallTimeout: c.StallTimeout, SplitMinDuration: c.SplitMinDuration, MaxDeliver: c.MaxDeliver, Backoff: c.Backoff,
		TimeoutFloor: c.TimeoutFloor, TimeoutFactor: c.TimeoutFactor, TimeoutCap: c.TimeoutCap,
		ProgressInterval: c.ProgressInterval, Limits: c.limits(), Encoders: c.Encoders,
	}
}

// setMaxProcs fits GOMAXPROCS to the container's CPU quota and says so in log: a process
// that transcodes needs it, a client command neither needs it nor prints it.
func setMaxProcs(log *slog.Logger) {
	_, _ = maxprocs.Set(maxprocs.Logger(func(format string, args ...any) {
		log.Info(fmt.Sprintf(format, args...))
	}))
}

// ffmpegConfig and limits are the parts of the file config that the ffmpeg and job packages take.
func (c fileConfig) ffmpegConfig() ffmpeg.Config {
	return ffmpeg.Config{KillDelay: c.KillDelay, Threads: c.Threads, MaxMemory: c.MaxMemory,
		MaxCPUTime: c.MaxCPUTime, TolerateInputErrors: c.TolerateErrors}
}

// newRunner is the ffmpeg runner of worker and run alike: the same settings, the same sandbox
// (its layers probed). An error that is not the sandbox's is ffmpeg missing.
func (c fileConfig) newRunner() (*ffmpeg.Runner, error) {
	sb, err := sandbox.New(sandbox.Config{Mode: sandbox.Mode(c.Sandbox), User: c.SandboxUser, SpoolDir: c.SpoolDir})
	if err != nil {
		return nil, err
	}
	fcfg := c.ffmpegConfig()
	fcfg.Sandbox = sb
	r, err := ffmpeg.New(fcfg)
	if err != nil {
		return nil, fmt.Errorf("%w (install it: apt-get install -y ffmpeg)", err)
	}
	return r, nil
}

// logSandbox says once, at start, which layers confine ffmpeg: a warning when one is missing.
func logSandbox(log *slog.Logger, st sandbox.Status) {
	switch {
	case st.Mode == sandbox.ModeOff:
		log.Warn("ffmpeg runs unconfined (sandbox: off)")
	case len(st.Missing) > 0:
		log.Warn("ffmpeg sandbox lacks layers", "layers", st.Layers, "missing", st.Missing)
	default:
		log.Info("ffmpeg sandbox", "layers", st.Layers)
	}
}

// storageConfig is the part that the storage package takes (the worker adds its JetStream for
// nats:// URLs).
func (c fileConfig) storageConfig() storage.Config {
	return storage.Config{
		FileRoots: c.FileRoots, AllowPrivateNetworks: c.AllowPrivate, MaxInputBytes: c.MaxInputBytes,
		Retries: c.HTTPRetries,
		S3:      storage.S3Config{Endpoint: c.S3Endpoint, Region: c.S3Region, Secure: c.S3Secure, PartSize: c.S3PartSize},
	}
}

func (c fileConfig) limits() job.Limits {
	return job.Limits{MaxWidth: c.MaxWidth, MaxHeight: c.MaxHeight, MaxPixels: c.MaxPixels,
		MaxStreams: c.MaxStreams, MaxSideStreams: c.MaxSideStreams, MaxDuration: c.MaxDuration, MaxOutputBytes: c.MaxOutputBytes}
}

// loadPresets returns the built-in presets plus those of the file, if any.
func loadPresets(path string) (job.Presets, error) {
	p, err := job.ParsePresets(configs.Presets)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return p, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("presets: %w", err)
	}
	extra, err := job.ParsePresets(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p.Merge(extra), nil
}

func newLogger(c fileConfig, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.LogFormat {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log_format: %q is neither text nor json", c.LogFormat)
}
