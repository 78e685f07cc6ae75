package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nuid"
	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/storage"
	"github.com/transcoder/transcoder/worker"
)

func runCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		jf           jobFlags
		explain      bool
		verbose      bool
		allowPrivate bool
	)
	c := &cobra.Command{
		Use:   "run {INPUT -o OUTPUT | --job FILE}",
		Short: "Transcode one input in this process (embedded NATS, worker, submit, wait)",
		Args:  cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, presets, err := jf.build(firstArg(args))
			if err != nil {
				return err
			}
			runner, err := ffmpeg.New(ffmpeg.Config{})
			if err != nil {
				return fmt.Errorf("%w (install it: apt-get install -y ffmpeg)", err)
			}
			stcfg := storage.Config{AllowPrivateNetworks: allowPrivate}
			if j.ID == "" {
				j.ID = nuid.Next()
			}
			if explain {
				return explainRun(cmd.Context(), stdout, runner, stcfg, presets, j)
			}
			level := slog.LevelWarn + 4 // quiet unless --verbose: the outcome is reported below
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
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
			w, err := worker.New(worker.Config{
				Conn: nc, FFmpeg: runner, Presets: presets, Logger: log, ID: "run", Slots: 1,
				MaxDeliver: 2, Backoff: []time.Duration{time.Second}, StorageConfig: stcfg,
				NoRegistry: true,
			})
			if err != nil {
				return err
			}
			if err := w.Start(cmd.Context()); err != nil {
				return err
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = w.Shutdown(ctx)
			}()
			cl, err := worker.NewClient(cmd.Context(), nc)
			if err != nil {
				return err
			}
			id, err := cl.Submit(cmd.Context(), j)
			if err != nil {
				return err
			}
			return waitJob(cmd.Context(), cl, id, stdout, stderr)
		},
	}
	jf.register(c)
	c.Flags().BoolVar(&explain, "explain", false, "print the ffmpeg command the job would run and the pipes it uses, and exit")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log the worker's steps")
	c.Flags().BoolVar(&allowPrivate, "allow-private-networks", false, "let http(s) inputs and outputs reach loopback and private addresses (refused by default)")
	return c
}

// explainRun prints the argv the run's worker (one slot, default spool directory) starts for
// this job, from the media core's own planning, and the pipes it uses.
func explainRun(ctx context.Context, stdout io.Writer, runner *ffmpeg.Runner, stcfg storage.Config, presets job.Presets, j *job.Job) error {
	if err := j.Validate(presets); err != nil {
		return err
	}
	st, err := storage.New(stcfg)
	if err != nil {
		return err
	}
	defer st.Close()
	eng, err := media.New(media.Config{FFmpeg: runner, Storage: st, Presets: presets, Slots: 1})
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
