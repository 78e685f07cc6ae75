package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func workersCommand(stdout io.Writer) *cobra.Command {
	var cf clientFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "workers",
		Short: "List the live workers: slots, running jobs, ring use, capabilities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				ws, err := cl.Workers(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(stdout, ws, true)
				}
				fmt.Fprintf(stdout, "%-28s %-16s %5s %7s %9s  %s\n", "WORKER", "HOST", "SLOTS", "RUNNING", "RING", "SEEN")
				for _, w := range ws {
					fmt.Fprintf(stdout, "%-28s %-16s %5d %7d %4d/%-4d  %s ago\n", w.ID, w.Host, w.Slots, len(w.Running),
						w.RingInUse, w.RingCapacity, time.Since(w.Updated).Round(time.Second))
				}
				return nil
			})
		},
	}
	cf.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print the full entries, capabilities included")
	return c
}

func jobsCommand(stdout io.Writer) *cobra.Command {
	var cf clientFlags
	var limit int
	c := &cobra.Command{
		Use:   "jobs",
		Short: "List recent jobs and their states, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				sts, err := cl.Jobs(ctx, limit)
				if err != nil {
					return err
				}
				for _, s := range sts {
					line := fmt.Sprintf("%s  %-24s %-9s attempt=%d", s.Updated.Format(time.RFC3339), s.ID, s.State, s.Attempt)
					if s.Progress != nil && s.State == job.StateRunning {
						line += fmt.Sprintf(" %.0f%%", s.Progress.Percent)
					}
					if s.Error != nil {
						line += fmt.Sprintf(" %s: %s", s.Error.Class, firstLine(s.Error.Reason))
					}
					fmt.Fprintln(stdout, line)
				}
				return nil
			})
		},
	}
	cf.register(c)
	c.Flags().IntVarP(&limit, "limit", "n", 50, "at most this many")
	return c
}

func watchCommand(stdout io.Writer) *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job's events until it ends; exit 0 only if it succeeded",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				ev, err := cl.Watch(ctx, args[0], func(ev job.Event) {
					fmt.Fprintln(stdout, describe(ev))
				})
				if err != nil {
					return err
				}
				if ev.Type != job.EventSucceeded {
					return &jobFailedError{ev}
				}
				return nil
			})
		},
	}
	cf.register(c)
	return c
}

// describe is one line for an event.
func describe(ev job.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-9s attempt=%d worker=%s", ev.Time.Format("15:04:05.000"), ev.Type, ev.Attempt, ev.WorkerID)
	if p := ev.Progress; p != nil {
		fmt.Fprintf(&b, " %.1f%% %.1fx out=%.1fs", p.Percent, p.Speed, p.OutTime)
		if p.Throttled {
			b.WriteString(" throttled")
		}
	}
	for _, o := range ev.Outputs {
		fmt.Fprintf(&b, " %s (%d bytes, %.2fs)", o.URL, o.Size, o.Duration)
	}
	if ev.Error != nil {
		fmt.Fprintf(&b, " %s: %s", ev.Error.Class, firstLine(ev.Error.Reason))
	}
	return b.String()
}
