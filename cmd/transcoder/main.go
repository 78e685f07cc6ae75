// Command transcoder is the streaming transcode worker and its client: `transcoder worker`
// serves jobs from NATS, `transcoder submit` publishes them, `transcoder run` does one job in
// one process. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		os.Exit(exitCode(err))
	}
}
