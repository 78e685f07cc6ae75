package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"slices"
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
	info job.Rendition
	seg  *segment.Segmenter
	// text, for a subtitle rendition, collects its WebVTT cues instead of seg: they are cut
	// into segments once the ladder's length is known (publish).
	text *segment.TextTrack

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
		rd := &rendition{l: l, name: r.Name, info: r}
		l.rends = append(l.rends, rd)
		rd.commits, rd.committed = make(chan objWriter, 3), make(chan struct{})
		if r.Subtitle {
			rd.text, rd.track = &segment.TextTrack{}, segment.Track{Kind: "subtitle", Language: r.Language}
			continue
		}
		s, err := segment.New(segment.Config{Target: l.target}, rd)
		if err != nil {
			return nil, err
		}
		rd.seg = s
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

// Write feeds the rendition's CMAF stream to its segmenter (or its WebVTT to its cues).
func (r *rendition) Write(p []byte) (int, error) {
	if r.text != nil {
		return r.text.Write(p)
	}
	return r.seg.Write(p)
}

// Close ends the stream: the last segment is published, and every segment is committed.
func (r *rendition) Close() error {
	var err error
	if r.text != nil {
		err = r.text.Close()
	} else {
		err = r.seg.Close()
	}
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
		if r.text != nil {
			continue // text: its cues are whatever the track has (none is a valid track)
		}
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
	var res job.OutputResult
	for _, r := range l.rends {
		if r.text == nil {
			res.Duration = math.Max(res.Duration, math.Round(r.seg.Duration().Seconds()*1000)/1000)
		}
	}
	var buf bytes.Buffer
	for _, r := range l.rends {
		if r.text != nil {
			n, err := l.putText(r, time.Duration(res.Duration*float64(time.Second)))
			if err != nil {
				return res, err
			}
			res.Size += n
			continue
		}
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
		if r.track.Kind == "video" && r.track.Width*r.track.Height > res.Width*res.Height {
			res.Width, res.Height = r.track.Width, r.track.Height
		}
	}
	buf.Reset()
	name := segment.ManifestName
	var err error
	if l.kind == job.ContainerHLS {
		name, err = segment.MasterPlaylistName, l.writeMaster(&buf)
	} else {
		err = l.writeMPD(&buf, time.Duration(res.Duration*float64(time.Second)))
	}
	if err != nil {
		return res, err
	}
	sum := sha256.Sum256(buf.Bytes())
	res.SHA256 = hex.EncodeToString(sum[:])
	if err := l.put(name, buf.Bytes()); err != nil {
		return res, err
	}
	res.Size += int64(buf.Len())
	res.URL, err = l.store.join(l.prefix, name)
	return res, err
}

// putText publishes a subtitle rendition: for HLS its WebVTT segments on the ladder's segment
// grid over the ladder's length, and their playlist; for DASH one WebVTT file.
func (l *ladderSink) putText(r *rendition, total time.Duration) (int64, error) {
	var buf bytes.Buffer
	if l.kind != job.ContainerHLS {
		if err := segment.WriteVTT(&buf, r.text.Cues()); err != nil {
			return 0, err
		}
		return int64(buf.Len()), l.put(r.name+"/"+textFile, buf.Bytes())
	}
	var size int64
	mp := segment.MediaPlaylist{Ended: true, Text: true}
	for _, s := range segment.CutText(r.text.Cues(), l.target, total) {
		if err := l.put(r.name+"/"+segment.TextSegmentName(s.N), s.Data); err != nil {
			return size, err
		}
		size += int64(len(s.Data))
		r.segs = append(r.segs, segment.Segment{N: s.N, Start: s.Start, Duration: s.Duration, Size: int64(len(s.Data))})
		mp.Segments = append(mp.Segments, segment.PlaylistSegment{URI: segment.TextSegmentName(s.N), Duration: s.Duration})
	}
	if err := segment.WriteMediaPlaylist(&buf, mp); err != nil {
		return size, err
	}
	return size + int64(buf.Len()), l.put(r.name+"/"+segment.MediaPlaylistName, buf.Bytes())
}

// textFile is a DASH subtitle rendition's one WebVTT file.
const textFile = "subtitles.vtt"

// writeMaster writes the HLS multivariant playlist: a variant per video rendition, each
// language of audio an alternate rendition of one audio group, each subtitle track a WebVTT
// rendition of one subtitle group.
func (l *ladderSink) writeMaster(buf *bytes.Buffer) error {
	m := segment.Master{}
	var audioSegs [][]segment.Segment
	var audioCodec string
	names := map[string]int{}
	for _, r := range l.rends {
		if r.track.Kind == "audio" {
			audioSegs = append(audioSegs, r.segs)
			audioCodec = r.track.Codec
			m.Audio = append(m.Audio, segment.AudioRendition{GroupID: "audio", Name: mediaName(r, "audio", names), Default: r.info.Default || len(audioSegs) == 1 && !anyDefault(l.rends, "audio"),
				URI: r.name + "/" + segment.MediaPlaylistName, Channels: r.track.Channels, Language: job.BCP47(r.info.Language)})
		}
		if r.text != nil {
			m.Subtitles = append(m.Subtitles, segment.SubtitleRendition{GroupID: "subs", Name: mediaName(r, "subtitles", names), Default: r.info.Default,
				URI: r.name + "/" + segment.MediaPlaylistName, Language: job.BCP47(r.info.Language)})
		}
	}
	for _, r := range l.rends {
		if r.track.Kind != "video" {
			continue
		}
		peak, avg := segment.VariantBandwidth(r.segs, audioSegs...)
		v := segment.Variant{URI: r.name + "/" + segment.MediaPlaylistName, Bandwidth: peak, AverageBandwidth: avg,
			Width: r.track.Width, Height: r.track.Height, FrameRate: frameRate(r), Codecs: r.track.Codec, VideoRange: l.videoRange}
		if len(m.Audio) > 0 {
			v.Audio, v.Codecs = "audio", v.Codecs+","+audioCodec
		}
		if len(m.Subtitles) > 0 {
			v.Subtitles = "subs"
		}
		m.Variants = append(m.Variants, v)
	}
	if len(m.Variants) == 0 && len(m.Audio) > 0 {
		// An audio-only ladder: the (first) audio playlist is the one variant.
		a := l.rends[slices.IndexFunc(l.rends, func(r *rendition) bool { return r.track.Kind == "audio" })]
		peak, avg := segment.Bandwidth(a.segs)
		m.Variants = append(m.Variants, segment.Variant{URI: a.name + "/" + segment.MediaPlaylistName, Bandwidth: peak, AverageBandwidth: avg, Codecs: a.track.Codec})
		m.Audio, m.Subtitles = nil, nil
	}
	return segment.WriteMasterPlaylist(buf, m)
}

// mediaName is an alternate rendition's NAME: its language, else the rendition's name;
// unique in the master playlist.
func mediaName(r *rendition, kind string, seen map[string]int) string {
	n := r.info.Language
	if n == "" {
		n = r.name
	}
	seen[kind+n]++
	if c := seen[kind+n]; c > 1 {
		n = fmt.Sprintf("%s %d", n, c)
	}
	return n
}

func anyDefault(rends []*rendition, kind string) bool {
	return slices.ContainsFunc(rends, func(r *rendition) bool { return r.track.Kind == kind && r.info.Default })
}

// writeMPD writes the DASH manifest: one video AdaptationSet, one audio AdaptationSet per
// audio track (its language), one text AdaptationSet per subtitle track.
func (l *ladderSink) writeMPD(buf *bytes.Buffer, total time.Duration) error {
	mpd := segment.MPD{Duration: total, MinBufferTime: l.target}
	for _, r := range l.rends {
		switch {
		case r.text != nil:
			mpd.AdaptationSets = append(mpd.AdaptationSets, segment.AdaptationSet{ContentType: "text", Lang: job.BCP47(r.info.Language),
				Representations: []segment.Representation{{ID: r.name, BaseURL: r.name + "/" + textFile, Track: r.track}}})
		case r.track.Kind == "audio":
			peak, _ := segment.Bandwidth(r.segs)
			mpd.AdaptationSets = append(mpd.AdaptationSets, segment.AdaptationSet{ContentType: "audio", Lang: job.BCP47(r.info.Language),
				Representations: []segment.Representation{{ID: r.name, Track: r.track, Bandwidth: peak, Segments: r.segs}}})
		default:
			peak, _ := segment.Bandwidth(r.segs)
			mpd.Representations = append(mpd.Representations, segment.Representation{ID: r.name, Track: r.track, Bandwidth: peak, FrameRate: frameRate(r), Segments: r.segs})
		}
	}
	// The video set first: the Representations WriteMPD groups go after AdaptationSets.
	if len(mpd.Representations) > 0 {
		mpd.AdaptationSets = append([]segment.AdaptationSet{{ContentType: "video", Representations: mpd.Representations}}, mpd.AdaptationSets...)
		mpd.Representations = nil
	}
	return segment.WriteMPD(buf, mpd)
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
