package ffmpeg

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseProbe(t *testing.T) {
	t.Parallel()
	rotated, err := os.ReadFile(filepath.Join("testdata", "rotated.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		json    string
		want    ProbeResult
		wantErr bool
	}{
		{
			name: "rotated phone video (displaymatrix -90 = 90 clockwise)",
			json: string(rotated),
			want: ProbeResult{
				FormatName: "mov,mp4,m4a,3gp,3g2,mj2", Duration: 10010 * time.Millisecond, BitRate: 4190000, Size: 5242880,
				Streams: []Stream{
					{Index: 0, Type: "video", Codec: "h264", Width: 1920, Height: 1080, PixFmt: "yuv420p", Rotation: 90, SAR: "1:1",
						FrameRate: 30000.0 / 1001, FieldOrder: "progressive", Duration: 10010 * time.Millisecond, Default: true},
					{Index: 1, Type: "audio", Codec: "aac", Channels: 2, SampleRate: 44100, Duration: 10 * time.Second, Default: true},
				},
			},
		},
		{
			name: "legacy rotate tag and counterclockwise matrix",
			json: `{"streams":[
				{"index":0,"codec_type":"video","codec_name":"h264","tags":{"rotate":"270"}},
				{"index":1,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":90}]},
				{"index":2,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":180}],"tags":{"rotate":"90"}},
				{"index":3,"codec_type":"video","codec_name":"h264","side_data_list":[{"side_data_type":"Display Matrix","rotation":-180.0}]}
			],"format":{"format_name":"mov"}}`,
			want: ProbeResult{FormatName: "mov", Streams: []Stream{
				{Index: 0, Type: "video", Codec: "h264", Rotation: 270},
				{Index: 1, Type: "video", Codec: "h264", Rotation: 270},
				{Index: 2, Type: "video", Codec: "h264", Rotation: 180},
				{Index: 3, Type: "video", Codec: "h264", Rotation: 180},
			}},
		},
		{
			name: "matroska durations in tags, N/A numbers, cover art",
			json: `{"streams":[
				{"index":0,"codec_type":"video","codec_name":"mjpeg","width":600,"height":600,"disposition":{"attached_pic":1}},
				{"index":1,"codec_type":"audio","codec_name":"opus","sample_rate":"48000","channels":2,"tags":{"DURATION":"00:01:02.500000000"}},
				{"index":2,"codec_type":"subtitle","codec_name":"subrip","duration":"N/A"}
			],"format":{"format_name":"matroska,webm","duration":"N/A","bit_rate":"N/A"}}`,
			want: ProbeResult{FormatName: "matroska,webm", Streams: []Stream{
				{Index: 0, Type: "video", Codec: "mjpeg", Width: 600, Height: 600, AttachedPic: true},
				{Index: 1, Type: "audio", Codec: "opus", SampleRate: 48000, Channels: 2, Duration: 62500 * time.Millisecond},
				{Index: 2, Type: "subtitle", Codec: "subrip"},
			}},
		},
		{name: "empty object (what ffprobe prints on failure)", json: "{\n\n}", want: ProbeResult{Streams: []Stream{}}},
		{name: "not json", json: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseProbe([]byte(tt.json))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.FormatName != tt.want.FormatName || got.Duration != tt.want.Duration || got.BitRate != tt.want.BitRate || got.Size != tt.want.Size {
				t.Errorf("format = %+v, want %+v", *got, tt.want)
			}
			if len(got.Streams) != len(tt.want.Streams) {
				t.Fatalf("streams = %+v, want %+v", got.Streams, tt.want.Streams)
			}
			for i := range got.Streams {
				if got.Streams[i] != tt.want.Streams[i] {
					t.Errorf("stream %d = %+v, want %+v", i, got.Streams[i], tt.want.Streams[i])
				}
			}
		})
	}
}

func TestProbeResultPick(t *testing.T) {
	t.Parallel()
	p := &ProbeResult{Streams: []Stream{
		{Index: 0, Type: "video", AttachedPic: true},
		{Index: 1, Type: "audio"},
		{Index: 2, Type: "video"},
	}}
	if v, ok := p.Video(); !ok || v.Index != 2 {
		t.Errorf("Video = %+v, %v; want stream 2 (cover art skipped)", v, ok)
	}
	if a, ok := p.Audio(); !ok || a.Index != 1 {
		t.Errorf("Audio = %+v, %v; want stream 1", a, ok)
	}
	empty := &ProbeResult{}
	if _, ok := empty.Video(); ok {
		t.Error("Video on empty result")
	}
	if _, ok := empty.Audio(); ok {
		t.Error("Audio on empty result")
	}
}

func TestProbeChunks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in, err := os.ReadFile(f.media(t, "in.mp4", "-movflags", "+faststart"))
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 128<<10)
	_, _ = rand.Read(junk)
	split := func(b []byte, n int) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			k := min(n, len(b))
			out = append(out, b[:k])
			b = b[k:]
		}
		return out
	}
	// 16 MiB: far more than the pipe holds, so ffprobe exits while we
	// still write, and the EPIPE must be ignored.
	var big [][]byte
	big = append(big, in)
	for len(big) < 16<<20/len(in) {
		big = append(big, junk)
	}
	tests := []struct {
		name    string
		chunks  [][]byte
		wantErr error
	}{
		{"first 64 KiB of a faststart mp4", split(in[:64<<10], 16<<10), nil},
		{"whole file in 1 MiB chunks", split(in, 1<<20), nil},
		{"ffprobe stops reading early", big, nil},
		{"random bytes", [][]byte{junk}, ErrInvalidInput},
		{"truncated header", [][]byte{in[:200]}, ErrInvalidInput},
		{"nothing", nil, ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := f.r.ProbeChunks(ctxT(t), tt.chunks)
			if tt.wantErr != nil {
				var fe *Error
				if !errors.Is(err, tt.wantErr) || !errors.As(err, &fe) || fe.Op != "probe" || fe.Reason == "" {
					t.Fatalf("err = %v (%#v), want probe *Error with %v and a reason", err, fe, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			v, okV := res.Video()
			a, okA := res.Audio()
			if !okV || !okA || v.Width != 320 || v.Height != 240 || v.FrameRate != 25 || a.Channels != 1 || a.SampleRate != 48000 {
				t.Errorf("probe = %+v", res)
			}
			within(t, "duration", res.Duration, 2*time.Second, 100*time.Millisecond)
		})
	}
}

func TestProbeFile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	moovAtEnd := f.media(t, "end.mp4")
	junk := filepath.Join(f.dir, "junk.bin")
	b := make([]byte, 64<<10)
	_, _ = rand.Read(b)
	if err := os.WriteFile(junk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{"moov at end", moovAtEnd, nil},
		{"random bytes", junk, ErrInvalidInput},
		{"missing spool file", filepath.Join(f.dir, "missing.mp4"), ErrInternal},
		{"empty path", "", ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := f.r.ProbeFile(ctxT(t), tt.path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(res.FormatName, "mov,") || len(res.Streams) != 2 || res.Size == 0 || res.BitRate == 0 {
				t.Errorf("probe = %+v", res)
			}
			within(t, "duration", res.Duration, 2*time.Second, 100*time.Millisecond)
		})
	}
}

func TestProbeCanceled(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.r.ProbeChunks(ctx, [][]byte{[]byte("x")})
	if !errors.Is(err, ErrStopped) {
		t.Errorf("err = %v, want ErrStopped", err)
	}
}
