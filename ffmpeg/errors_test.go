package ffmpeg

import (
	"errors"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		signaled   bool
		stopped    bool
		stderr     string
		want       error
		wantReason string // substring
	}{
		{"clean exit", 0, false, false, "", nil, ""},
		{"stopped wins", 255, false, true, "pipe:0: Invalid data found when processing input", ErrStopped, "stopped"},
		{"stopped by SIGKILL", 137, true, true, "", ErrStopped, "stopped"},
		{"oom killer", 137, true, false, "", ErrTransient, "SIGKILL"},
		{"sigterm from system", 143, true, false, "", ErrTransient, "SIGTERM"},
		{"segfault", 139, true, false, "pipe:0: Invalid data", ErrInternal, "SIGSEGV"},
		{"abort", 134, true, false, "", ErrInternal, "SIGABRT"},
		{
			"random bytes", 1, false, false,
			"[error] pipe:0: Invalid data found when processing input\n",
			ErrInvalidInput, "pipe:0: Invalid data found when processing input",
		},
		{
			"moov at end on a pipe", 1, false, false,
			"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55696786b980] [error] stream 1, offset 0x30: partial file\n" +
				"    Last message repeated 1 times\n" +
				"[error] pipe:0: Invalid data found when processing input\n" +
				"[error] Cannot determine format of input stream 0:0 after EOF\n" +
				"[fatal] Error marking filters as finished\n",
			ErrInvalidInput, "stream 1, offset 0x30: partial file",
		},
		{
			"moov not found", 1, false, false,
			"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\nfile:/spool/x.mp4: Invalid data found when processing input\n",
			ErrInvalidInput, "moov atom not found",
		},
		{
			"format not whitelisted", 1, false, false,
			"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x56250a182980] [error] Format not on whitelist 'matroska,webm'\n[error] pipe:0: Invalid argument\n",
			ErrInvalidInput, "Format not on whitelist 'matroska,webm'",
		},
		{
			"protocol not whitelisted", 1, false, false,
			"[file @ 0x55d5effbc180] [error] Protocol 'file' not on whitelist 'pipe'!\n[error] in.mp4: Invalid argument\n",
			ErrInvalidInput, "Protocol 'file' not on whitelist 'pipe'!",
		},
		{"no streams", 1, false, false, "[error] Output file #0 does not contain any stream\n", ErrInvalidInput, "does not contain any stream"},
		{
			"max pixels", 1, false, false,
			"[h264 @ 0x5] [IMGUTILS @ 0x7f] [error] Picture size 320x240 exceeds specified max pixel count 1000, see the documentation if you wish to increase it\n" +
				"[error] Error while opening decoder for input stream #0:0 : Invalid argument\n",
			ErrInvalidInput, "exceeds specified max pixel count",
		},
		{"input invalid argument", 1, false, false, "[error] pipe:0: Invalid argument\n", ErrInvalidInput, "pipe:0: Invalid argument"},
		{"input end of file", 1, false, false, "file:/spool/in: End of file\n", ErrInvalidInput, "End of file"},
		{"unknown encoder", 1, false, false, "[fatal] Unknown encoder 'libfoo'\n", ErrInternal, "Unknown encoder 'libfoo'"},
		{
			"unrecognized option", 1, false, false,
			"[error] Unrecognized option 'foo'.\n[fatal] Error splitting the argument list: Option not found\n",
			ErrInternal, "Unrecognized option 'foo'.",
		},
		{
			"bad preset beats generic output error", 1, false, false,
			"x264 [error]: invalid preset 'foo'\n[libx264 @ 0x5] [error] Error setting preset/tune foo/(null).\n" +
				"[error] Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0 - maybe incorrect parameters such as bit_rate, rate, width or height\n",
			ErrInternal, "invalid preset 'foo'",
		},
		{
			"generic output error", 1, false, false,
			"[error] Error initializing output stream 0:0 -- Error while opening encoder for output stream #0:0\n",
			ErrInternal, "Error initializing output stream 0:0",
		},
		{
			"input error beats generic output error", 1, false, false,
			"[libx264 @ 0x5] [error] width not divisible by 2 (321x240)\n[error] Error initializing output stream 0:0 -- Error while opening encoder\n",
			ErrInvalidInput, "width not divisible by 2",
		},
		{
			"sink went away", 1, false, false,
			"[error] av_interleaved_write_frame(): Broken pipe\n[error] Error writing trailer of pipe:3: Broken pipe\n",
			ErrTransient, "av_interleaved_write_frame(): Broken pipe",
		},
		{
			"disk full beats everything", 1, false, false,
			"[error] Error while decoding stream #0:0: Invalid data found when processing input\n[mp4 @ 0x1] Error writing: No space left on device\n",
			ErrNoSpace, "No space left on device",
		},
		{
			"a full spool disk explains the broken pipe before it", 1, false, false,
			"[error] av_interleaved_write_frame(): Broken pipe\n[mp4 @ 0x1] Error writing trailer of /spool/x.mp4: No space left on device\n",
			ErrNoSpace, "Error writing trailer of /spool/x.mp4: No space left on device",
		},
		{"quota", 1, false, false, "[mp4 @ 0x1] Error writing trailer of /spool/x.mp4: Disk quota exceeded\n", ErrNoSpace, "Disk quota exceeded"},
		{"enomem", 1, false, false, "[error] Error while filtering: Cannot allocate memory\n", ErrTransient, "Cannot allocate memory"},
		{"eagain", 1, false, false, "pipe:3: Resource temporarily unavailable\n", ErrTransient, "Resource temporarily unavailable"},
		{"unsupported codec", 1, false, false, "[error] Unsupported codec with id 0 for input stream 1\n", ErrInvalidInput, "Unsupported codec"},
		{"codec parameters", 1, false, false, "[mov @ 0x1] Could not find codec parameters for stream 0\n", ErrInvalidInput, "Could not find codec parameters"},
		{"signal we did not send", 255, false, false, "", ErrTransient, "signal"},
		{"spool file missing", 1, false, false, "[error] file:/spool/x.mp4: No such file or directory\n", ErrInternal, "No such file or directory"},
		{"unknown failure", 1, false, false, "[error] something odd\n[fatal] the real reason\n[error] trailing noise\n", ErrInternal, "the real reason"},
		{"no stderr", 1, false, false, "", ErrInternal, "exit status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kind, reason := Classify(tt.code, tt.signaled, tt.stopped, tt.stderr)
			if !errors.Is(kind, tt.want) || (kind == nil) != (tt.want == nil) {
				t.Fatalf("kind = %v, want %v (reason %q)", kind, tt.want, reason)
			}
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.wantReason)
			}
			if strings.HasPrefix(reason, "[") {
				t.Errorf("reason %q kept a log prefix", reason)
			}
		})
	}
}

func TestTruncatedInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stderr string
		want         bool
	}{
		{"clean", "", false},
		{"mp4 partial", "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] [error] stream 0, offset 0x10a64: partial file\n", true},
		{"aac", "[aac @ 0x1] [error] Input buffer exhausted before END element found\n", true},
		{"matroska", "[matroska,webm @ 0x1] [error] File ended prematurely\n", true},
		{"eof", "pipe:0: End of file\n", true},
		{"unrelated error", "[error] Unknown encoder 'libfoo'\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := TruncatedInput(tt.stderr); got != tt.want {
				t.Errorf("TruncatedInput = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{
			"exit", &Error{Op: "transcode", ExitCode: 1, Reason: "pipe:0: Invalid data found when processing input", Kind: ErrInvalidInput},
			"ffmpeg: transcode: invalid input: pipe:0: Invalid data found when processing input (exit status 1)",
		},
		{
			"signal", &Error{Op: "transcode", ExitCode: 137, Signal: "SIGKILL", Reason: "killed", Kind: ErrTransient},
			"ffmpeg: transcode: transient failure: killed (signal SIGKILL)",
		},
		{"no kind", &Error{Op: "probe"}, "ffmpeg: probe: failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if tt.err.Kind != nil && !errors.Is(tt.err, tt.err.Kind) {
				t.Errorf("errors.Is(err, Kind) = false")
			}
		})
	}
}

func TestCleanLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d47cd72940] stream 0, offset 0x30: partial file", "stream 0, offset 0x30: partial file"},
		{"[h264 @ 0x5] [IMGUTILS @ 0x7f] [error] Picture size", "Picture size"},
		{"[fatal] Unknown encoder 'x'", "Unknown encoder 'x'"},
		{"[not a prefix] keep", "[not a prefix] keep"},
		{"    Last message repeated 3 times", ""},
		{"x264 [error]: invalid preset", "x264 [error]: invalid preset"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := cleanLine(tt.in); got != tt.want {
				t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
