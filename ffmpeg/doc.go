// Package ffmpeg builds ffmpeg/ffprobe command lines from typed specs,
// supervises the ffmpeg process that a transcode job runs in, parses its
// -progress stream, keeps a bounded tail of its stderr and classifies how
// it failed.
//
// ffmpeg only ever sees pipes and worker-written spool files: input comes
// from stdin (pipe:0) or from a local file opened through the "file:"
// protocol, each output goes to its own pipe (pipe:3, pipe:4, ...) and
// progress to the pipe after the last output. Protocol and demuxer
// whitelists are always set, so a crafted input cannot make ffmpeg open a
// URL, a playlist (hls, dash, concat) or a synthetic source (lavfi).
//
// Every process runs in its own process group with a parent-death signal,
// so neither ffmpeg nor anything it started outlives the worker. Stopping
// is graceful first (SIGTERM to the group, stdin closed) and forced after
// Config.KillDelay (SIGKILL to the group).
//
// Errors are *Error values whose Kind is one of ErrInvalidInput,
// ErrTransient, ErrInternal or ErrStopped. The package classifies; it
// never decides whether to retry.
//
// Logging: ffmpeg runs with "-loglevel level+error". Only error and fatal
// messages are printed, which keeps the stderr tail made of the lines that
// matter for classification, and each line carries its level tag
// ("[error]", "[fatal]") so a reader of the tail can tell the fatal line
// from the ones before it. Classify strips the tags and the
// "[demuxer @ 0x...]" context prefixes when it picks a reason.
package ffmpeg
