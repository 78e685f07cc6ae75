package ffmpeg

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Error kinds. Every *Error returned by this package has one of them as
// Kind, so callers can use errors.Is to decide what to do.
var (
	// ErrInvalidInput: the media (or the job's choice of streams) cannot
	// be processed; retrying the same input will fail the same way.
	ErrInvalidInput = errors.New("ffmpeg: invalid input")
	// ErrTransient: the process died for reasons outside the job (killed
	// by the system, out of memory or disk, the output reader went away).
	ErrTransient = errors.New("ffmpeg: transient failure")
	// ErrInternal: our argv or environment is wrong, or ffmpeg crashed.
	ErrInternal = errors.New("ffmpeg: internal error")
	// ErrStopped: we stopped the process (context canceled or Stop).
	ErrStopped = errors.New("ffmpeg: stopped")
	// ErrResourceLimit: the process used up a limit the Runner set on it
	// (Config.MaxCPUTime, Config.MaxMemory). It also matches
	// ErrInvalidInput: the limits are the budget of one job, so the same
	// input fails the same way on every worker configured alike, and a
	// decompression bomb must not be retried. An operator who sees it on
	// good media raises the limit.
	ErrResourceLimit error = &subKind{"ffmpeg: resource limit exceeded", ErrInvalidInput}
	// ErrNoSpace: ffmpeg could not write a file (ENOSPC or EDQUOT: "No space left on device",
	// "Disk quota exceeded"). It also matches ErrTransient: another worker, or this one
	// later, may have room. The files ffmpeg writes are the caller's spool files.
	ErrNoSpace error = &subKind{"ffmpeg: no space left on device", ErrTransient}
)

// subKind is an error kind that also matches a broader one.
type subKind struct {
	msg    string
	parent error
}

func (k *subKind) Error() string { return k.msg }
func (k *subKind) Unwrap() error { return k.parent }

// Error describes a failed ffmpeg or ffprobe run with the diagnostics a
// dead-letter record needs.
type Error struct {
	Op         string   // "probe" | "transcode" | "version"
	Args       []string // argv without the program name
	ExitCode   int      // exit status; 128+signal when Signal is set
	Signal     string   // e.g. "SIGKILL" when the process died of a signal
	Reason     string   // one human line, usually the most relevant stderr line
	StderrTail string   // last Config.StderrTail bytes of stderr
	Kind       error    // ErrInvalidInput, ErrTransient, ErrInternal or ErrStopped
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("ffmpeg: ")
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Kind != nil {
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "ffmpeg: "))
	} else {
		b.WriteString("failed")
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	switch {
	case e.Signal != "":
		b.WriteString(" (signal ")
		b.WriteString(e.Signal)
		b.WriteString(")")
	case e.ExitCode != 0:
		b.WriteString(" (exit status ")
		b.WriteString(strconv.Itoa(e.ExitCode))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns Kind, so errors.Is(err, ErrInvalidInput) works.
func (e *Error) Unwrap() error { return e.Kind }

// category is what a stderr pattern says about a failure. Order is
// priority: a resource problem explains the cascade of errors after it,
// a bad option is our bug even if the input was also bad, and the
// generic "could not open the output" lines only count when nothing more
// specific matched.
type category int

const (
	catNone category = iota
	catTransient
	catInternal
	catInput
	catWeakInternal
)

// noSpacePatterns are the transient lines that mean a full disk (ErrNoSpace).
var noSpacePatterns = []string{"no space left on device", "disk quota exceeded"}

var transientPatterns = []string{
	"no space left on device",
	"disk quota exceeded",
	"cannot allocate memory",
	"out of memory",
	"resource temporarily unavailable",
	"too many open files",
	"broken pipe", // only outputs are written, so the sink went away
}

var internalPatterns = []string{
	"unknown encoder",
	"unrecognized option",
	"option not found",
	"error splitting the argument list",
	"missing argument for option",
	"no such filter",
	"error setting option",
	"error setting preset",
	"invalid preset",
	"muxer does not support non seekable output",
	"unable to find a suitable output format",
	"requested output format",
	"at least one output file must be specified",
	// Inputs on disk are spool files the worker wrote: if one is missing
	// or unreadable, that is our bug, not the media's.
	"no such file or directory",
	"permission denied",
}

var inputPatterns = []string{
	"invalid data found when processing input",
	"moov atom not found",
	"could not find codec parameters",
	"partial file",
	"end of file",
	"ended prematurely",
	"does not contain any stream",
	"unsupported codec",
	"decoder (codec",
	"error while decoding",
	"error while opening decoder",
	"cannot determine format of input stream",
	"not in allowed list",
	"not on whitelist", // "Protocol 'x' not on whitelist", "Format not on whitelist"
	"invalid nal unit",
	"header missing",
	"ebml header parsing failed",
	"exceeds specified max pixel count",
	"not divisible by 2", // odd input dimensions kept for a 4:2:0 encoder
	// Damage ffmpeg conceals or skips, exiting 0 (see DamagedInput).
	"corrupt decoded frame",
	"packet corrupt",
	"error splitting the input into nal units",
	"missing picture in access unit",
	"concealing",
	"input buffer exhausted",
}

var weakInternalPatterns = []string{
	"error initializing output stream",
	"could not write header",
	"error while opening encoder",
}

// inputLinePrefixes name the input in ffmpeg's "<url>: <error>" lines:
// Args always spells it pipe:0 or file:<path>.
var inputLinePrefixes = []string{"pipe:0:", "file:"}

// Classify maps how a process ended to an error kind and a one-line
// reason. exitCode is the exit status, or 128+signal number when signaled
// is true (the shell convention, so SIGKILL is 137 and SIGSEGV 139).
// stopped means we asked the process to stop (context or Stop). It
// returns (nil, "") for a clean exit.
//
// Rules, first match wins:
//   - stopped by us: ErrStopped;
//   - killed by SIGKILL, SIGTERM, SIGINT, SIGHUP, SIGPIPE (not by us:
//     OOM killer, system shutdown): ErrTransient;
//   - any other signal (SIGSEGV, SIGABRT, ...): ErrInternal, ffmpeg crashed;
//   - stderr shows a resource problem (disk, memory, EAGAIN, broken pipe
//     on an output): ErrTransient (ErrNoSpace, which matches it, for a
//     full disk or quota);
//   - stderr shows a bad option (unknown encoder, unrecognized option):
//     ErrInternal;
//   - stderr shows bad media (invalid data, moov atom not found, partial
//     file, no streams, not on whitelist, decode errors): ErrInvalidInput;
//   - stderr shows only a generic output setup failure: ErrInternal;
//   - a stderr line starts with the input's name (pipe:0: or file:):
//     ErrInvalidInput;
//   - exit status 255 or 123 (ffmpeg got a termination signal we did not
//     send): ErrTransient;
//   - anything else: ErrInternal.
//
//nolint:staticcheck // ST1008: (kind, reason) is the published signature.
func Classify(exitCode int, signaled bool, stopped bool, stderr string) (kind error, reason string) {
	v := classify(exitCode, signaled, stopped, stderr)
	return v.kind, v.reason
}

// verdict is Classify's answer plus the stderr category that decided it.
type verdict struct {
	kind   error
	reason string
	cat    category
}

func classify(exitCode int, signaled, stopped bool, stderr string) verdict {
	if stopped {
		return verdict{ErrStopped, "stopped", catNone}
	}
	if signaled {
		sig := syscall.Signal(exitCode - 128)
		name := unix.SignalName(sig)
		if name == "" {
			name = "signal " + strconv.Itoa(int(sig))
		}
		switch sig {
		case syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE:
			return verdict{ErrTransient, "killed by " + name + " (not by us: out of memory or shutdown?)", catNone}
		default:
			return verdict{ErrInternal, "crashed with " + name, catNone}
		}
	}
	if exitCode == 0 {
		return verdict{nil, "", catNone}
	}
	cat, line := matchStderr(stderr)
	switch cat {
	case catTransient:
		if l := noSpaceLine(stderr); l != "" {
			return verdict{ErrNoSpace, l, cat} // the full disk explains a broken pipe after it
		}
		return verdict{ErrTransient, line, cat}
	case catInternal, catWeakInternal:
		return verdict{ErrInternal, line, cat}
	case catInput:
		return verdict{ErrInvalidInput, line, cat}
	}
	if l := inputLine(stderr); l != "" {
		return verdict{ErrInvalidInput, l, catInput}
	}
	last := lastLine(stderr)
	if exitCode == 255 || exitCode == 123 {
		if last == "" {
			last = "terminated by a signal we did not send"
		}
		return verdict{ErrTransient, last, catNone}
	}
	if last == "" {
		last = "exit status " + strconv.Itoa(exitCode)
	}
	return verdict{ErrInternal, last, catNone}
}

// matchStderr returns the highest-priority category any line matches and
// the first line of that category.
func matchStderr(stderr string) (category, string) {
	best, bestLine := catNone, ""
	for _, raw := range strings.Split(stderr, "\n") {
		line := cleanLine(raw)
		if line == "" {
			continue
		}
		c := lineCategory(strings.ToLower(line))
		if c != catNone && (best == catNone || c < best) {
			best, bestLine = c, line
		}
	}
	return best, bestLine
}

func lineCategory(lower string) category {
	for _, set := range []struct {
		cat      category
		patterns []string
	}{
		{catTransient, transientPatterns},
		{catInternal, internalPatterns},
		{catInput, inputPatterns},
		{catWeakInternal, weakInternalPatterns},
	} {
		for _, p := range set.patterns {
			if strings.Contains(lower, p) {
				return set.cat
			}
		}
	}
	return catNone
}

func noSpaceLine(stderr string) string {
	for _, raw := range strings.Split(stderr, "\n") {
		line := cleanLine(raw)
		for _, p := range noSpacePatterns {
			if strings.Contains(strings.ToLower(line), p) {
				return line
			}
		}
	}
	return ""
}

func inputLine(stderr string) string {
	for _, raw := range strings.Split(stderr, "\n") {
		line := cleanLine(raw)
		for _, p := range inputLinePrefixes {
			if strings.HasPrefix(line, p) {
				return line
			}
		}
	}
	return ""
}

// lastLine prefers the last fatal-level line, then the last line at all.
func lastLine(stderr string) string {
	fatal, last := "", ""
	for _, raw := range strings.Split(stderr, "\n") {
		line := cleanLine(raw)
		if line == "" {
			continue
		}
		last = line
		if strings.Contains(raw, "[fatal]") || strings.Contains(raw, "[panic]") {
			fatal = line
		}
	}
	if fatal != "" {
		return fatal
	}
	return last
}

var logLevels = map[string]bool{
	"quiet": true, "panic": true, "fatal": true, "error": true, "warning": true,
	"info": true, "verbose": true, "debug": true, "trace": true,
}

// cleanLine strips "[mov,mp4,... @ 0x55d4...]" context prefixes and
// "[error]" level tags, and drops ffmpeg's "Last message repeated" noise.
func cleanLine(s string) string {
	s = strings.TrimSpace(s)
	for strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			break
		}
		inner := s[1:end]
		if !strings.Contains(inner, " @ ") && !logLevels[inner] {
			break
		}
		s = strings.TrimSpace(s[end+1:])
	}
	if strings.HasPrefix(s, "Last message repeated") {
		return ""
	}
	return s
}

// TruncatedInput reports whether stderr shows that a demuxer or decoder
// hit the end of the input early. ffmpeg 5.1 exits 0 on a truncated mp4
// (it logs "stream 0, offset 0x...: partial file") and on a truncated
// matroska file ("File ended prematurely"), so a zero exit status alone
// does not prove the whole input was transcoded. MPEG-TS has no length to
// compare with, so its truncation is not detectable here.
func TruncatedInput(stderr string) bool {
	lower := strings.ToLower(withoutPipeEOFNoise(stderr))
	for _, p := range []string{"partial file", "input buffer exhausted", "end of file", "ended prematurely"} {
		if strings.Contains(lower, p) {
			return true
		}
	}
	return false
}

// truncationPatterns are the demuxers' words for an input that ended early.
var truncationPatterns = []string{"partial file", "ended prematurely", "end of file"}

// DamagedInput reports whether the stderr of a run that exited 0 shows
// that part of the input could not be read or decoded: ffmpeg 5.1 exits 0
// on a truncated mp4 or matroska file and on corrupt packets it skipped or
// concealed, so its output silently lacks or garbles part of the input.
// With -loglevel error every line is an error; those that describe the
// input (the ErrInvalidInput patterns of Classify) count. reason is
// "input is truncated: <line>" or "input is damaged: <line>".
func DamagedInput(stderr string) (reason string, damaged bool) {
	first := ""
	for _, raw := range strings.Split(withoutPipeEOFNoise(stderr), "\n") {
		line := cleanLine(raw)
		if line == "" {
			continue
		}
		lower := strings.ToLower(line)
		for _, p := range truncationPatterns {
			if strings.Contains(lower, p) {
				return "input is truncated: " + line, true
			}
		}
		if first == "" && lineCategory(lower) == catInput {
			first = line
		}
	}
	if first == "" {
		return "", false
	}
	return "input is damaged: " + first, true
}

// withoutPipeEOFNoise drops what the mov demuxer logs, on a pipe only, when the file's last
// box declares more bytes than the file holds: "root atom offset 0x...: partial file" (it
// looked for a next box past the end) and the "<input>: Invalid data found when processing
// input" that follows each. Every sample the index names was read by then: ffmpeg reading the
// same bytes from a file says nothing, and a sample really cut short still shows, as
// "stream N, offset 0x...: partial file" or as the decoder's error on it.
func withoutPipeEOFNoise(stderr string) string {
	if !strings.Contains(stderr, "root atom offset") {
		return stderr
	}
	var b strings.Builder
	afterRoot := false
	for _, raw := range strings.Split(stderr, "\n") {
		lower := strings.ToLower(cleanLine(raw))
		switch {
		case lower == "": // "Last message repeated": the pair it repeats is dropped
			continue
		case strings.HasPrefix(lower, "root atom offset") && strings.HasSuffix(lower, ": partial file"):
			afterRoot = true
			continue
		case afterRoot && isInputLine(lower) && strings.HasSuffix(lower, ": invalid data found when processing input"):
			afterRoot = false
			continue
		}
		afterRoot = false
		b.WriteString(raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// isInputLine reports whether a cleaned, lower-cased stderr line is about the input.
func isInputLine(lower string) bool {
	for _, p := range inputLinePrefixes {
		if strings.HasPrefix(lower, p) {
			return true
		}
	}
	return false
}

// SkippedFrames counts, in ffmpeg's stderr tail, the video frames its decoder could not make:
// a capture that starts mid-GOP has frames before its first keyframe whose references are
// missing ("no frame!" from H.264, "Could not find ref" from HEVC, each a frame, the repeats
// folded into "Last message repeated N times"). A lower bound when the tail was cut.
func SkippedFrames(stderr string) int {
	n, last := 0, false
	for _, line := range strings.Split(stderr, "\n") {
		switch {
		case strings.Contains(line, "no frame!") || strings.Contains(line, "Could not find ref with POC"):
			n++
			last = true
		case last && strings.Contains(line, "Last message repeated"):
			_, rest, _ := strings.Cut(line, "Last message repeated")
			var k int
			if _, err := fmt.Sscanf(rest, " %d times", &k); err == nil {
				n += k
			}
		default:
			last = false
		}
	}
	return n
}
