package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"strings"
)

// Encoders lists the encoders this ffmpeg has (`ffmpeg -encoders`), e.g. libx264, libx265,
// libsvtav1, h264_nvenc: what a worker can advertise it is able to run.
func (r *Runner) Encoders(ctx context.Context) ([]string, error) {
	out, err := r.output(ctx, "-hide_banner", "-encoders")
	if err != nil {
		return nil, err
	}
	return ParseEncoders(out), nil
}

// ParseEncoders reads the listing of `ffmpeg -encoders`: after the legend's "------" line, one
// encoder a line as " V....D name  description".
func ParseEncoders(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	inList := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !inList {
			inList = strings.HasPrefix(line, "------")
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 2 && len(f[0]) == 6 {
			names = append(names, f[1])
		}
	}
	return names
}

// output runs ffmpeg with args and returns its stdout (at most 1 MiB).
func (r *Runner) output(ctx context.Context, args ...string) ([]byte, error) {
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	out := limitedBuffer{max: 1 << 20}
	cmd := r.command(ctx, r.cfg.FFmpeg, args)
	cmd.Stdout, cmd.Stderr = &out, tail
	if err := runGroup(cmd); err != nil {
		return nil, r.runError(ctx, "query", args, cmd, err, tail.release())
	}
	return out.b.Bytes(), nil
}
