package ffmpeg

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{"under the limit", 16, []string{"abc\n", "def\n"}, "abc\ndef\n"},
		{"exactly full", 8, []string{"abc\n", "def\n"}, "abc\ndef\n"},
		{"drops whole lines from the front", 10, []string{"line1\n", "line2\n", "line3\n"}, "line3\n"},
		{"one huge write", 8, []string{strings.Repeat("x", 100) + "\nend\n"}, "end\n"},
		{"no newline keeps bytes", 4, []string{"abcdefgh"}, "efgh"},
		{"huge write ending on a boundary", 12, []string{strings.Repeat("ab\n", 100)}, "ab\nab\nab\nab\n"},
		{"window cuts a line", 5, []string{"abc\n", "defg\n", "hi\n"}, "hi\n"},
		{"many small writes", 12, strings.SplitAfter(strings.Repeat("ab\n", 100), "\n"), "ab\nab\nab\nab\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := newTailBuffer(tt.max)
			for _, w := range tt.writes {
				if n, err := tb.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				if c := cap(tb.buf.B); len(tb.buf.B) > 2*tt.max+1 {
					t.Fatalf("buffer holds %d bytes (cap %d), limit %d", len(tb.buf.B), c, 2*tt.max)
				}
			}
			if got := tb.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := tb.release(); got != tt.want {
				t.Errorf("release = %q, want %q", got, tt.want)
			}
			// Frozen after release.
			_, _ = tb.Write([]byte("more\n"))
			if got := tb.String(); got != tt.want {
				t.Errorf("after release String = %q, want %q", got, tt.want)
			}
		})
	}
}
