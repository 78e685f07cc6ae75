package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/storage"
	"github.com/transcoder/transcoder/worker"
)

func runCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		jf         jobFlags
		configPath string
		explain    bool
		verbose    bool
	)
	c := &cobra.Command{
		Use:   "run {INPUT -o OUTPUT | --job FILE}",
		Short: "Transcode one input in this process (embedded NATS, worker, submit, wait)",
		Long: `Transcode one input in this process: a private embedded NATS server, a worker, the job,
its outcome. The worker reads the configuration that ` + "`transcoder worker`" + ` reads (--config, TRANSCODER_*
variables, the flags below), except what is about its NATS server and identity (nats, creds,
nkey, tls_*, listen, data, id, metrics_addr): run's server is its own. Its defaults differ where
one job wants them to: one slot, two attempts one second apart, errors only in the log.`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := runConfig(configPath, os.Environ(), cmd.Flags())
			if err != nil {
				return usageError{err}
			}
			if verbose {
				cfg.LogLevel = "info"
			}
			if jf.presets == "" {
				jf.presets = cfg.Presets
			}
			j, presets, err := jf.build(firstArg(args))
			if err != nil {
				return err
			}
			runner, err := cfg.newRunner()
			if err != nil {
				return err
			}
			if j.ID == "" {
				j.ID = nuid.Next()
			}
			if explain {
				return explainRun(cmd.Context(), stdout, runner, cfg, presets, j)
			}
			log, err := newLogger(cfg, stderr)
			if err != nil {
				return usageError{err}
			}
			setMaxProcs(log)
			return runOne(cmd.Context(), cfg.workerConfig(nil, runner, presets, log), j, stdout, stderr)
		},
	}
	jf.register(c)
	registerSharedFlags(c.Flags(), &configPath)
	c.Flags().BoolVar(&explain, "explain", false, "print the ffmpeg command the job would run and the pipes it uses, and exit")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log the worker's steps (log_level info)")
	c.Flags().Bool("allow-private-networks", false, "let http(s) inputs and outputs reach loopback and private addresses (refused by default)")
	return c
}

// runConfig is the configuration of `run`: the worker's, over run's own defaults. The flag
// --id is the job's there, not the worker's.
func runConfig(path string, env []string, flags *pflag.FlagSet) (fileConfig, error) {
	c, err := defaultConfig()
	if err != nil {
		return c, err
	}
	c.Slots, c.MaxDeliver, c.Backoff, c.LogLevel = 1, 2, []time.Duration{time.Second}, "error"
	c, err = overlayConfig(c, path, env, flags)
	c.ID = "run"
	return c, err
}

// runOne runs the job on a worker with wcfg (its connection aside) on a private embedded NATS
// server, and reports its outcome.
func runOne(ctx context.Context, wcfg worker.Config, j *job.Job, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "transcoder-run-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	ns, err := natsembed.Start(natsembed.Config{DataDir: dir})
	if err != nil {
		return err
	}
	defer ns.Close()
	nc, err := ns.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	wcfg.Conn, wcfg.NoRegistry = nc, true
	w, err := worker.New(wcfg)
	if err != nil {
		return usageError{err}
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Shutdown(ctx)
	}()
	cl, err := worker.NewClient(ctx, nc)
	if err != nil {
		return err
	}
	id, err := cl.Submit(ctx, j)
	if err != nil {
		return err
	}
	return waitJob(ctx, cl, id, stdout, stderr)
}

// explainRun prints the argv the run's worker (one slot, the configured spool directory and
// limits) starts for this job, from the media core's own planning, and the pipes it uses.
func explainRun(ctx context.Context, stdout io.Writer, runner *ffmpeg.Runner, cfg fileConfig, presets job.Presets, j *job.Job) error {
	if err := j.Validate(presets); err != nil {
		return err
	}
	st, err := storage.New(cfg.storageConfig())
	if err != nil {
		return err
	}
	defer st.Close()
	eng, err := media.New(media.Config{FFmpeg: runner, Storage: st, Presets: presets, Limits: cfg.limits(),
		SpoolDir: cfg.SpoolDir, SpoolLimit: cfg.SpoolLimit, ProbeBytes: cfg.ProbeBytes,
		ChanDepth: cfg.ChanDepth, MaxOutputs: cfg.MaxOutputs, Slots: 1})
	if err != nil {
		return err
	}
	ex, err := eng.Explain(ctx, &media.Task{ID: j.ID, Attempt: 1, Job: j})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ffmpeg "+ffmpeg.Quote(ex.Argv))
	fmt.Fprintf(stdout, "# job %s, attempt 1\n", j.ID)
	if ex.Spooled {
		fmt.Fprintf(stdout, "# input: the index of %s is at its end, so the worker spools it to %s first and ffmpeg reads that file\n", j.Input, ex.Plan.Spec.Input.Path)
	} else {
		fmt.Fprintf(stdout, "# input: pipe:0 (stdin), fed from the ring with %s\n", j.Input)
	}
	for i, po := range ex.Plan.Outputs {
		switch po.Kind {
		case media.KindLadder:
			for k, si := range po.Spec {
				fmt.Fprintf(stdout, "# output %d, rendition %s: pipe:%d -> ring -> CMAF segments under %s/%s/ (each published when complete; playlists last)\n", i, po.Renditions[k].Name, ffmpeg.OutputFD(si), po.URL, po.Renditions[k].Name)
			}
		case media.KindFaststart:
			fmt.Fprintf(stdout, "# output %d: ffmpeg writes %s -> ring -> %s (temporary name, published when verified)\n", i, ex.Plan.Spec.Outputs[po.Spec[0]].Path, po.URL)
		default:
			fmt.Fprintf(stdout, "# output %d (%s): pipe:%d -> ring -> %s (temporary name, published when verified)\n", i, po.Kind, ffmpeg.OutputFD(po.Spec[0]), po.URL)
		}
	}
	fmt.Fprintf(stdout, "# progress: pipe:%d\n", ffmpeg.ProgressFD(len(ex.Plan.Spec.Outputs)))
	return nil
}
