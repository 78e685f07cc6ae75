// Package sandbox confines the ffmpeg and ffprobe children of the worker on Linux, in layers:
// a network namespace of their own (no interfaces: they read and write pipes only),
// no_new_privs, a seccomp filter that refuses what a decoder never needs, Landlock (read-only
// system paths, read-write on the job's own spool files) and an unprivileged user when the
// worker runs as root. A layer the kernel lacks is left out and shown in Status; ModeStrict
// refuses to start without every layer.
//
// A child is started as a re-exec of the worker's own binary (/proc/self/exe) that an init
// hook of this package catches, so it works from the transcoder binary and from any test
// binary that links this package, without a helper binary:
//
//	worker ──▶ launcher (env TRANSCODER_SANDBOX_EXEC=1, new netns, own process group)
//	              └─▶ apply (=2: uid, no_new_privs, Landlock, seccomp, rlimits) ══exec══▶ ffmpeg
//
// The launcher stays ffmpeg's parent: when the worker dies (parent-death signal, or EOF on the
// control socket the worker holds), it SIGKILLs ffmpeg and reaps it before it exits, so no
// ffmpeg outlives the worker even for the moment an orphan waits for PID 1. It exits with
// ffmpeg's status (re-raising a fatal signal) and reports, on the control socket, whether
// ffmpeg used up its CPU limit, which only ffmpeg's own rlimit record can tell.
package sandbox
