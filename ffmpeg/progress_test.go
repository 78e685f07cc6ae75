package ffmpeg

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func ExampleParseProgress() {
	out := `frame=13
fps=0.00
stream_0_0_q=-0.0
bitrate= 245.3kbits/s
total_size=15948
out_time_us=520000
out_time_ms=520000
out_time=00:00:00.520000
dup_frames=0
drop_frames=1
speed= 104x
progress=end
`
	_ = ParseProgress(strings.NewReader(out), func(p Progress) {
		fmt.Println(p.Frame, p.Bitrate, p.TotalSize, p.OutTime, p.Speed, p.DropFrames, p.End)
	})
	// Output:
	// 13 245.3kbits/s 15948 520ms 104 1 true
}

func TestParseProgress(t *testing.T) {
	t.Parallel()
	block := func(kv ...string) string { return strings.Join(kv, "\n") + "\n" }
	tests := []struct {
		name string
		in   string
		want []Progress
	}{
		{"empty", "", nil},
		{
			"first block is all N/A",
			block("frame=0", "fps=0.00", "bitrate=N/A", "total_size=N/A", "out_time_us=N/A", "out_time_ms=N/A", "out_time=N/A", "dup_frames=0", "drop_frames=0", "speed=N/A", "progress=continue"),
			[]Progress{{}},
		},
		{
			"two blocks",
			block("frame=25", "fps=25.5", "out_time_us=1000000", "speed=1.5x", "progress=continue") +
				block("frame=50", "out_time_us=2000000", "speed=2x", "total_size=1234", "progress=end"),
			[]Progress{
				{Frame: 25, FPS: 25.5, OutTime: time.Second, Speed: 1.5},
				{Frame: 50, OutTime: 2 * time.Second, Speed: 2, TotalSize: 1234, End: true},
			},
		},
		{
			"out_time_ms is microseconds too",
			block("out_time_ms=1500000", "progress=continue"),
			[]Progress{{OutTime: 1500 * time.Millisecond}},
		},
		{
			"out_time when no micro values",
			block("out_time_us=N/A", "out_time=01:02:03.250000", "progress=continue"),
			[]Progress{{OutTime: time.Hour + 2*time.Minute + 3250*time.Millisecond}},
		},
		{
			"out_time_us wins over out_time",
			block("out_time_us=700000", "out_time=00:00:09.000000", "progress=continue"),
			[]Progress{{OutTime: 700 * time.Millisecond}},
		},
		{
			"negative times clamp to zero",
			block("out_time_us=-23220", "out_time=-00:00:00.023220", "progress=continue"),
			[]Progress{{}},
		},
		{
			"crlf, spaces, unknown keys, junk lines",
			"frame= 7\r\nstream_1_0_q=28.0\r\nno equals sign\r\nspeed= 0.98x\r\nprogress=continue\r\n",
			[]Progress{{Frame: 7, Speed: 0.98}},
		},
		{
			"overlong line skipped",
			"frame=3\nx=" + strings.Repeat("y", 3*maxProgressLine) + "\nprogress=continue\n",
			[]Progress{{Frame: 3}},
		},
		{
			"unterminated last block is not reported",
			block("frame=1", "progress=continue") + "frame=2\n",
			[]Progress{{Frame: 1}},
		},
		{
			"last line without newline",
			"frame=4\nprogress=end",
			[]Progress{{Frame: 4, End: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []Progress
			// One byte per read shakes out buffering bugs.
			err := ParseProgress(iotest.OneByteReader(strings.NewReader(tt.in)), func(p Progress) { got = append(got, p) })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d blocks %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("block %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseProgressReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	n := 0
	err := ParseProgress(iotest.ErrReader(boom), func(Progress) { n++ })
	if !errors.Is(err, boom) || n != 0 {
		t.Errorf("err = %v, blocks = %d; want boom, 0", err, n)
	}
}
