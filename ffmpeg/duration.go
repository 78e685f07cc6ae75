package ffmpeg

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MeasureDuration reads every packet of a local file and returns where its last one ends. It is
// for outputs whose container carries no duration: webm/mkv written to a pipe cannot seek back
// to record it. Memory stays constant whatever the file's length.
func (r *Runner) MeasureDuration(ctx context.Context, path string) (time.Duration, error) {
	if path == "" || strings.ContainsRune(path, 0) {
		return 0, &SpecError{Field: "path", Msg: "empty or contains NUL"}
	}
	args := []string{"-v", "error", "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0",
		"-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "file:" + path}
	tail := newTailBuffer(r.cfg.StderrTail)
	defer tail.release()
	end := &packetEnd{}
	cmd := r.command(ctx, r.cfg.FFprobe, args)
	cmd.Stdout, cmd.Stderr = end, tail
	g := &group{}
	cmd.Cancel = func() error { g.signal(syscall.SIGKILL); return nil }
	if err := g.start(cmd); err != nil {
		return 0, startErr(ctx, "probe", args, err)
	}
	g.awaitExit()
	if err := cmd.Wait(); err != nil {
		return 0, r.runError(ctx, "probe", args, cmd, err, tail.release())
	}
	_, _ = end.Write([]byte{'\n'}) // flush a last line without a newline
	return time.Duration(end.max * float64(time.Second)), nil
}

// packetEnd parses "pts_time,duration_time" lines as they stream by, keeping the latest end.
type packetEnd struct {
	line []byte
	max  float64
}

func (p *packetEnd) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(p.line) < 256 {
				p.line = append(p.line, b...)
			}
			break
		}
		p.line = append(p.line, b[:i]...)
		p.parse()
		p.line = p.line[:0]
		b = b[i+1:]
	}
	return n, nil
}

func (p *packetEnd) parse() {
	f := strings.Split(strings.TrimSpace(string(p.line)), ",")
	if len(f) == 0 {
		return
	}
	pts, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return
	}
	if len(f) > 1 {
		if d, err := strconv.ParseFloat(f[1], 64); err == nil {
			pts += d
		}
	}
	if pts > p.max {
		p.max = pts
	}
}
