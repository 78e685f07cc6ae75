package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// defaultNATS is where client commands look for a worker's embedded server.
const defaultNATS = "nats://127.0.0.1:4222"

// jobFailedError is a job that ended other than succeeded; the exit code says so.
type jobFailedError struct{ ev job.Event }

func (e *jobFailedError) Error() string {
	if e.ev.Error != nil {
		return fmt.Sprintf("job %s %s: %s: %s", e.ev.JobID, e.ev.Type, e.ev.Error.Class, e.ev.Error.Reason)
	}
	return fmt.Sprintf("job %s %s", e.ev.JobID, e.ev.Type)
}

type usageError struct{ error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// run is the whole CLI; main only wires signals and the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "transcoder",
		Short:         "Streaming video transcode worker on NATS JetStream",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		workerCommand(stdout, stderr),
		submitCommand(stdout, stderr),
		runCommand(stdout, stderr),
		statusCommand(stdout),
		cancelCommand(stdout),
		presetsCommand(stdout),
		dlqCommand(stdout),
		workersCommand(stdout),
		jobsCommand(stdout),
		watchCommand(stdout),
		getCommand(stdout),
	)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "transcoder:", err)
	}
	return err
}

// jobFlags are the flags that describe a job on the command line.
type jobFlags struct {
	preset   string
	outputs  []string
	priority string
	timeout  time.Duration
	id       string
	meta     []string
	presets  string
	fast     bool
	split    string
	chunk    time.Duration
	// jobFile is --job FILE: the whole job in its wire format (jobfile.go).
	jobFile string
	cmd     *cobra.Command
}

func (f *jobFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.preset, "preset", "h264-720p", "preset name (see `transcoder presets`)")
	c.Flags().StringArrayVarP(&f.outputs, "output", "o", nil, "output path or file:// URL (repeat for more outputs)")
	c.Flags().StringVar(&f.priority, "priority", "normal", "high, normal or low")
	c.Flags().DurationVar(&f.timeout, "timeout", 0, "job timeout (0: the worker's default)")
	c.Flags().StringVar(&f.id, "id", "", "job id (default: generated); resubmitting an id within 10 minutes is deduplicated")
	c.Flags().StringArrayVar(&f.meta, "meta", nil, "metadata KEY=VALUE echoed in every event (repeatable)")
	c.Flags().StringVar(&f.presets, "presets", "", "extra presets YAML file")
	c.Flags().BoolVar(&f.fast, "faststart", false, "mp4/m4a outputs with the index at the front (every mp4/m4a output has it now; kept for old scripts)")
	c.Flags().StringVar(&f.split, "split", "", "split into chunks that many workers encode at once: on, off or auto (default auto: inputs longer than the workers' split_min_duration, with more than one worker alive)")
	c.Flags().DurationVar(&f.chunk, "chunk", 0, "chunk duration of a split job (default 30s)")
	c.Flags().StringVar(&f.jobFile, "job", "", "the whole job as a JSON file (wire format v1: clip, loudness, overlay... that the flags cannot express); not with INPUT or the other job flags")
	f.cmd = c
}

// build makes and validates the job: from the flags and the input, or from --job FILE.
func (f *jobFlags) build(input string) (*job.Job, job.Presets, error) {
	presets, err := loadPresets(f.presets)
	if err != nil {
		return nil, nil, err
	}
	if f.jobFile != "" {
		j, err := f.fromFile(input, presets)
		return j, presets, err
	}
	if input == "" {
		return nil, nil, usageError{fmt.Errorf("give an INPUT and -o OUTPUT, or --job FILE")}
	}
	if len(f.outputs) == 0 {
		return nil, nil, usageError{fmt.Errorf("required flag \"output\" not set (-o OUTPUT, or --job FILE)")}
	}
	in, err := toURL(input)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("input: %w", err)}
	}
	j := &job.Job{ID: f.id, Input: in, Preset: f.preset, Priority: job.Priority(f.priority), Timeout: job.Duration(f.timeout)}
	if f.split != "" || f.chunk != 0 {
		j.Split = &job.Split{Mode: f.split, Chunk: job.Duration(f.chunk)}
	}
	for _, o := range f.outputs {
		u, err := toURL(o)
		if err != nil {
			return nil, nil, usageError{fmt.Errorf("output: %w", err)}
		}
		j.Outputs = append(j.Outputs, job.Output{URL: u, Faststart: f.fast})
	}
	for _, kv := range f.meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, nil, usageError{fmt.Errorf("--meta %q: want KEY=VALUE", kv)}
		}
		if j.Metadata == nil {
			j.Metadata = map[string]string{}
		}
		j.Metadata[k] = v
	}
	worker.Prepare(j)
	if err := j.Validate(presets); err != nil {
		return nil, nil, usageError{err}
	}
	return j, presets, nil
}

// toURL turns a plain path (relative to the working directory) into a file:// URL; URLs pass.
func toURL(s string) (string, error) {
	if strings.Contains(s, "://") {
		loc, err := job.ParseLocation(s)
		if err != nil {
			return "", err
		}
		return loc.String(), nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", err
	}
	return job.Location{Scheme: "file", Path: abs}.String(), nil
}

// clientFlags are how client commands reach NATS.
type clientFlags struct {
	url  string
	auth natsAuth
}

func (f *clientFlags) register(c *cobra.Command) {
	def := os.Getenv("TRANSCODER_NATS")
	if def == "" {
		def = defaultNATS
	}
	c.Flags().StringVar(&f.url, "nats", def, "NATS server URL(s), comma-separated; user:password@ in a URL logs in (env TRANSCODER_NATS)")
	c.Flags().StringVar(&f.auth.Creds, "creds", os.Getenv("TRANSCODER_CREDS"), "NATS credentials file (env TRANSCODER_CREDS)")
	c.Flags().StringVar(&f.auth.NKey, "nkey", os.Getenv("TRANSCODER_NKEY"), "file with a NATS user NKEY seed (env TRANSCODER_NKEY)")
	c.Flags().StringVar(&f.auth.TLSCA, "tls-ca", os.Getenv("TRANSCODER_TLS_CA"), "PEM CA to verify the NATS servers with (env TRANSCODER_TLS_CA)")
	c.Flags().StringVar(&f.auth.TLSCert, "tls-cert", os.Getenv("TRANSCODER_TLS_CERT"), "PEM client certificate for NATS, with --tls-key (env TRANSCODER_TLS_CERT)")
	c.Flags().StringVar(&f.auth.TLSKey, "tls-key", os.Getenv("TRANSCODER_TLS_KEY"), "PEM private key of --tls-cert (env TRANSCODER_TLS_KEY)")
}

func statusCommand(stdout io.Writer) *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "status ID",
		Short: "Print a job's state as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				st, err := cl.Status(ctx, args[0])
				if err != nil {
					return err
				}
				return writeJSON(stdout, st, true)
			})
		},
	}
	cf.register(c)
	return c
}

func cancelCommand(stdout io.Writer) *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a queued or running job",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				if err := cl.Cancel(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "cancel requested for %s\n", args[0])
				return nil
			})
		},
	}
	cf.register(c)
	return c
}

func presetsCommand(stdout io.Writer) *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "presets",
		Short: "List the presets and what each produces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := loadPresets(file)
			if err != nil {
				return err
			}
			for _, n := range p.Names() {
				fmt.Fprintf(stdout, "%-12s %s\n%-12s   %s\n", n, p[n].Summary(), "", p[n].Description)
			}
			return nil
		},
	}
	c.Flags().StringVar(&file, "presets", "", "extra presets YAML file")
	return c
}
