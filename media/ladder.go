package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/segment"
)

// objWriter is one object being written to a store: nothing is visible under its name until
// Commit. storage.Writer is one.
type objWriter interface {
	io.Writer
	Commit(ctx context.Context) error
	Abort()
}

// objStore creates and deletes objects by URL: the worker's storage.
type objStore interface {
	create(ctx context.Context, url string) (objWriter, error)
	remove(ctx context.Context, url string) error
	join(prefix, name string) (string, error)
}

// ladderSink writes one hls or dash output: each rendition's CMAF stream is cut into segments
// that are published as soon as they are complete (a player or CDN can fetch them while the
// job runs); the playlists, the master last, are published once every rendition is complete and
// verified. Until the master playlist is there, the output does not exist.
type ladderSink struct {
	ctx    context.Context // the job's; segments are written from the sink stages
	store  objStore
	prefix string
	kind   string // job.ContainerHLS or job.ContainerDASH
	target time.Duration
	rends  []*rendition
	out    *atomic.Int64
	// written is every object published so far (segments from the moment they are created).
	written published // exists once the master playlist is out
	// videoRange is the HLS VIDEO-RANGE of the video renditions: PQ or HLG when they keep an
	// HDR input's HDR (hls-abr-hdr), "" otherwise.
	videoRange string
}

// rendition is one stream of a ladder and the segment.Handler of its Segmenter.
type rendition struct {
	l    *ladderSink
	name string
	seg  *segment.Segmenter

	track segment.Track
	segs  []segment.Segment
	cur   objWriter
	size  int64
	first func() // called at the first byte written; may be nil

	// Segments are committed (fsync and rename, or the object store's put completed) by a
	// goroutine of the rendition's, so the sink stage goes on feeding the next segment
	// meanwhile: ffmpeg, which writes every rendition from one loop, never waits on a disk
	// flush. A few segments may wait for it; then SegmentDone blocks (backpressure).
	commits   chan objWriter
	committed chan struct{} // closed when the committer has returned
	stopOnce  sync.Once
	cerr      atomic.Pointer[error]
}

func (r *rendition) committer() {
	defer close(r.committed)
	for w := range r.commits {
		if r.cerr.Load() != nil {
			w.Abort()
			continue
		}
		if err := w.Commit(r.l.ctx); err != nil {
			w.Abort()
			err = fmt.Errorf("publish segment: %w", err)
			r.cerr.Store(&err)
		}
	}
}

// stopCommitter waits until every segment handed to the committer is committed (or failed).
func (r *rendition) stopCommitter() error {
	r.stopOnce.Do(func() { close(r.commits) })
	<-r.committed
	if err := r.cerr.Load(); err != nil {
		return *err
	}
	return nil
}

func newLadderSink(ctx context.Context, store objStore, prefix string, po job.PlannedOutput, out *atomic.Int64, first func()) (*ladderSink, error) {
	l := &ladderSink{ctx: ctx, store: store, prefix: prefix, kind: po.Resolved.Container, target: po.Resolved.Segment, out: out}
	for _, r := range po.Renditions {
		rd := &rendition{l: l, name: r.Name}
		s, err := segment.New(segment.Config{Target: l.target}, rd)
		if err != nil {
			return nil, err
		}
		rd.seg = s
		rd.commits, rd.committed = make(chan objWriter, 3), make(chan struct{})
		l.rends = append(l.rends, rd)
	}
	for _, rd := range l.rends {
		go rd.committer() // stopped by Close (success) or abort (failure)
	}
	l.rends[0].first = first
	return l, nil
}

func (l *ladderSink) writers() []io.Writer {
	ws := make([]io.Writer, len(l.rends))
	for i, r := range l.rends {
		ws[i] = r
	}
	return ws
}

func (r *rendition) url(name string) (string, error) {
	return r.l.store.join(r.l.prefix, r.name+"/"+name)
}

// put writes a small object (init segment, playlist) whole and publishes it.
func (l *ladderSink) put(name string, data []byte) error {
	u, err := l.store.join(l.prefix, name)
	if err != nil {
		return err
	}
	if err := putObject(l.ctx, l.store, u, data); err != nil {
		return err
	}
	l.written.record(u)
	l.out.Add(int64(len(data)))
	return nil
}

// Init publishes the rendition's init segment.
func (r *rendition) Init(data []byte, t segment.Track) error {
	r.track = t
	r.size += int64(len(data))
	return r.l.put(r.name+"/"+segment.InitName, data)
}

// Segment opens media segment n.
func (r *rendition) Segment(n int) (io.Writer, error) {
	u, err := r.url(segment.SegmentName(n))
	if err != nil {
		return nil, err
	}
	w, err := r.l.store.create(r.l.ctx, u)
	if err != nil {
		return nil, err
	}
	r.cur = w
	r.l.written.record(u)
	return countingWriter{w: w, n: r.l.out, first: &r.first}, nil
}

// SegmentDone publishes the segment: it leaves the worker now, not at the end of the job.
func (r *rendition) SegmentDone(s segment.Segment) error {
	w := r.cur
	r.cur = nil
	if err := r.cerr.Load(); err != nil {
		w.Abort()
		return *err
	}
	select {
	case r.commits <- w:
	case <-r.l.ctx.Done():
		w.Abort()
		return r.l.ctx.Err()
	}
	r.segs = append(r.segs, s)
	r.size += s.Size
	return nil
}

// Write feeds the rendition's CMAF stream to its segmenter.
func (r *rendition) Write(p []byte) (int, error) { return r.seg.Write(p) }

// Close ends the stream: the last segment is published, and every segment is committed.
func (r *rendition) Close() error {
	err := r.seg.Close()
	if cerr := r.stopCommitter(); err == nil {
		err = cerr
	}
	return err
}

type countingWriter struct {
	w     io.Writer
	n     *atomic.Int64
	first *func()
}

func (c countingWriter) Write(p []byte) (int, error) {
	if f := *c.first; f != nil && len(p) > 0 {
		f()
		*c.first = nil
	}
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// verify checks the ladder before its playlists go out: every rendition has media as long as
// the input, and the video renditions' segments start at the same instants (players switch
// renditions at segment boundaries; misaligned ones stall or glitch).
func (l *ladderSink) verify(_ context.Context, c *check) error {
	input, stderr := c.input, c.stderr
	var ref []segment.Segment
	var refName string
	for _, r := range l.rends {
		if len(r.segs) == 0 {
			return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("rendition %s has no segments", r.name)}
		}
		d := r.seg.Duration()
		if input > 0 {
			tol := max(time.Second, input/50)
			if d < input-tol {
				if ffmpeg.TruncatedInput(stderr) {
					return &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("input is truncated: only %.1fs of %.1fs could be decoded", d.Seconds(), input.Seconds())}
				}
				return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("rendition %s is %.1fs long, input %.1fs", r.name, d.Seconds(), input.Seconds())}
			}
		}
		if r.track.Kind != "video" {
			continue
		}
		if ref == nil {
			ref, refName = r.segs, r.name
			continue
		}
		if len(r.segs) != len(ref) {
			return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("renditions %s and %s have %d and %d segments", refName, r.name, len(ref), len(r.segs))}
		}
		for i := range ref {
			// One frame of slack: timescales differ between encoders.
			if diff := (ref[i].Start - r.segs[i].Start).Abs(); diff > 20*time.Millisecond {
				return &job.Error{Class: job.ClassInternal, Reason: fmt.Sprintf("segment %d starts at %s in %s but %s in %s", i+1, ref[i].Start, refName, r.segs[i].Start, r.name)}
			}
		}
	}
	return nil
}

// publish writes the playlists: every media playlist, then the master one (or the MPD), which
// is the output's commit point. It returns the output's result.
func (l *ladderSink) publish(_ context.Context) (job.OutputResult, error) {
	res, err := l.writePlaylists()
	if err != nil {
		return res, fmt.Errorf("publish %s: %w", l.kind, err)
	}
	res.Kind = l.kind
	l.written.exists()
	return res, nil
}

func (l *ladderSink) writePlaylists() (job.OutputResult, error) {
	var (
		res      job.OutputResult
		variants []segment.Variant
		audio    *rendition
	)
	for _, r := range l.rends {
		if r.track.Kind == "audio" {
			audio = r
		}
	}
	var buf bytes.Buffer
	for _, r := range l.rends {
		if l.kind == job.ContainerHLS {
			buf.Reset()
			mp := segment.MediaPlaylist{Init: segment.InitName, Ended: true, IndependentSegments: true}
			for _, s := range r.segs {
				mp.Segments = append(mp.Segments, segment.PlaylistSegment{URI: segment.SegmentName(s.N), Duration: s.Duration})
			}
			if err := segment.WriteMediaPlaylist(&buf, mp); err != nil {
				return res, err
			}
			if err := l.put(r.name+"/"+segment.MediaPlaylistName, buf.Bytes()); err != nil {
				return res, err
			}
			res.Size += int64(buf.Len())
		}
		res.Size += r.size
		res.Duration = math.Max(res.Duration, math.Round(r.seg.Duration().Seconds()*1000)/1000)
		if r.track.Kind == "video" && r.track.Width*r.track.Height > res.Width*res.Height {
			res.Width, res.Height = r.track.Width, r.track.Height
		}
	}
	buf.Reset()
	var name string
	if l.kind == job.ContainerHLS {
		name = segment.MasterPlaylistName
		m := segment.Master{}
		var audioPeak, audioAvg int
		codecs := func(v string) string { return v }
		if audio != nil {
			audioPeak, audioAvg = segment.Bandwidth(audio.segs)
			m.Audio = append(m.Audio, segment.AudioRendition{GroupID: "audio", Name: "audio", Default: true, URI: audio.name + "/" + segment.MediaPlaylistName, Channels: audio.track.Channels, Language: audio.track.Language})
			codecs = func(v string) string { return v + "," + audio.track.Codec }
		}
		for _, r := range l.rends {
			if r.track.Kind != "video" {
				continue
			}
			peak, avg := segment.Bandwidth(r.segs)
			v := segment.Variant{
				URI: r.name + "/" + segment.MediaPlaylistName, Bandwidth: peak + audioPeak, AverageBandwidth: avg + audioAvg,
				Width: r.track.Width, Height: r.track.Height, FrameRate: frameRate(r), Codecs: codecs(r.track.Codec),
				VideoRange: l.videoRange,
			}
			if audio != nil {
				v.Audio = "audio"
			}
			variants = append(variants, v)
		}
		if len(variants) == 0 && audio != nil {
			// An audio-only ladder: the audio playlist is the one variant.
			variants = append(variants, segment.Variant{URI: audio.name + "/" + segment.MediaPlaylistName, Bandwidth: audioPeak, AverageBandwidth: audioAvg, Codecs: audio.track.Codec})
			m.Audio = nil
		}
		m.Variants = variants
		if err := segment.WriteMasterPlaylist(&buf, m); err != nil {
			return res, err
		}
	} else {
		name = segment.ManifestName
		mpd := segment.MPD{Duration: time.Duration(res.Duration * float64(time.Second)), MinBufferTime: l.target}
		for _, r := range l.rends {
			peak, _ := segment.Bandwidth(r.segs)
			mpd.Representations = append(mpd.Representations, segment.Representation{
				ID: r.name, Track: r.track, Bandwidth: peak, FrameRate: frameRate(r), Segments: r.segs,
			})
		}
		if err := segment.WriteMPD(&buf, mpd); err != nil {
			return res, err
		}
	}
	sum := sha256.Sum256(buf.Bytes())
	res.SHA256 = hex.EncodeToString(sum[:])
	if err := l.put(name, buf.Bytes()); err != nil {
		return res, err
	}
	res.Size += int64(buf.Len())
	var err error
	res.URL, err = l.store.join(l.prefix, name)
	return res, err
}

func frameRate(r *rendition) float64 {
	var samples int
	var d time.Duration
	for _, s := range r.segs {
		samples += s.Samples
		d += s.Duration
	}
	if d <= 0 || r.track.Kind != "video" {
		return 0
	}
	return math.Round(float64(samples)/d.Seconds()*1000) / 1000
}

// abort takes back every object this attempt published; the current segments are discarded.
func (l *ladderSink) abort() {
	if l.written.out {
		return
	}
	for _, r := range l.rends {
		_ = r.stopCommitter()
		if r.cur != nil {
			r.cur.Abort()
			r.cur = nil
		}
	}
	l.written.takeBack(l.ctx, l.store)
}

// unpublish takes back the whole published ladder, master playlist first.
func (l *ladderSink) unpublish(ctx context.Context) []string {
	return l.written.unpublish(ctx, l.store)
}
