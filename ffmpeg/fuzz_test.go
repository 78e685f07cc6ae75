package ffmpeg

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// Real -progress output (ffmpeg 5.1) is under testdata/fuzz/FuzzParseProgress; these are the
// shapes it takes, for f.Add.
var progressSeeds = []string{
	// A video+audio transcode: first block, last block.
	"frame=1\nfps=0.00\nstream_0_0_q=0.0\nbitrate=   6.7kbits/s\ntotal_size=36\nout_time_us=42667\nout_time_ms=42667\nout_time=00:00:00.042667\ndup_frames=0\ndrop_frames=0\nspeed= 2.2x\nprogress=continue\n" +
		"frame=50\nfps=0.00\nstream_0_0_q=-1.0\nbitrate= 681.5kbits/s\ntotal_size=170838\nout_time_us=2005333\nout_time_ms=2005333\nout_time=00:00:02.005333\ndup_frames=0\ndrop_frames=0\nspeed=5.99x\nprogress=end\n",
	// Audio only: no frame or fps lines; the first block is all N/A.
	"bitrate=N/A\ntotal_size=0\nout_time_us=0\nout_time_ms=0\nout_time=00:00:00.000000\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue\n" +
		"bitrate=  76.7kbits/s\ntotal_size=4896\nout_time_us=510839\nout_time_ms=510839\nout_time=00:00:00.510839\ndup_frames=0\ndrop_frames=0\nspeed=16.8x\nprogress=end\n",
	// Encoder priming: negative times.
	"frame=0\nfps=0.00\nbitrate=N/A\ntotal_size=N/A\nout_time_us=-23220\nout_time_ms=-23220\nout_time=-00:00:00.023220\ndup_frames=0\ndrop_frames=0\nspeed=N/A\nprogress=continue\n",
	// Two outputs, CRLF, junk and unknown keys, a block cut off by EOF.
	"frame= 7\r\nstream_0_0_q=28.0\r\nstream_1_0_q=29.0\r\nno equals sign\r\nspeed= 0.98x\r\nprogress=continue\r\nframe=8\n",
	"out_time_us=N/A\nout_time=01:02:03.250000\nprogress=continue\n",
	"out_time_ms=1500000\nprogress=continue\n",
	"frame=4\nprogress=end",
	"frame=3\nx=" + strings.Repeat("y", 5000) + "\nprogress=continue\n",
	"",
}

// FuzzParseProgress feeds arbitrary bytes to ParseProgress. What it guarantees, and what is
// checked:
//   - it never panics and always terminates: it consumes its reader (read with one byte per
//     Read, so a loop that stops making progress is caught by counting reads, not by a timer)
//     and reports at most one block per "progress" key it saw;
//   - the result does not depend on how the input is split into reads;
//   - counters are never invented: for inputs whose lines fit in its line buffer, every
//     block's frame, total_size, dup_frames and drop_frames are exactly the last value of that
//     key within the block (0 when absent or not a number), reset between blocks; so a negative
//     counter is reported only when ffmpeg sent that negative number; End is progress=end;
//   - OutTime is never negative (documented: negative times, encoder priming, are 0).
func FuzzParseProgress(f *testing.F) {
	for _, s := range progressSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: iotest.OneByteReader(bytes.NewReader(data)), limit: len(data) + 8}
		var got []Progress
		if err := ParseProgress(cr, func(p Progress) { got = append(got, p) }); err != nil {
			t.Fatalf("ParseProgress on a byte slice: %v", err)
		}
		if cr.exceeded {
			t.Fatalf("ParseProgress kept reading after EOF: %d reads of %d bytes", cr.reads, len(data))
		}
		if keys := bytes.Count(data, []byte("progress")); len(got) > keys {
			t.Fatalf("%d blocks from an input with %d progress keys", len(got), keys)
		}

		var whole []Progress
		if err := ParseProgress(bytes.NewReader(data), func(p Progress) { whole = append(whole, p) }); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(whole, got) {
			t.Fatalf("result depends on read sizes:\n one read  %+v\n byte-wise %+v", whole, got)
		}

		for i, p := range got {
			if p.OutTime < 0 {
				t.Errorf("block %d: negative OutTime %v (negative times must be reported as 0)", i, p.OutTime)
			}
		}

		want, ok := progressModel(data)
		if !ok {
			return
		}
		if len(want) != len(got) {
			t.Fatalf("%d blocks, want %d (one per progress= line)", len(got), len(want))
		}
		for i, p := range got {
			w := want[i]
			if p.Frame != w.Frame || p.TotalSize != w.TotalSize || p.DupFrames != w.DupFrames || p.DropFrames != w.DropFrames || p.End != w.End {
				t.Errorf("block %d: frame=%d total_size=%d dup=%d drop=%d end=%v; the input said frame=%d total_size=%d dup=%d drop=%d end=%v",
					i, p.Frame, p.TotalSize, p.DupFrames, p.DropFrames, p.End, w.Frame, w.TotalSize, w.DupFrames, w.DropFrames, w.End)
			}
		}
	})
}

// progressModel is what the input says, block by block: the counters and End of each block,
// from the last line of each key in it. ok is false when a line is too long for
// ParseProgress's buffer (it skips those, which the model does not describe).
func progressModel(data []byte) ([]Progress, bool) {
	lines := bytes.Split(data, []byte{'\n'})
	for _, l := range lines {
		if len(l)+1 >= maxProgressLine {
			return nil, false
		}
	}
	var (
		out []Progress
		cur Progress
	)
	num := func(s string) int64 {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return 0
		}
		return n
	}
	for _, l := range lines {
		k, v, ok := strings.Cut(string(bytes.TrimSpace(l)), "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "frame":
			cur.Frame = num(v)
		case "total_size":
			cur.TotalSize = num(v)
		case "dup_frames":
			cur.DupFrames = num(v)
		case "drop_frames":
			cur.DropFrames = num(v)
		case "progress":
			cur.End = strings.TrimSpace(v) == "end"
			out = append(out, cur)
			cur = Progress{}
		}
	}
	return out, true
}

// countingReader fails the read that would make ParseProgress read more than limit times.
type countingReader struct {
	r        io.Reader
	reads    int
	limit    int
	exceeded bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	if c.reads > c.limit {
		c.exceeded = true
		return 0, io.EOF
	}
	return c.r.Read(p)
}

// probeSeeds are f.Add seeds for FuzzParseProbe besides testdata/rotated.json; real ffprobe
// output of mp4, mkv, webm, m4a, mpegts, mp3 with cover art, a rotated phone video, a pipe and
// failures is under testdata/fuzz/FuzzParseProbe.
var probeSeeds = []string{
	`{"streams":[
		{"index":0,"codec_type":"video","codec_name":"h264","tags":{"rotate":"270"}},
		{"index":1,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":90}]},
		{"index":2,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":180}],"tags":{"rotate":"90"}},
		{"index":3,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":-180.0}]}
	],"format":{"format_name":"mov"}}`,
	`{"streams":[
		{"index":0,"codec_type":"video","codec_name":"mjpeg","width":600,"height":600,"disposition":{"attached_pic":1}},
		{"index":1,"codec_type":"audio","codec_name":"opus","sample_rate":"48000","channels":2,"tags":{"DURATION":"00:01:02.500000000"}},
		{"index":2,"codec_type":"subtitle","codec_name":"subrip","duration":"N/A"}
	],"format":{"format_name":"matroska,webm","duration":"N/A","bit_rate":"N/A"}}`,
	`{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":720,"height":576,"sample_aspect_ratio":"16:15","avg_frame_rate":"25/1","field_order":"tt","side_data_list":[{"side_data_type":"Display Matrix","rotation":-45.5}]}],"format":{"format_name":"mpegts","duration":"1.000000","size":"330880","bit_rate":"2647040"}}`,
	"{\n\n}",
	"nope",
	"",
}

// FuzzParseProbe feeds arbitrary bytes to ParseProbe. What it guarantees, and what is checked:
//   - it never panics; an error comes with no result and a result with no error;
//   - it is deterministic: the same JSON gives the same result;
//   - every stream in the JSON is a stream of the result, and Width and Height are the JSON's
//     numbers, passed through (ParseProbe does not clamp them: a negative width in the JSON is
//     a negative Width, which job.CheckMedia refuses; so the check is "never invented", not
//     ">= 0");
//   - Rotation is 0, 90, 180 or 270;
//   - durations are never negative (the documented "0 if unknown"; seconds() refuses negative
//     numbers).
func FuzzParseProbe(f *testing.F) {
	rotated, err := os.ReadFile(filepath.Join("testdata", "rotated.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rotated)
	for _, s := range probeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseProbe(data)
		if err != nil {
			if res != nil {
				t.Fatalf("error %v with a result %+v", err, res)
			}
			return
		}
		if res == nil {
			t.Fatal("no error and no result")
		}
		again, err := ParseProbe(data)
		if err != nil || !reflect.DeepEqual(res, again) {
			t.Fatalf("not deterministic:\n first %+v\nsecond %+v (%v)", res, again, err)
		}
		var raw struct {
			Streams []struct {
				Width  int `json:"width"`
				Height int `json:"height"`
			} `json:"streams"`
		}
		if err := json.Unmarshal(data, &raw); err != nil {
			t.Fatalf("ParseProbe accepted JSON that does not decode: %v", err)
		}
		if len(res.Streams) != len(raw.Streams) {
			t.Fatalf("%d streams, the JSON has %d", len(res.Streams), len(raw.Streams))
		}
		if res.Duration < 0 {
			t.Errorf("format duration %v is negative", res.Duration)
		}
		for i, s := range res.Streams {
			switch s.Rotation {
			case 0, 90, 180, 270:
			default:
				t.Errorf("stream %d: rotation %d", i, s.Rotation)
			}
			if s.Width != raw.Streams[i].Width || s.Height != raw.Streams[i].Height {
				t.Errorf("stream %d: %dx%d, the JSON says %dx%d", i, s.Width, s.Height, raw.Streams[i].Width, raw.Streams[i].Height)
			}
			if s.Duration < 0 {
				t.Errorf("stream %d: duration %v is negative", i, s.Duration)
			}
		}
	})
}
