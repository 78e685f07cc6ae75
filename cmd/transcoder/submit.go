package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/nats-io/nuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func submitCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		jf           jobFlags
		cf           clientFlags
		wait         bool
		dryRun       bool
		upload       string
		uploadBucket string
	)
	c := &cobra.Command{
		Use:   "submit {INPUT | --upload FILE} -o OUTPUT | submit --job FILE",
		Short: "Publish a transcode job and print its id",
		Long: `Publish a transcode job and print its id.

INPUT and OUTPUT are paths or URLs: file:///abs (or a path), http(s)://..., nats://BUCKET/KEY
(JetStream object store), s3://BUCKET/KEY. With --upload FILE the local file is first put into
the object store (nats://` + "`--upload-bucket`" + `/JOB_ID/NAME) and the job reads it from there, so
workers on other machines need no shared disk.

With --job FILE the job is the file: the whole job in its JSON wire format (version 1), for what
the flags cannot express (several presets, clip, loudness, overlay...). It replaces INPUT and the
job flags (--preset, -o, --id, --meta, --priority, --timeout, --split, --chunk, --faststart),
which are refused beside it; --upload is refused too (name the input in the file).`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if jf.jobFile != "" {
				if upload != "" {
					return usageError{fmt.Errorf("--job FILE names its input: not with --upload")}
				}
				j, presets, err := jf.build(firstArg(args))
				if err != nil {
					return err
				}
				return publish(cmd.Context(), &cf, j, presets, "", wait, dryRun, stdout, stderr)
			}
			if (upload == "") == (len(args) == 0) {
				return usageError{fmt.Errorf("give an INPUT or --upload FILE (one of them)")}
			}
			if jf.id == "" {
				jf.id = nuid.Next()
			}
			input := ""
			if upload != "" {
				input = "nats://" + uploadBucket + "/" + jf.id + "/" + uploadName(upload)
			} else {
				input = args[0]
			}
			j, presets, err := jf.build(input)
			if err != nil {
				return err
			}
			return publish(cmd.Context(), &cf, j, presets, upload, wait, dryRun, stdout, stderr)
		},
	}
	jf.register(c)
	cf.register(c)
	c.Flags().BoolVar(&wait, "wait", false, "show progress and exit 0 only if the job succeeds")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print the job JSON that would be published, and exit")
	c.Flags().StringVar(&upload, "upload", "", "put this local file into the NATS object store and use it as the input")
	c.Flags().StringVar(&uploadBucket, "upload-bucket", worker.UploadsBucket, "object store bucket for --upload (workers create "+worker.UploadsBucket+"; another must exist or be creatable by the NATS user)")
	return c
}

// publish prints the job (dryRun) or connects and submits it.
func publish(ctx context.Context, cf *clientFlags, j *job.Job, presets job.Presets, upload string, wait, dryRun bool, stdout, stderr io.Writer) error {
	if dryRun {
		return writeJSON(stdout, j, false)
	}
	s, err := cf.open(ctx)
	if err != nil {
		return err
	}
	return s.done(submit(s, j, presets, upload, j.Input, wait, stdout, stderr))
}

// submit uploads the input if asked, publishes the job and, with wait, follows it.
func submit(s *session, j *job.Job, presets job.Presets, upload, input string, wait bool, stdout, stderr io.Writer) error {
	if upload != "" {
		n, err := uploadFile(s.ctx, s.nc, upload, input)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "uploaded %s (%d bytes) to %s\n", upload, n, input)
	}
	cl, err := worker.NewClient(s.ctx, s.nc)
	if err != nil {
		return err
	}
	warnCapabilities(s.ctx, cl, j.Encoders(presets), stderr)
	id, err := cl.Submit(s.ctx, j)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, id)
	if !wait {
		return nil
	}
	return waitJob(s.ctx, cl, id, stdout, stderr)
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
		fmt.Fprintf(stdout, "%s  %d bytes  %.2fs  %dx%d  sha256:%s%s\n", o.URL, o.Size, o.Duration, o.Width, o.Height, o.SHA256, outputNotes(o))
	}
	return nil
}

// warnCapabilities says when no live worker advertises an encoder the job needs: the job would
// be retried until one appears, then fail. It is a warning: a worker may be on its way.
func warnCapabilities(ctx context.Context, cl *worker.Client, need []string, stderr io.Writer) {
	ws, err := cl.Workers(ctx)
	if err != nil || len(ws) == 0 {
		if err == nil {
			fmt.Fprintln(stderr, "warning: no live worker is registered; the job waits in the queue until one starts")
		}
		return
	}
	for _, w := range ws {
		if hasAll(w.Capabilities, need) {
			return
		}
	}
	fmt.Fprintf(stderr, "warning: no live worker can encode all of %v; the job is retried until one can, then fails\n", need)
}

func hasAll(have, need []string) bool {
	for _, n := range need {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

// firstArg is the command's one optional argument, "" when absent.
func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// outputNotes are what an output's result says beyond its size: its loudness (input -> output)
// and what became of an HDR input.
func outputNotes(o job.OutputResult) string {
	var s string
	if l := o.Loudness; l != nil {
		s += fmt.Sprintf("  loudness %.1f -> %.1f LUFS (true peak %.1f dBTP)", l.Input.I, l.Output.I, l.Output.TP)
	}
	if o.HDR != "" {
		s += "  hdr " + o.HDR
	}
	return s
}
