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
// Overlay images (features.go) are more inputs of the run: spool files read with only their
// image demuxer (png_pipe, jpeg_pipe). The loudness measurement and the first-frame HDR probe
// are short runs of their own, on a spool file or the input's head.
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
//
// # ffmpeg 5.1 on pipes
//
// What the tests established, and the worker must know:
//
//   - mp4 and m4a outputs are fragmented (frag_keyframe+delay_moov+
//     default_base_moof) because the plain muxers seek back to write moov.
//     delay_moov, not empty_moov: the moov goes out with the first fragment,
//     when the muxer knows each stream's first timestamp, so it carries the
//     edit list that starts the video at its first frame (with empty_moov
//     the video starts one encoder reorder delay late). The AAC priming is
//     not trimmed by an edit list in fragmented files: the audio stream
//     starts one audio frame (~21 ms) before 0, its first real sample at 0.
//     The ipod muxer (m4a) accepts the same flags on a pipe.
//   - webm/mkv written to a pipe carry no duration and no cues (ffprobe
//     says N/A): the muxer cannot seek back to fill them in.
//   - mp4 with moov at the end cannot be read from a pipe: ffmpeg reads
//     past mdat, finds moov, cannot seek back, logs "partial file" and may
//     still exit 0 with an empty output. Spool such inputs to a file.
//   - a truncated or corrupt mp4 or matroska input also exits 0, with a
//     short or garbled output; Wait reports such runs as ErrInvalidInput
//     (DamagedInput) unless Config.TolerateInputErrors. MPEG-TS truncation
//     cannot be seen.
//   - ffmpeg probes up to 5 s (analyzeduration) or 16 MiB (ProbeDepth) of a
//     pipe before it writes anything or reports progress.
//   - SIGTERM does not interrupt ffmpeg blocked reading stdin (the read is
//     restarted), so Stop also closes stdin; a stop then takes
//     milliseconds instead of KillDelay.
//   - the parent-death signal fires when the OS thread that started
//     ffmpeg exits; Go only ends threads whose goroutine exits while
//     locked with runtime.LockOSThread, so do not call Start from such a
//     goroutine.
package ffmpeg
