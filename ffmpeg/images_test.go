package ffmpeg

import (
	"bytes"
	"errors"
	"image/jpeg"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/thumbs"
)

// imagesOut returns the argv of one Images output after the input, without the pipe.
func imagesOut(t *testing.T, im *Images, o Output) []string {
	t.Helper()
	o.Images = im
	a, err := Spec{Outputs: []Output{o}}.args(2)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(a, "-i")
	if i < 0 || a[len(a)-1] != "pipe:3" {
		t.Fatalf("argv %q", a)
	}
	return a[i+2 : len(a)-1]
}

func TestImagesArgs(t *testing.T) {
	t.Parallel()
	fit := func(w, h int) string {
		fw, fh := fitExpr(w, h)
		return "scale=w='" + fw + "':h='" + fh + "',setsar=1,format=yuvj420p"
	}
	tests := []struct {
		name string
		im   Images
		o    Output
		want string // space-joined; FIT = the scale chain for the box
		box  [2]int
	}{
		{
			name: "poster",
			im:   Images{Mode: "poster", At: 3 * time.Second, Width: 320, Height: 180},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,1)*gte(round(t*1000000),3000000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 1 -f image2pipe",
			box:  [2]int{320, 180},
		},
		{
			name: "poster past the end moves back a second, caps, quality",
			im:   Images{Mode: "poster", At: time.Minute, Duration: 10500 * time.Millisecond, Quality: 2},
			o:    Output{Duration: time.Hour, MaxBytes: 1 << 20},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,1)*gte(round(t*1000000),9500000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 2 -threads 2 -frames:v 1 -f image2pipe -t 3600 -fs 1048576",
		},
		{
			name: "poster in a short clip",
			im:   Images{Mode: "poster", At: time.Second, Duration: time.Second},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,1)*gte(round(t*1000000),500000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 1 -f image2pipe",
		},
		{
			name: "frames spread over the duration",
			im:   Images{Mode: "frames", Count: 5, Duration: 10 * time.Second, Interval: time.Second, Width: 160},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,5)*gte(round(t*1000000)*10,(2*selected_n+1)*10000000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 5 -f image2pipe",
			box:  [2]int{160, 0},
		},
		{
			name: "frames every interval, count",
			im:   Images{Mode: "frames", Count: 7, Interval: 2500 * time.Millisecond},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,7)*gte(round(t*1000000),selected_n*2500000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 7 -f image2pipe",
		},
		{
			name: "frames every interval over a known duration",
			im:   Images{Mode: "frames", Interval: 3 * time.Second, Duration: 10 * time.Second},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,4)*gte(round(t*1000000),selected_n*3000000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 4 -f image2pipe",
		},
		{
			name: "frames every interval, unbounded",
			im:   Images{Mode: "frames", Interval: 10 * time.Second},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,1000)*gte(round(t*1000000),selected_n*10000000)',FIT -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 1000 -f image2pipe",
		},
		{
			name: "sprite",
			im:   Images{Mode: "sprite", Count: 10, Duration: 90 * time.Second, Columns: 5, Width: 160, Height: 90},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,10)*gte(round(t*1000000)*20,(2*selected_n+1)*90000000)',FIT,tile=5x2:nb_frames=10 -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 1 -f image2pipe",
			box:  [2]int{160, 90},
		},
		{
			name: "sprite with more rows than needed",
			im:   Images{Mode: "sprite", Interval: 10 * time.Second, Duration: 95 * time.Second, Columns: 3, Rows: 4, Width: 100, Height: 100},
			want: "-map 0:V:0 -an -sn -dn -vf select='lt(selected_n,10)*gte(round(t*1000000),selected_n*10000000)',FIT,tile=3x4:nb_frames=10 -fps_mode passthrough -c:v mjpeg -q:v 4 -threads 2 -frames:v 1 -f image2pipe",
			box:  [2]int{100, 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := strings.Join(imagesOut(t, &tt.im, tt.o), " ")
			want := strings.Replace(tt.want, "FIT", fit(tt.box[0], tt.box[1]), 1)
			if got != want {
				t.Errorf("argv\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestImagesValidate(t *testing.T) {
	t.Parallel()
	const sec = time.Second
	sprite := Images{Mode: "sprite", Count: 10, Duration: 60 * sec, Columns: 5, Width: 160, Height: 90}
	sp := func(f func(*Images)) Images { im := sprite; f(&im); return im }
	tests := []struct {
		name  string
		o     Output
		field string // "" = valid
	}{
		{"poster", Output{Images: &Images{Mode: "poster"}}, ""},
		{"frames spread", Output{Images: &Images{Mode: "frames", Count: 1000, Duration: sec}}, ""},
		{"frames interval", Output{Images: &Images{Mode: "frames", Interval: sec}}, ""},
		{"sprite", Output{Images: &sprite, Duration: sec, MaxBytes: 1}, ""},
		{"sprite interval + rows", Output{Images: &Images{Mode: "sprite", Interval: sec, Columns: 10, Rows: 10, Count: 100, Width: 16, Height: 16}}, ""},
		{"with container", Output{Container: "mp4", Images: &Images{Mode: "poster"}}, "Outputs[0]"},
		{"with video", Output{Video: &Video{Codec: "libx264"}, Images: &Images{Mode: "poster"}}, "Outputs[0]"},
		{"with audio", Output{Audio: &Audio{Codec: "aac"}, Images: &Images{Mode: "poster"}}, "Outputs[0]"},
		{"negative duration", Output{Duration: -1, Images: &Images{Mode: "poster"}}, "Outputs[0].Duration"},
		{"negative max bytes", Output{MaxBytes: -1, Images: &Images{Mode: "poster"}}, "Outputs[0].MaxBytes"},
		{"segment", Output{Segment: 2 * sec, Images: &Images{Mode: "poster"}}, "Outputs[0].Segment"},
		{"no mode", Output{Images: &Images{}}, "Outputs[0].Images.Mode"},
		{"unknown mode", Output{Images: &Images{Mode: "gif"}}, "Outputs[0].Images.Mode"},
		{"negative at", Output{Images: &Images{Mode: "poster", At: -sec}}, "Outputs[0].Images.At"},
		{"poster with count", Output{Images: &Images{Mode: "poster", Count: 2}}, "Outputs[0].Images"},
		{"frames with at", Output{Images: &Images{Mode: "frames", Interval: sec, At: sec}}, "Outputs[0].Images.At"},
		{"frames with columns", Output{Images: &Images{Mode: "frames", Interval: sec, Columns: 2}}, "Outputs[0].Images"},
		{"negative input duration", Output{Images: &Images{Mode: "poster", Duration: -sec}}, "Outputs[0].Images.Duration"},
		{"width", Output{Images: &Images{Mode: "poster", Width: 4098}}, "Outputs[0].Images.Width"},
		{"height", Output{Images: &Images{Mode: "poster", Height: -2}}, "Outputs[0].Images.Height"},
		{"quality low", Output{Images: &Images{Mode: "poster", Quality: 1}}, "Outputs[0].Images.Quality"},
		{"quality high", Output{Images: &Images{Mode: "poster", Quality: 32}}, "Outputs[0].Images.Quality"},
		{"count", Output{Images: &Images{Mode: "frames", Count: 1001, Duration: sec}}, "Outputs[0].Images.Count"},
		{"negative count", Output{Images: &Images{Mode: "frames", Count: -1, Interval: sec}}, "Outputs[0].Images.Count"},
		{"negative interval", Output{Images: &Images{Mode: "frames", Count: 5, Duration: sec, Interval: -1}}, "Outputs[0].Images.Interval"},
		{"interval under 1ms", Output{Images: &Images{Mode: "frames", Interval: time.Microsecond}}, "Outputs[0].Images.Interval"},
		{"count without duration or interval", Output{Images: &Images{Mode: "frames", Count: 5}}, "Outputs[0].Images.Interval"},
		{"nothing to plan", Output{Images: &Images{Mode: "frames"}}, "Outputs[0].Images.Interval"},
		{"no columns", Output{Images: ptr(sp(func(im *Images) { im.Columns = 0 }))}, "Outputs[0].Images.Columns"},
		{"too many columns", Output{Images: ptr(sp(func(im *Images) { im.Columns = 101 }))}, "Outputs[0].Images.Columns"},
		{"negative rows", Output{Images: ptr(sp(func(im *Images) { im.Rows = -1 }))}, "Outputs[0].Images.Rows"},
		{"rows too few", Output{Images: ptr(sp(func(im *Images) { im.Rows = 1 }))}, "Outputs[0].Images.Rows"},
		{"sprite without box", Output{Images: ptr(sp(func(im *Images) { im.Height = 0 }))}, "Outputs[0].Images"},
		{"sprite of unknown length", Output{Images: ptr(sp(func(im *Images) { im.Count, im.Duration, im.Interval = 0, 0, sec }))}, "Outputs[0].Images.Count"},
		{"sprite too wide", Output{Images: ptr(sp(func(im *Images) { im.Columns, im.Width = 10, 2000 }))}, "Outputs[0].Images"},
		{"sprite tall, within bounds", Output{Images: ptr(sp(func(im *Images) { im.Count, im.Columns, im.Width, im.Height = 1000, 10, 160, 90 }))}, ""},
		{"sprite too tall, portrait box", Output{Images: ptr(sp(func(im *Images) { im.Count, im.Columns, im.Width, im.Height = 1000, 10, 90, 170 }))}, "Outputs[0].Images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Spec{Outputs: []Output{tt.o}}.Args()
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *SpecError", err)
			}
			if se.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", se.Field, tt.field, err)
			}
			if !errors.Is(err, ErrSpec) || !errors.Is(err, ErrInvalidInput) {
				t.Errorf("%v should match ErrSpec and ErrInvalidInput", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestImagesExpected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		im                     Images
		frames, expected, rows int
	}{
		{Images{Mode: "poster", At: time.Hour}, 1, 1, 0},
		{Images{Mode: "frames", Count: 5, Duration: time.Second}, 5, 5, 0},
		{Images{Mode: "frames", Count: 5, Interval: time.Second}, 5, 5, 0},
		{Images{Mode: "frames", Interval: time.Second, Duration: 10 * time.Second}, 10, 10, 0},
		{Images{Mode: "frames", Interval: time.Second, Duration: 10*time.Second + 1}, 11, 11, 0},
		{Images{Mode: "frames", Interval: time.Second, Duration: 2 * time.Hour}, 1000, 1000, 0},
		{Images{Mode: "frames", Interval: time.Second}, 0, 0, 0},
		{Images{Mode: "sprite", Count: 10, Duration: time.Second, Columns: 5}, 10, 1, 2},
		{Images{Mode: "sprite", Count: 11, Duration: time.Second, Columns: 5}, 11, 1, 3},
		{Images{Mode: "sprite", Interval: time.Second, Duration: 4 * time.Second, Columns: 5, Rows: 3}, 4, 1, 3},
	}
	for _, tt := range tests {
		_, rows := tt.im.Grid()
		if f, e := tt.im.Frames(), tt.im.Expected(); f != tt.frames || e != tt.expected || rows != tt.rows {
			t.Errorf("%+v: Frames, Expected, rows = %d, %d, %d, want %d, %d, %d", tt.im, f, e, rows, tt.frames, tt.expected, tt.rows)
		}
	}
}

// TestImagesPlanMatchesThumbs checks thumbs.Times and thumbs.Slots plan as many images as the
// selection takes.
func TestImagesPlanMatchesThumbs(t *testing.T) {
	t.Parallel()
	for _, count := range []int{0, 1, 7, 1000} {
		for _, interval := range []time.Duration{0, time.Microsecond, time.Millisecond, 3 * time.Second} {
			for _, dur := range []time.Duration{0, 500 * time.Millisecond, 10 * time.Second, 10*time.Second + 1, 5 * time.Hour} {
				im := Images{Mode: "frames", Count: count, Interval: interval, Duration: dur}
				if (Spec{Outputs: []Output{{Images: &im}}}).validate() != nil {
					continue
				}
				times := thumbs.Times(count, interval, dur)
				if len(times) != im.Frames() || len(thumbs.Slots(count, interval, dur)) != im.Frames() {
					t.Errorf("%+v: Frames %d, thumbs plans %d", im, im.Frames(), len(times))
				}
			}
		}
	}
}

// collector is a thumbs.Handler that keeps the images.
type collector struct{ images [][]byte }

func (c *collector) Image(int) (io.Writer, error) {
	c.images = append(c.images, nil)
	return c, nil
}

func (c *collector) Write(p []byte) (int, error) {
	c.images[len(c.images)-1] = append(c.images[len(c.images)-1], p...)
	return len(p), nil
}

func (*collector) ImageDone(int, int64) error { return nil }

// splitJPEGs cuts an MJPEG stream with thumbs.Splitter and decodes every image, returning
// their sizes.
func splitJPEGs(t *testing.T, stream []byte) [][2]int {
	t.Helper()
	var c collector
	sp := thumbs.NewSplitter(&c)
	if _, err := sp.Write(stream); err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	var sizes [][2]int
	for i, b := range c.images {
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("image %d of %d does not decode: %v", i+1, len(c.images), err)
		}
		sizes = append(sizes, [2]int{img.Bounds().Dx(), img.Bounds().Dy()})
	}
	return sizes
}

// TestImagesFFmpeg runs Images outputs through the Runner next to a video output (one decode)
// and checks the JPEGs the pipes carry.
func TestImagesFFmpeg(t *testing.T) {
	t.Parallel()
	f := setup(t)
	clip := f.mediaOf(t, "in.mp4", "640x360", "10")
	short := f.mediaOf(t, "short.mp4", "640x360", "0.5")
	tiny := f.mediaOf(t, "tiny.mp4", "640x360", "0.2")
	const d = 10 * time.Second
	type want struct{ n, w, h int }
	tests := []struct {
		name  string
		in    string
		im    Images
		want  want
		split bool // Spec.SplitVideo: the video output from -filter_complex, the images not
	}{
		{"poster", clip, Images{Mode: "poster", At: 3 * time.Second, Duration: d, Width: 320, Height: 320}, want{1, 320, 180}, false},
		{"poster past the end", clip, Images{Mode: "poster", At: time.Hour, Duration: d}, want{1, 640, 360}, false},
		{"frames", clip, Images{Mode: "frames", Count: 5, Duration: d, Width: 160, Height: 90}, want{5, 160, 90}, false},
		{"frames next to a split graph", clip, Images{Mode: "frames", Count: 5, Duration: d, Width: 160, Height: 90}, want{5, 160, 90}, true},
		{"frames every 3s", clip, Images{Mode: "frames", Interval: 3 * time.Second, Duration: d, Width: 160, Height: 90}, want{4, 160, 90}, false},
		{"sprite", clip, Images{Mode: "sprite", Count: 10, Duration: d, Columns: 5, Width: 128, Height: 72}, want{1, 640, 144}, false},
		// 12 frames, 10 slots of 50 ms: every slot has a frame.
		{"short frames", short, Images{Mode: "frames", Count: 10, Duration: d / 20, Width: 64, Height: 64}, want{10, 64, 36}, false},
		{"short sprite", short, Images{Mode: "sprite", Count: 10, Duration: d / 20, Columns: 5, Width: 64, Height: 64}, want{1, 320, 72}, false},
		// 5 frames for 10 slots: 4 tiles (the first frame comes before the first slot's
		// middle) and a sheet of the full size, its last tiles black.
		{"tiny frames", tiny, Images{Mode: "frames", Count: 10, Duration: d / 50, Width: 64, Height: 64}, want{4, 64, 36}, false},
		{"tiny sprite", tiny, Images{Mode: "sprite", Count: 10, Duration: d / 50, Columns: 5, Width: 64, Height: 64}, want{1, 320, 72}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Spec{Input: Input{Path: tt.in}, Outputs: []Output{
				{Container: "nut", Video: &Video{Codec: "rawvideo", Width: 32, Height: 18}},
				{Images: &tt.im},
			}, SplitVideo: tt.split}
			sf := &fixture{r: f.r, dir: t.TempDir()} // f.run writes dir/out<i>
			outs, _, p, err := sf.run(t, f.r, s, nil)
			if err != nil {
				t.Fatalf("Wait: %v\n%s", err, p.StderrTail())
			}
			stream, err := os.ReadFile(outs[1])
			if err != nil {
				t.Fatal(err)
			}
			sizes := splitJPEGs(t, stream)
			if len(sizes) != tt.want.n {
				t.Fatalf("%d images, want %d (Expected %d)", len(sizes), tt.want.n, tt.im.Expected())
			}
			if len(sizes) > tt.im.Expected() {
				t.Errorf("%d images, more than Expected %d", len(sizes), tt.im.Expected())
			}
			for i, sz := range sizes {
				if sz != [2]int{tt.want.w, tt.want.h} {
					t.Errorf("image %d is %dx%d, want %dx%d", i+1, sz[0], sz[1], tt.want.w, tt.want.h)
				}
			}
		})
	}
}

var ptsTimeRe = regexp.MustCompile(`\] n: *\d+ pts: *\d+ pts_time:([0-9.]+)`)

// TestImagesSelectTimes checks which frames the selection takes: ffmpeg runs the output's own
// filter chain with showinfo after the select, and the frames' times must be the first at or
// after each planned time (thumbs.Times) of a 25 fps clip.
func TestImagesSelectTimes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	clip := f.mediaOf(t, "in.mp4", "320x180", "10")
	const d = 10 * time.Second
	tests := []struct {
		name string
		im   Images
	}{
		{"spread 5", Images{Mode: "frames", Count: 5, Duration: d}},
		{"spread 3", Images{Mode: "frames", Count: 3, Duration: d}},
		{"spread 7 of a longer duration", Images{Mode: "frames", Count: 7, Duration: 10500 * time.Millisecond}},
		{"every 1.3s (6*1.3 is not 7.8 in floating point)", Images{Mode: "frames", Interval: 1300 * time.Millisecond, Duration: d}},
		{"every 2s, 3 of them", Images{Mode: "frames", Interval: 2 * time.Second, Count: 3}},
		{"sprite", Images{Mode: "sprite", Count: 6, Duration: d, Columns: 3, Width: 32, Height: 32}},
		{"poster", Images{Mode: "poster", At: 4010 * time.Millisecond, Duration: d}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := Spec{Input: Input{Path: clip}, Outputs: []Output{{Images: &tt.im}}}.Args()
			if err != nil {
				t.Fatal(err)
			}
			// Log at info, showinfo after the select, no progress pipe, output to stdout.
			var argv []string
			for i := 0; i < len(a); i++ {
				switch {
				case a[i] == "level+error":
					argv = append(argv, "level+info")
				case a[i] == "-progress" || a[i] == "-stats_period":
					i++
				case a[i] == "pipe:3":
					argv = append(argv, "pipe:1")
				case i > 0 && a[i-1] == "-vf":
					sel, rest, _ := strings.Cut(a[i], "',")
					argv = append(argv, sel+"',showinfo,"+rest)
				default:
					argv = append(argv, a[i])
				}
			}
			cmd := exec.Command(f.r.Config().FFmpeg, argv...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			var got []float64
			for _, m := range ptsTimeRe.FindAllStringSubmatch(stderr.String(), -1) {
				v, _ := strconv.ParseFloat(m[1], 64)
				got = append(got, v)
			}
			planned := thumbs.Times(tt.im.Count, tt.im.Interval, tt.im.Duration)
			if tt.im.Mode == "poster" {
				planned = []time.Duration{tt.im.At}
			}
			var want []float64
			for _, p := range planned {
				want = append(want, math.Ceil(p.Seconds()*25-1e-9)/25) // first frame at or after
			}
			if len(got) != len(want) {
				t.Fatalf("selected frames at %v, want %v", got, want)
			}
			for i := range got {
				if math.Abs(got[i]-want[i]) > 1e-6 {
					t.Errorf("selected frames at %v, want %v", got, want)
					break
				}
			}
			if n := len(splitJPEGs(t, stdout.Bytes())); n != tt.im.Expected() {
				t.Errorf("%d images, want %d", n, tt.im.Expected())
			}
		})
	}
}
