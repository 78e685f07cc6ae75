package ffmpeg

import (
	"bytes"
	"sync"

	"github.com/valyala/bytebufferpool"
)

// tailBuffer keeps the last max bytes written to it. It holds at most
// 2*max+1 bytes: trimming only when twice full keeps the copy cost
// amortised, and a single huge write is cut before it is appended, so
// memory stays bounded whatever ffmpeg prints.
type tailBuffer struct {
	mu    sync.Mutex
	buf   *bytebufferpool.ByteBuffer
	max   int
	final string // set by release
	done  bool
}

func newTailBuffer(max int) *tailBuffer {
	return &tailBuffer{buf: bytebufferpool.Get(), max: max}
}

// Write never fails, so it can be an exec.Cmd's Stderr. It keeps one
// byte more than max so String can tell whether the kept window starts
// at a line boundary.
func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return n, nil
	}
	if len(p) > t.max {
		t.buf.B = append(t.buf.B[:0], p[len(p)-t.max-1:]...)
		return n, nil
	}
	if len(t.buf.B)+len(p) > 2*t.max+1 {
		keep := t.max + 1 - len(p)
		b := t.buf.B
		t.buf.B = b[:copy(b, b[len(b)-keep:])]
	}
	t.buf.B = append(t.buf.B, p...)
	return n, nil
}

// String returns the last max bytes, starting at a line boundary when the
// window cuts a line (unless the window is one unterminated line).
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done {
		return t.final
	}
	return t.snapshot()
}

func (t *tailBuffer) snapshot() string {
	b := t.buf.B
	if len(b) > t.max {
		cutsLine := b[len(b)-t.max-1] != '\n'
		b = b[len(b)-t.max:]
		if cutsLine {
			if i := bytes.IndexByte(b, '\n'); i >= 0 && i < len(b)-1 {
				b = b[i+1:]
			}
		}
	}
	return string(b)
}

// release freezes the tail and returns the buffer to the pool.
func (t *tailBuffer) release() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.done {
		t.final = t.snapshot()
		t.done = true
		bytebufferpool.Put(t.buf)
		t.buf = nil
	}
	return t.final
}
