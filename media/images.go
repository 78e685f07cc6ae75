package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/thumbs"
)

// imageSink writes a thumbnails output (the result of a frames output is its prefix, with no
// checksum: it is a set of files; a sprite's is its WebVTT index): ffmpeg's MJPEG stream is split into its JPEG images as
// it arrives. A frames output publishes each image as soon as it is complete; a poster, and a
// sprite sheet with its WebVTT index, are published once the run is verified.
type imageSink struct {
	ctx   context.Context
	store objStore
	url   string // the poster itself, or the prefix of frames and sprites
	im    *ffmpeg.Images
	split *thumbs.Splitter
	out   *atomic.Int64
	first func()

	cur     objWriter
	curURL  string
	pending objWriter // a poster or sprite, committed by publish
	written published // committed objects, taken back by abort
	size    int64
	sum     hash.Hash     // of the poster or sprite image, for the result
	input   time.Duration // the input's, for a sprite's cues
}

func newImageSink(ctx context.Context, store objStore, url string, im *ffmpeg.Images, out *atomic.Int64, first func()) *imageSink {
	s := &imageSink{ctx: ctx, store: store, url: url, im: im, out: out, first: first}
	s.split = thumbs.NewSplitter(s)
	s.split.MaxImageSize = 64 << 20 // a 16384-pixel-wide sprite at q 2 is far less
	return s
}

func (s *imageSink) writers() []io.Writer { return []io.Writer{s} }

func (s *imageSink) Write(p []byte) (int, error) { return s.split.Write(p) }

// Close ends the stream; a stream that ends inside an image is an error.
func (s *imageSink) Close() error { return s.split.Close() }

// Image opens image n.
func (s *imageSink) Image(n int) (io.Writer, error) {
	var (
		u   string
		err error
	)
	switch s.im.Mode {
	case ffmpeg.ImagesPoster:
		u = s.url
	case ffmpeg.ImagesSprite:
		u, err = s.store.join(s.url, job.SpriteImage)
	default:
		u, err = s.store.join(s.url, job.ThumbName(n))
	}
	if err != nil {
		return nil, err
	}
	if n > 1 && s.im.Mode != ffmpeg.ImagesFrames {
		return nil, fmt.Errorf("%s output: ffmpeg wrote more than one image", s.im.Mode)
	}
	w, err := s.store.create(s.ctx, u)
	if err != nil {
		return nil, err
	}
	s.cur, s.curURL = w, u
	cw := countingWriter{w: w, n: s.out, first: &s.first}
	if s.im.Mode == ffmpeg.ImagesFrames {
		return cw, nil
	}
	s.sum = sha256.New()
	return io.MultiWriter(cw, s.sum), nil
}

// ImageDone publishes a frames image now; a poster or sprite waits for the verification.
func (s *imageSink) ImageDone(n int, size int64) error {
	w := s.cur
	s.cur = nil
	s.size += size
	if s.im.Mode != ffmpeg.ImagesFrames {
		s.pending = w
		return nil
	}
	if err := w.Commit(s.ctx); err != nil {
		w.Abort()
		return fmt.Errorf("publish image: %w", err)
	}
	s.written.record(s.curURL)
	return nil
}

// verify checks that the run made the images it was asked for: a frame at the poster's time,
// a sprite sheet, at least one of the spread images and no more than planned.
func (s *imageSink) verify(_ context.Context, c *check) error {
	s.input = c.input
	n := s.split.Images()
	want := s.im.Expected()
	switch {
	case n == 0:
		return &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("no %s image could be made: the video has no frame there (at %s?)", s.im.Mode, s.im.At)}
	case want > 0 && n > want:
		return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("%d images made, %d planned", n, want)}
	}
	return nil
}

// publish commits the pending image (and writes a sprite's index) and returns the result.
func (s *imageSink) publish(_ context.Context) (job.OutputResult, error) {
	res, err := s.commit(s.input)
	if err == nil {
		s.written.exists()
	}
	return res, err
}

func (s *imageSink) commit(duration time.Duration) (job.OutputResult, error) {
	res := job.OutputResult{Kind: s.im.Mode, Size: s.size, Duration: duration.Seconds()}
	res.Width, res.Height = s.split.Size()
	res.URL = s.url
	if w := s.pending; w != nil {
		s.pending = nil
		if err := w.Commit(s.ctx); err != nil {
			w.Abort()
			return res, fmt.Errorf("publish %s: %w", s.im.Mode, err)
		}
		u := s.url
		if s.im.Mode == ffmpeg.ImagesSprite {
			u, _ = s.store.join(s.url, job.SpriteImage)
		}
		s.written.record(u)
	}
	if s.im.Mode == ffmpeg.ImagesPoster {
		// A poster is one file, like any single output.
		res.Kind = ""
		res.SHA256 = hex.EncodeToString(s.sum.Sum(nil))
		return res, nil
	}
	if s.im.Mode != ffmpeg.ImagesSprite {
		return res, nil
	}
	cols, rows := s.im.Grid()
	times := thumbs.Slots(s.im.Count, s.im.Interval, max(duration, s.im.Duration))
	// Cues are at least a millisecond long (WebVTT's precision): on a clip shorter than its
	// tiles (a few frames), the index names the first tiles only, the last cue to the end.
	for i := 1; i < len(times); i++ {
		if times[i]-times[i-1] < time.Millisecond {
			times = times[:i]
			break
		}
	}
	sp := thumbs.Sprite{
		URI: job.SpriteImage, Columns: cols, Rows: rows, Width: res.Width / max(cols, 1), Height: res.Height / max(rows, 1),
		Times: times, End: max(duration, s.im.Duration),
	}
	var buf bytes.Buffer
	if err := thumbs.WriteVTT(&buf, sp); err != nil {
		return res, fmt.Errorf("sprite index: %w", err)
	}
	vtt, err := s.store.join(s.url, job.SpriteIndex)
	if err != nil {
		return res, err
	}
	if err := putObject(s.ctx, s.store, vtt, buf.Bytes()); err != nil {
		return res, err
	}
	s.written.record(vtt)
	sum := sha256.Sum256(buf.Bytes())
	res.URL, res.SHA256, res.Size = vtt, hex.EncodeToString(sum[:]), res.Size+int64(buf.Len())
	return res, nil
}

// abort takes back what this attempt published and discards the rest.
func (s *imageSink) abort() {
	if s.written.out {
		return
	}
	for _, w := range []objWriter{s.cur, s.pending} {
		if w != nil {
			w.Abort()
		}
	}
	s.cur, s.pending = nil, nil
	s.written.takeBack(s.ctx, s.store)
}

// unpublish takes back every published image (and a sprite's index).
func (s *imageSink) unpublish(ctx context.Context) []string {
	return s.written.unpublish(ctx, s.store)
}
