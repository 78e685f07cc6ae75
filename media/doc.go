// Package media runs one piece of media work with no NATS in it: a job's input through ffmpeg
// into its outputs, every buffer from one ring reservation. The worker (consumer, executor
// and settle around it) uses it for a whole job; --explain uses the same planning code, so the
// argv it prints is the one that runs.
//
// The files follow the data flow:
//
//	engine.go   Config, Engine, Task (job, attempt, reservation), Observer, Meter
//	input.go    the input stage: open, head, probe, spool; owns the head's buffers
//	mp4head.go, colourhead.go, sniff.go, capture.go
//	            what the head tells before any probe: an mp4 index at the end (spool), 8-bit
//	            SDR H.264 (no probe needed before ffmpeg), a multi-programme TS, a capture
//	            whose first keyframe is beyond the head
//	claims.go   the media checks, with the input's length measured, not taken from its header
//	plan.go     the one plan: outputs of an explicit Kind and the final ffmpeg spec
//	run.go      Run: input -> ffmpeg -> outputs as pipeline stages; probe beside ffmpeg
//	output.go   the output interface (writers, verify, publish, abort, unpublish) and the
//	            uniform rollback: a failed task removes every output it had published
//	file.go     a file or remote object (faststart included)
//	ladder.go   an HLS or DASH ladder: CMAF segments published as they complete
//	images.go   a poster, spread thumbnails or a sprite sheet
//	verify.go   per-stream checks of a file output before it is published, and its report
//	explain.go  the argv a task would run, without running it
//	features.go what a clip, a loudness normalisation, an overlay or an HDR output needs
//	            beside the plan: the first frame's HDR metadata, the loudness measurement
//	            (on the spooled input), the overlay image fetched and checked, their checks
//	            in the verification
//
// Errors are classified for the worker: *job.Error carries its class; the ffmpeg and storage
// packages' errors carry theirs; RolledBackError lists what a failed task took back.
package media
