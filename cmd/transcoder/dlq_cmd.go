package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/worker"
)

func dlqCommand(stdout io.Writer) *cobra.Command {
	c := &cobra.Command{
		Use:   "dlq",
		Short: "Jobs that failed for good: list them, retry one",
	}
	var cf clientFlags
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters (oldest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				dls, err := cl.DeadLetters(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(stdout, dls, true)
				}
				for _, d := range dls {
					fmt.Fprintf(stdout, "%s  %s  attempts=%d  %s: %s\n", d.Time.Format("2006-01-02T15:04:05Z"), d.ID, d.Attempts, d.Class, firstLine(d.Reason))
				}
				return nil
			})
		},
	}
	cf.register(list)
	list.Flags().BoolVar(&asJSON, "json", false, "print the full records (job, argv, ffmpeg version, probe, stderr tail)")
	var rf clientFlags
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Publish a dead job again and remove its dead letter",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return rf.withClient(cmd.Context(), func(ctx context.Context, cl *worker.Client) error {
				if err := cl.RetryDeadLetter(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s queued again\n", args[0])
				return nil
			})
		},
	}
	rf.register(retry)
	c.AddCommand(list, retry)
	return c
}

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i]
		}
	}
	return s
}
