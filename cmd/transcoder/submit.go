package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func submitCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		jf     jobFlags
		cf     clientFlags
		wait   bool
		dryRun bool
	)
	c := &cobra.Command{
		Use:   "submit INPUT -o OUTPUT",
		Short: "Publish a transcode job and print its id",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			j, _, err := jf.build(args[0])
			if err != nil {
				return err
			}
			if dryRun {
				return writeJSON(stdout, j, false)
			}
			nc, err := cf.connect()
			if err != nil {
				return err
			}
			defer nc.Close()
			cl, err := worker.NewClient(cmd.Context(), nc)
			if err != nil {
				return err
			}
			id, err := cl.Submit(cmd.Context(), j)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, id)
			if !wait {
				return nil
			}
			return waitJob(cmd.Context(), cl, id, stdout, stderr)
		},
	}
	jf.register(c)
	cf.register(c)
	c.Flags().BoolVar(&wait, "wait", false, "show progress and exit 0 only if the job succeeds")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print the job JSON that would be published, and exit")
	return c
}

// waitJob follows the job with a progress bar and reports the outcome.
func waitJob(ctx context.Context, cl *worker.Client, id string, stdout, stderr io.Writer) error {
	bar := progressbar.NewOptions(100,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("queued"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
	ev, err := cl.Watch(ctx, id, func(ev job.Event) {
		switch ev.Type {
		case job.EventStarted:
			bar.Describe("transcoding")
		case job.EventRetrying:
			bar.Describe("retrying")
		case job.EventProgress:
			if ev.Progress != nil {
				_ = bar.Set(int(ev.Progress.Percent))
			}
		case job.EventSucceeded:
			_ = bar.Finish()
		}
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if ev.Type != job.EventSucceeded {
		return &jobFailedError{ev}
	}
	for _, o := range ev.Outputs {
		fmt.Fprintf(stdout, "%s  %d bytes  %.2fs  %dx%d  sha256:%s\n", o.URL, o.Size, o.Duration, o.Width, o.Height, o.SHA256)
	}
	return nil
}
