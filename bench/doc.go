// Package bench holds the transcoder's benchmarks; it has no code of its own
// outside its tests and the plotting command in bench/plot.
//
// What it measures:
//
//   - Chunk latency of the buffer layer (BenchmarkChunkLatency in
//     chunklatency_test.go): 1 MiB chunks moved through the same multi-stage,
//     goroutine-and-bounded-channel pipeline, once per way of getting media
//     memory (the bufpool ring with blocking backpressure, make, sync.Pool,
//     bytebufferpool), quiet and under GC pressure. Each chunk's latency runs
//     from before its buffer is acquired to its release and goes into an HDR
//     histogram; the benchmark reports p50/p99/p99.9/max, allocs/op and GC
//     cycles per 1000 chunks, and with BENCH_OUT=dir writes the latency
//     distributions as CSV for bench/plot.
//   - End-to-end transcode overhead, dispatch and worker memory benchmarks
//     live beside it in their own files.
//
// The machine these run on is small and noisy: compare variants as ratios
// within one run, never absolute numbers across runs.
//
// Typical use:
//
//	go test -run '^$' -bench BenchmarkChunkLatency -benchtime 2000x ./bench/
//	BENCH_OUT=/tmp/benchout go test -run '^$' -bench BenchmarkChunkLatency -benchtime 2000x ./bench/
//	go run ./bench/plot -in /tmp/benchout -out /tmp/benchout
package bench
