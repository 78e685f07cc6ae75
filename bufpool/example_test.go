package bufpool_test

import (
	"context"
	"fmt"

	"github.com/transcoder/transcoder/bufpool"
)

func ExamplePool() {
	pool, err := bufpool.New(bufpool.Config{Buffers: 4, BufferSize: 16})
	if err != nil {
		panic(err)
	}
	b, err := pool.Acquire(context.Background()) // blocks while the ring is empty
	if err != nil {
		panic(err)
	}
	b.SetLen(copy(b.Space(), "media bytes"))
	fmt.Printf("%q, %d in use\n", b.Bytes(), pool.Stats().InUse)
	pool.Release(b)
	fmt.Println(pool.Stats().InUse, "in use")
	// Output:
	// "media bytes", 1 in use
	// 0 in use
}

func ExampleReservation() {
	pool, _ := bufpool.New(bufpool.Config{Buffers: 4, BufferSize: 16})

	// Admission: a job whose pipeline holds at most 3 buffers.
	job, ok := pool.TryReserve(3)
	fmt.Println("admitted:", ok)
	defer job.Close()

	// A second such job would overcommit the ring: the worker does not pull it.
	_, ok = pool.TryReserve(3)
	fmt.Println("second admitted:", ok)

	b, _ := job.Acquire(context.Background())
	fmt.Println("job holds", job.InUse(), "of", job.Size())
	job.Release(b)
	// Output:
	// admitted: true
	// second admitted: false
	// job holds 1 of 3
}
