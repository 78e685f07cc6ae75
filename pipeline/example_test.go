package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/pipeline"
)

func Example() {
	pool, _ := bufpool.New(bufpool.Config{Buffers: 8, BufferSize: 4})

	// Admission: reserve what source -> upper -> sink can hold at most.
	caps := []int{1, 1}
	job, ok := pool.TryReserve(pipeline.BuffersNeeded(caps, 3))
	if !ok {
		fmt.Println("ring saturated; do not pull the job")
		return
	}
	defer job.Close()

	var out strings.Builder
	p := pipeline.New(context.Background(), job)
	raw, upper := p.Chan(caps[0]), p.Chan(caps[1])
	p.Go("source", func(ctx context.Context) error {
		_, err := pipeline.ReadFrom(ctx, strings.NewReader("media through the ring"), job, raw)
		return err
	})
	p.Go("upper", func(ctx context.Context) error {
		return pipeline.Forward(ctx, raw, upper, job, func(b *bufpool.Buffer) error {
			copy(b.Bytes(), bytes.ToUpper(b.Bytes()))
			return nil
		})
	})
	p.Go("sink", func(ctx context.Context) error {
		_, err := pipeline.WriteTo(ctx, upper, &out, job)
		return err
	})
	if err := p.Wait(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(out.String())
	fmt.Println("buffers out:", pool.Stats().InUse)
	// Output:
	// MEDIA THROUGH THE RING
	// buffers out: 0
}
