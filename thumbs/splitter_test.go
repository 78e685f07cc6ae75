package thumbs_test

import (
	"bytes"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"os/exec"
	"slices"
	"testing"

	"github.com/transcoder/transcoder/thumbs"
)

// collector is a Handler that keeps the images and checks the calls come in order.
type collector struct {
	images  [][]byte
	sizes   []int64
	open    bool
	callErr error // the first out-of-order call

	failImage, failDone int   // image number to fail at (0 = never)
	failWrite           error // returned by Write
	shortWrite          bool
}

var errHandler = errors.New("handler says no")

func (c *collector) Image(n int) (io.Writer, error) {
	if c.open || n != len(c.images)+1 {
		c.callErr = fmt.Errorf("Image(%d) with %d images, open %v", n, len(c.images), c.open)
	}
	if n == c.failImage {
		return nil, errHandler
	}
	c.images = append(c.images, nil)
	c.open = true
	return c, nil
}

func (c *collector) Write(p []byte) (int, error) {
	if !c.open {
		c.callErr = errors.New("Write outside an image")
	}
	if c.failWrite != nil {
		return 0, c.failWrite
	}
	if c.shortWrite {
		p = p[:len(p)/2]
	}
	c.images[len(c.images)-1] = append(c.images[len(c.images)-1], p...)
	return len(p), nil
}

func (c *collector) ImageDone(n int, size int64) error {
	if !c.open || n != len(c.images) || size != int64(len(c.images[n-1])) {
		c.callErr = fmt.Errorf("ImageDone(%d, %d) with %d images, open %v", n, size, len(c.images), c.open)
	}
	c.open = false
	c.sizes = append(c.sizes, size)
	if n == c.failDone {
		return errHandler
	}
	return nil
}

// split feeds stream to a Splitter in chunks of the given sizes (cycled; nil = all at once)
// and returns the collector and the first error of Write or Close.
func split(t *testing.T, c *collector, stream []byte, chunks []int, maxSize int64) (*thumbs.Splitter, error) {
	t.Helper()
	sp := thumbs.NewSplitter(c)
	sp.MaxImageSize = maxSize
	for k := 0; len(stream) > 0; k++ {
		n := len(stream)
		if len(chunks) > 0 {
			n = min(n, chunks[k%len(chunks)])
		}
		m, err := sp.Write(stream[:n])
		if err != nil {
			if _, again := sp.Write(stream[:n]); !errors.Is(again, err) {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
			return sp, err
		}
		if m != n {
			t.Fatalf("Write = %d, want %d", m, n)
		}
		stream = stream[n:]
	}
	if c.callErr != nil {
		t.Error(c.callErr)
	}
	return sp, sp.Close()
}

// seg is a marker segment: FF marker, length, payload.
func seg(marker byte, payload ...byte) []byte {
	l := len(payload) + 2
	return append([]byte{0xFF, marker, byte(l >> 8), byte(l)}, payload...)
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

var (
	soi = []byte{0xFF, 0xD8}
	eoi = []byte{0xFF, 0xD9}
	// sof is a baseline frame header of 260x90: precision, height, width, one component.
	sof = seg(0xC0, 8, 0, 90, 1, 4, 1, 1, 0x11, 0)
	// scan is a SOS segment and entropy-coded data with a stuffed FF (FF 00), restart markers
	// (one after a fill byte) and FF bytes that would be EOI or SOI outside the scan if stuffing
	// were ignored: FF 00 D9.
	scan = cat(seg(0xDA, 1, 1, 0, 0, 63, 0), []byte{0x12, 0xFF, 0x00, 0xD9, 0x34, 0xFF, 0xD0, 0x56, 0xFF, 0xFF, 0xD1, 0x78, 0xFF, 0x00})

	// A baseline image with a comment holding FF D9 and FF D8 (inside a segment they are data).
	imgA = cat(soi, seg(0xE0, []byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00")...),
		seg(0xFE, 0xFF, 0xD9, 0xFF, 0xD8, 'x'), seg(0xDB, make([]byte, 65)...), sof, seg(0xC4, 0, 1, 2, 3), scan, eoi)
	// A progressive-like image: two scans with a table between, fill bytes before markers, an
	// empty segment, a TEM marker, a frame header of 16x8.
	imgB = cat(soi, []byte{0xFF, 0xFF}, seg(0xE1), []byte{0xFF, 0x01}, seg(0xC2, 8, 0, 8, 0, 16, 1, 1, 0x11, 0),
		scan, seg(0xC4, 9, 9), scan, []byte{0xFF}, eoi)
	// Smallest: SOI EOI.
	imgC = cat(soi, eoi)
)

func TestSplitterSynthetic(t *testing.T) {
	t.Parallel()
	want := [][]byte{imgA, imgB, imgC, imgA}
	stream := slices.Concat(want...)
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]int, 200)
	for i := range random {
		random[i] = 1 + rng.IntN(40)
	}
	for name, chunks := range map[string][]int{"whole": nil, "bytes": {1}, "pairs": {2}, "odd": {3, 1, 7}, "random": random} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var c collector
			sp, err := split(t, &c, stream, chunks, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.images) != len(want) || sp.Images() != len(want) {
				t.Fatalf("%d images (Images() %d), want %d", len(c.images), sp.Images(), len(want))
			}
			for i := range want {
				if !bytes.Equal(c.images[i], want[i]) || c.sizes[i] != int64(len(want[i])) {
					t.Errorf("image %d: % x (size %d)\nwant % x", i+1, c.images[i], c.sizes[i], want[i])
				}
			}
			if w, h := sp.Size(); w != 260 || h != 90 {
				t.Errorf("Size = %dx%d, want the last frame header's 260x90", w, h)
			}
		})
	}
}

func TestSplitterEmpty(t *testing.T) {
	t.Parallel()
	var c collector
	sp, err := split(t, &c, nil, nil, 0)
	if err != nil || sp.Images() != 0 || len(c.images) != 0 {
		t.Errorf("empty stream: %v, %d images", err, sp.Images())
	}
}

func TestSplitterErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		stream []byte
		c      collector
		max    int64
		want   error // errors.Is; images is how many were done before
		images int
	}{
		{"garbage before", cat([]byte("x"), imgA), collector{}, 0, thumbs.ErrFormat, 0},
		{"garbage between", cat(imgA, []byte{0}, imgA), collector{}, 0, thumbs.ErrFormat, 1},
		{"garbage after", cat(imgA, []byte("\n")), collector{}, 0, thumbs.ErrFormat, 1},
		{"EOI between", cat(imgA, eoi), collector{}, 0, thumbs.ErrFormat, 1},
		{"truncated", cat(imgA, imgB[:len(imgB)-1]), collector{}, 0, thumbs.ErrFormat, 1},
		{"truncated in a segment", cat(imgA, imgA[:30]), collector{}, 0, thumbs.ErrFormat, 1},
		{"lone FF at the end", cat(imgA, []byte{0xFF}), collector{}, 0, thumbs.ErrFormat, 1},
		{"SOI inside", cat(soi, soi, eoi), collector{}, 0, thumbs.ErrFormat, 0},
		{"SOI inside the scan", cat(soi, scan, soi, eoi), collector{}, 0, thumbs.ErrFormat, 0},
		{"short segment length", cat(soi, []byte{0xFF, 0xE0, 0, 1}, eoi), collector{}, 0, thumbs.ErrFormat, 0},
		{"stuffing outside the scan", cat(soi, []byte{0xFF, 0x00}, eoi), collector{}, 0, thumbs.ErrFormat, 0},
		{"data where a marker should be", cat(soi, []byte{0x12}, eoi), collector{}, 0, thumbs.ErrFormat, 0},
		{"image too big", cat(imgC, imgA), collector{}, int64(len(imgA) - 1), thumbs.ErrFormat, 1},
		{"handler refuses an image", cat(imgA, imgA), collector{failImage: 2}, 0, errHandler, 1},
		{"handler fails at the end", cat(imgA, imgA), collector{failDone: 1}, 0, errHandler, 1},
		{"writer fails", imgA, collector{failWrite: errHandler}, 0, errHandler, 0},
		{"short write", imgA, collector{shortWrite: true}, 0, io.ErrShortWrite, 0},
	}
	for _, tt := range tests {
		for _, chunks := range [][]int{nil, {1}, {5}} {
			t.Run(fmt.Sprint(tt.name, chunks), func(t *testing.T) {
				t.Parallel()
				c := tt.c
				sp, err := split(t, &c, tt.stream, chunks, tt.max)
				if !errors.Is(err, tt.want) {
					t.Fatalf("err = %v, want %v", err, tt.want)
				}
				if sp.Images() != tt.images {
					t.Errorf("%d images before the error, want %d", sp.Images(), tt.images)
				}
				if again := sp.Close(); !errors.Is(again, tt.want) {
					t.Errorf("Close after the error = %v", again)
				}
			})
		}
	}
	// The exact size passes.
	var c collector
	if _, err := split(t, &c, imgA, nil, int64(len(imgA))); err != nil {
		t.Errorf("image of MaxImageSize: %v", err)
	}
}

// discard is a Handler that writes the images nowhere.
type discard struct{ n int }

func (*discard) Image(int) (io.Writer, error) { return io.Discard, nil }
func (d *discard) ImageDone(int, int64) error { d.n++; return nil }

func TestSplitterAllocs(t *testing.T) {
	stream := slices.Concat(imgA, imgB, imgC)
	var d discard
	sp := thumbs.NewSplitter(&d)
	allocs := testing.AllocsPerRun(100, func() {
		for p := stream; len(p) > 0; p = p[min(len(p), 7):] {
			if _, err := sp.Write(p[:min(len(p), 7)]); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocs per stream, want 0", allocs)
	}
	if d.n != 3*101 {
		t.Errorf("%d images, want %d", d.n, 3*101)
	}
}

// mjpeg makes a real MJPEG stream: n frames of ffmpeg's testsrc2 at size, as the mjpeg encoder
// and image2pipe write them.
func mjpeg(t *testing.T, size string, n int) []byte {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25", "-frames:v", fmt.Sprint(n),
		"-vf", "format=yuvj420p", "-c:v", "mjpeg", "-q:v", "3", "-f", "image2pipe", "pipe:1").Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v", err)
	}
	return out
}

// TestSplitterFFmpeg splits what ffmpeg writes, whole and in random chunks of 1 byte to 1 MiB,
// into the same images, each a JPEG that decodes at the right size.
func TestSplitterFFmpeg(t *testing.T) {
	t.Parallel()
	stream := mjpeg(t, "320x180", 40)
	var whole collector
	sp, err := split(t, &whole, stream, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.images) != 40 {
		t.Fatalf("%d images, want 40", len(whole.images))
	}
	if w, h := sp.Size(); w != 320 || h != 180 {
		t.Errorf("Size = %dx%d", w, h)
	}
	var total int
	for i, b := range whole.images {
		total += len(b)
		img, err := jpeg.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("image %d: %v", i+1, err)
		}
		if r := img.Bounds(); r.Dx() != 320 || r.Dy() != 180 {
			t.Errorf("image %d is %v", i+1, r)
		}
	}
	if total != len(stream) {
		t.Errorf("images hold %d bytes of the stream's %d", total, len(stream))
	}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		chunks := make([]int, 64)
		for i := range chunks {
			switch rng.IntN(4) {
			case 0:
				chunks[i] = 1 + rng.IntN(3)
			case 1:
				chunks[i] = 1 + rng.IntN(1<<20)
			default:
				chunks[i] = 1 + rng.IntN(8<<10)
			}
		}
		var c collector
		if _, err := split(t, &c, stream, chunks, 0); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !slices.EqualFunc(c.images, whole.images, bytes.Equal) {
			t.Fatalf("seed %d: chunked split differs from the whole one", seed)
		}
	}
}

// FuzzSplitter checks that the chunking never changes the result: the same images, and an
// error in the same cases.
func FuzzSplitter(f *testing.F) {
	f.Add(slices.Concat(imgA, imgB, imgC), uint8(1))
	f.Add(cat(imgA, []byte{0}), uint8(3))
	f.Add(cat(soi, scan), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		var whole, chunked collector
		_, errWhole := split(t, &whole, stream, nil, 0)
		_, errChunked := split(t, &chunked, stream, []int{int(chunk%16) + 1}, 0)
		if (errWhole == nil) != (errChunked == nil) {
			t.Fatalf("whole: %v, chunked: %v", errWhole, errChunked)
		}
		// Whole images only: an image cut by an error holds what had arrived.
		if !slices.EqualFunc(whole.images[:len(whole.sizes)], chunked.images[:len(chunked.sizes)], bytes.Equal) {
			t.Fatalf("whole split %d images, chunked %d, or different bytes", len(whole.images), len(chunked.images))
		}
	})
}
