package ffmpeg

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Progress is one block of ffmpeg's -progress output. Values ffmpeg
// reports as "N/A" are zero.
type Progress struct {
	Frame      int64
	FPS        float64
	Bitrate    string // as ffmpeg prints it, e.g. "1234.5kbits/s"; "" for N/A
	TotalSize  int64  // bytes written to all outputs so far
	OutTime    time.Duration
	Speed      float64 // 1.5 for "1.5x"
	DupFrames  int64
	DropFrames int64
	End        bool // progress=end: the last block
}

// maxProgressLine bounds one key=value line; longer lines are skipped.
const maxProgressLine = 4096

// ParseProgress reads ffmpeg -progress output (key=value lines, each block
// ending with progress=continue or progress=end) and calls fn once per
// block. Unknown keys (stream_0_0_q, ...) are ignored. It returns nil at
// EOF and the read error otherwise.
//
// The output time is taken from out_time_us, else out_time_ms (which
// ffmpeg also prints in microseconds), else out_time (HH:MM:SS.micro);
// negative times (encoder priming) are reported as 0.
func ParseProgress(r io.Reader, fn func(Progress)) error {
	br := bufio.NewReaderSize(r, maxProgressLine)
	var (
		p       Progress
		timeSrc int // 3 = out_time_us, 2 = out_time_ms, 1 = out_time
		skip    bool
	)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			skip = true // rest of an overlong line follows; drop it all
			continue
		}
		if skip {
			skip = false
			line = nil
		}
		if len(line) > 0 {
			if parseProgressLine(bytes.TrimSpace(line), &p, &timeSrc) {
				fn(p)
				p, timeSrc = Progress{}, 0
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseProgressLine applies one line to p and reports whether it ended
// a block.
func parseProgressLine(line []byte, p *Progress, timeSrc *int) bool {
	k, v, ok := bytes.Cut(line, []byte{'='})
	if !ok {
		return false
	}
	val := strings.TrimSpace(string(v))
	na := val == "N/A" || val == ""
	switch string(bytes.TrimSpace(k)) {
	case "frame":
		p.Frame = parseInt(val)
	case "fps":
		p.FPS = parseFloat(val)
	case "bitrate":
		if !na {
			p.Bitrate = val
		}
	case "total_size":
		p.TotalSize = parseInt(val)
	case "out_time_us":
		if !na {
			p.OutTime, *timeSrc = usec(parseInt(val)), 3
		}
	case "out_time_ms":
		if !na && *timeSrc < 2 {
			p.OutTime, *timeSrc = usec(parseInt(val)), 2
		}
	case "out_time":
		if !na && *timeSrc < 1 {
			if d, ok := parseClock(val); ok {
				p.OutTime, *timeSrc = d, 1
			}
		}
	case "speed":
		p.Speed = parseFloat(strings.TrimSuffix(val, "x"))
	case "dup_frames":
		p.DupFrames = parseInt(val)
	case "drop_frames":
		p.DropFrames = parseInt(val)
	case "progress":
		p.End = val == "end"
		return true
	}
	return false
}

// maxClock bounds reported times (a year) so that absurd values cannot overflow a Duration.
const maxClock = 365 * 24 * time.Hour

func usec(n int64) time.Duration {
	if n < 0 {
		return 0
	}
	if n > int64(maxClock/time.Microsecond) {
		return maxClock
	}
	return time.Duration(n) * time.Microsecond
}

func parseInt(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func parseFloat(s string) float64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f != f {
		return 0
	}
	return f
}

// parseClock parses "HH:MM:SS.ffffff" (hours may exceed 24, and a
// leading "-" means a negative time, reported as 0).
func parseClock(s string) (time.Duration, bool) {
	if strings.HasPrefix(s, "-") {
		return 0, true
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || math.IsNaN(sec) {
		return 0, false
	}
	if h < 0 || m < 0 || sec < 0 {
		return 0, true // a negative time in any field: reported as 0, like a leading '-'
	}
	total := float64(h)*3600 + float64(m)*60 + sec
	if total >= maxClock.Seconds() {
		return maxClock, true
	}
	return time.Duration(math.Round(total * float64(time.Second))), true
}
