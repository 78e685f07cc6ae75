package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
)

// A split job: the source's video is cut, by stream copy, into one MPEG-TS file per GOP
// (ffmpeg.CutGOPs); chunks of about the asked duration are planned on the frames' presentation
// times; a chunk's input is the GOP files that hold its frames (and, for an open GOP's leading
// pictures, the GOP they reference); its encode keeps exactly the frames of its window
// (ffmpeg.Window), on the source's clock. The audio is encoded once, whole. The stitch
// concatenates the encoded chunks, takes the audio beside them, copies both into the job's
// output, and verifies it like a whole run's.

// ErrUnsplittable is matched by the errors of a source that cannot be split: no video, a codec
// MPEG-TS does not carry, too few keyframes, an output that cannot be stitched.
var ErrUnsplittable = errors.New("media: cannot split")

func unsplittable(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsplittable, fmt.Sprintf(format, a...))
}

// Chunk is one chunk of a split job.
type Chunk struct {
	Index int
	// First and Last are the GOP files (in CutGOPs' order) the chunk's input is made of.
	First, Last int
	// Window is the chunk's frames, in MPEG-TS ticks of the GOP files' clock.
	Window ffmpeg.Window
	// Frames is how many frames the window holds; Decoded how many more the chunk decodes to
	// reach them (from the keyframe before its start).
	Frames, Decoded int
	// Start and End are the window on the source's clock.
	Start, End time.Duration
}

// SplitPlan is the chunks of a source.
type SplitPlan struct {
	Chunks []Chunk
	GOPs   int // the GOP files CutGOPs makes
	Frames int // every chunk's together: the frames the source decodes to
}

// frame is one video packet, as the split plans it.
type frame struct {
	ticks int64 // presentation time, in TS ticks on the GOP files' clock
	gop   int   // the GOP file its packet is in
	lead  bool  // a leading picture: shown before its GOP's keyframe (open GOP)
}

// PlanSplit plans chunks of about chunk each over a video stream's packets (decode order, time
// base num/den), of equal length. A cut goes at a keyframe near the target (see cutFrames), where
// the copy cut alone separates the chunks; else at the first frame from the target on, and the
// chunk after it decodes from the keyframe before and drops what precedes its window. Frames
// that cannot be decoded (before the first keyframe) are in no chunk.
//
// With grid > 0 (a ladder's segment duration) the chunks are a whole number of segments and
// every cut is on the segment grid, from the first frame, whatever the keyframes: each chunk
// forces its keyframes on the same grid (ffmpeg.Window.KeyEvery), so segments line up across
// chunks and rungs as in a whole run.
func PlanSplit(num, den int64, pkts []ffmpeg.VideoPacket, chunk, grid time.Duration) (*SplitPlan, error) {
	frames, gops, err := splitFrames(num, den, pkts)
	if err != nil {
		return nil, err
	}
	if grid > 0 {
		chunk = max(grid, (chunk+grid/2)/grid*grid)
	}
	cuts := cutFrames(frames, chunk, grid > 0)
	if len(cuts) < 2 {
		return nil, unsplittable("%d frames over %.1fs make a single chunk of %s", len(frames), ticksDur(frames[len(frames)-1].ticks-frames[0].ticks).Seconds(), chunk)
	}
	p := &SplitPlan{GOPs: gops, Frames: len(frames)}
	for i := range cuts {
		lo, hi := cuts[i], len(frames)
		if i+1 < len(cuts) {
			hi = cuts[i+1]
		}
		c := Chunk{Index: i, First: gops, Last: -1, Frames: hi - lo,
			Start: ticksDur(frames[lo].ticks - ffmpeg.TSClock*int64(ffmpeg.TSOffset/time.Second)),
			End:   ticksDur(frames[hi-1].ticks - ffmpeg.TSClock*int64(ffmpeg.TSOffset/time.Second))}
		c.Window.From = frames[lo].ticks - 1
		if lo > 0 {
			c.Window.From = (frames[lo-1].ticks + frames[lo].ticks + 1) / 2
		}
		c.Window.To = frames[hi-1].ticks + 1
		if hi < len(frames) {
			c.Window.To = (frames[hi-1].ticks + frames[hi].ticks + 1) / 2
		}
		if grid > 0 {
			c.Window.Origin, c.Window.KeyEvery, c.Window.KeyIndex = frames[0].ticks, grid, i*int(chunk/grid)
		}
		for _, f := range frames[lo:hi] {
			g := f.gop
			if f.lead && g > 0 {
				g-- // an open GOP's leading picture references the GOP before
			}
			c.First, c.Last = min(c.First, g), max(c.Last, f.gop)
		}
		for _, f := range frames[:lo] {
			if f.gop >= c.First {
				c.Decoded++
			}
		}
		p.Chunks = append(p.Chunks, c)
	}
	return p, nil
}

// ByCost lists the chunks' indexes, the costliest first: handed out in that order, the last
// chunks to be taken are the shortest, and the workers finish together.
func (p *SplitPlan) ByCost() []int {
	order := make([]int, len(p.Chunks))
	for i := range order {
		order[i] = i
	}
	cost := func(c Chunk) int { return decodeShare*c.Frames + c.Decoded }
	sort.SliceStable(order, func(a, b int) bool { return cost(p.Chunks[order[a]]) > cost(p.Chunks[order[b]]) })
	return order
}

// splitFrames turns packets into frames in presentation order, and counts the GOP files.
func splitFrames(num, den int64, pkts []ffmpeg.VideoPacket) ([]frame, int, error) {
	if num <= 0 || den <= 0 {
		return nil, 0, unsplittable("no video time base")
	}
	first := slices.IndexFunc(pkts, func(p ffmpeg.VideoPacket) bool { return p.Key })
	if first < 0 {
		return nil, 0, unsplittable("the video has no keyframe")
	}
	offset := ffmpeg.TSClock * int64(ffmpeg.TSOffset/time.Second)
	ticks := func(pts int64) int64 {
		// As ffmpeg rescales a copied timestamp: rounded to the nearest tick.
		v := pts * num * ffmpeg.TSClock
		if v >= 0 {
			return (v+den/2)/den + offset
		}
		return -((-v + den/2) / den) + offset
	}
	var frames []frame
	gop, keyTicks := 0, int64(0)
	lastDTS, haveDTS := int64(0), false
	for i, p := range pkts {
		switch {
		case p.NoPTS:
			return nil, 0, unsplittable("the container gives no presentation times (decode order is not presentation order)")
		case !p.NoDTS && haveDTS && p.DTS < lastDTS:
			// A timestamp wrap or a discontinuity (a broadcast capture): no single clock to cut on.
			return nil, 0, unsplittable("the video's timestamps go back at packet %d", i)
		}
		if !p.NoDTS {
			lastDTS, haveDTS = p.DTS, true
		}
		if p.Key && i > 0 {
			gop++ // a GOP file starts at every keyframe after the first packet
		}
		t := ticks(p.PTS)
		if p.Key {
			keyTicks = t
		}
		lead := !p.Key && t < keyTicks
		if i < first || (gop == 0 && lead) {
			// Before the first keyframe, or an open GOP's leading picture of it: nothing before
			// it to reference, so not decodable (a whole run skips them too).
			continue
		}
		frames = append(frames, frame{ticks: t, gop: gop, lead: lead})
	}
	sort.SliceStable(frames, func(a, b int) bool { return frames[a].ticks < frames[b].ticks })
	return frames, gop + 1, nil
}

// decodeShare is what decoding a frame costs next to encoding it, on the conservative side: an
// x264 veryfast 480p encode of a 360p h264 source spends a tenth of its time decoding (measured,
// bench/README.md), a 4K source's decode weighs more.
const decodeShare = 4 // encode / decode

// cutFrames picks the first frame (index in presentation order) of each chunk. The span is
// divided into chunks of equal length (their count rounded from chunk), so the workers get equal
// shares and the last chunk is no longer than the others. Exactly at each target when exact,
// else at a keyframe near it where that is cheaper: a keyframe d away unbalances two chunks by d
// of encoding, a cut at the target costs the decode from the keyframe before it.
func cutFrames(frames []frame, chunk time.Duration, exact bool) []int {
	step := int64(chunk.Seconds() * ffmpeg.TSClock)
	start, end := frames[0].ticks, frames[len(frames)-1].ticks
	n := max(1, (end-start+step/2)/step)
	if exact {
		n = (end - start + step/2) / step // on the ladder's grid: steps stay whole segments
	}
	cuts := []int{0}
	for k := int64(1); k < n; k++ {
		target := start + k*step
		if !exact {
			target = start + k*(end-start)/n
		}
		best := nearCut(frames, target, exact)
		for best < len(frames) && best > 0 && frames[best].ticks == frames[best-1].ticks {
			best++ // frames at the same instant stay in one chunk: the window is by time
		}
		if best > cuts[len(cuts)-1] && best < len(frames) {
			cuts = append(cuts, best)
		}
	}
	return cuts
}

// nearCut picks the cut for one target: its first frame, or a keyframe closer to it than a
// decodeShare of the way back to the keyframe before it (the decode a cut at the target costs).
func nearCut(frames []frame, target int64, exact bool) int {
	at := sort.Search(len(frames), func(i int) bool { return frames[i].ticks >= target })
	if exact {
		return at
	}
	prevKey := frames[0].ticks
	for i := min(at, len(frames)-1); i > 0; i-- {
		if isKeyStart(frames, i) && frames[i].ticks <= target {
			prevKey = frames[i].ticks
			break
		}
	}
	best, bestDist := at, (target-prevKey)/decodeShare+1
	if prevKey == target {
		return at
	}
	for i := at - 1; i >= 0 && target-frames[i].ticks < bestDist; i-- {
		if isKeyStart(frames, i) {
			best, bestDist = i, target-frames[i].ticks
		}
	}
	for i := at; i < len(frames) && frames[i].ticks-target < bestDist; i++ {
		if isKeyStart(frames, i) {
			best, bestDist = i, frames[i].ticks-target
		}
	}
	return best
}

// isKeyStart reports whether frame i is the first one shown of a GOP that needs nothing from
// the one before: a cut there decodes from that GOP's own file.
func isKeyStart(frames []frame, i int) bool {
	return i > 0 && frames[i].gop != frames[i-1].gop && !frames[i].lead
}

func ticksDur(t int64) time.Duration { return time.Duration(t) * time.Second / ffmpeg.TSClock }

// Split is a split job's source, cut and planned, on this worker.
type Split struct {
	Plan  *SplitPlan
	Probe *ffmpeg.ProbeResult
	// Videos and Audio are the job's output as planned: what every chunk is encoded with (one
	// video per rung of a ladder; one for a file), and the audio encoded once.
	Videos []ffmpeg.Video
	Audio  *ffmpeg.Audio
	// grid is a ladder's segment duration: chunk cuts and keyframes on its grid. 0 for a file.
	grid time.Duration
	// AudioOffset is how much later than the video the audio starts (a video that leads).
	AudioOffset time.Duration
	gops        []string
	in          *input
	dir         string
	plan        *Plan
	e           *Engine
	// The audio, encoded beside the chunks (StartAudio).
	audioStop context.CancelFunc
	audioDone chan struct{}
	audio     string
	audioErr  error
}

// SplitOptions say how a task is split.
type SplitOptions struct {
	Chunk time.Duration // about how long a chunk is
	// MinDuration > 0: an input shorter than this, by its head, is not split.
	MinDuration time.Duration
}

// PrepareSplit spools the task's input, checks that its one output can be split and
// stitched, and cuts and plans its video. Close the Split when the job ends.
func (e *Engine) PrepareSplit(ctx context.Context, t *Task, o SplitOptions) (*Split, error) {
	t = t.metered()
	in, err := e.openInput(ctx, t, false)
	if err != nil {
		return nil, err
	}
	s := &Split{in: in, e: e}
	if err := e.prepareSplit(ctx, t, s, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (e *Engine) prepareSplit(ctx context.Context, t *Task, s *Split, o SplitOptions) error {
	if o.MinDuration > 0 {
		// Whether to split at all is decided on the head, before the input is spooled: most
		// jobs of a fleet are short and run whole.
		if err := e.longEnough(ctx, s.in, o.MinDuration); err != nil {
			return err
		}
	}
	if s.in.path == "" {
		if err := e.spoolInput(ctx, t, s.in); err != nil {
			return err
		}
		probe, err := e.checkMedia(ctx, t, s.in, s.in.probe)
		if err != nil {
			return err
		}
		if err := e.frameHDR(ctx, t, s.in, probe); err != nil {
			return err
		}
		s.in.probe = probe
		t.probed(probe)
	}
	s.Probe = s.in.probe
	p, err := e.plan(ctx, t, s.in)
	if err != nil {
		return err
	}
	if err := splitOutput(p, s); err != nil {
		return err
	}
	s.plan = p
	v, ok := s.Probe.Video()
	if !ok || !slices.Contains(ffmpeg.Splittable, v.Codec) {
		return unsplittable("the video (%s) cannot be cut by copy into MPEG-TS (%v)", v.Codec, ffmpeg.Splittable)
	}
	if a, ok := s.Probe.Audio(); ok && s.Audio != nil && a.HasStart && v.HasStart && a.Start > v.Start {
		s.AudioOffset = a.Start - v.Start
	}
	if s.dir, err = os.MkdirTemp(e.cfg.SpoolDir, "transcoder-split-"+t.ID+"-"); err != nil {
		return fmt.Errorf("split: %w", storage.NoSpace(err, "spool", e.cfg.SpoolDir))
	}
	// The copy cut makes a file per GOP whatever the plan: it runs beside the packet scan, and
	// the first chunk goes out sooner (each is mostly waiting on reads and process starts).
	cutCtx, stopCut := context.WithCancel(ctx)
	defer stopCut()
	type cut struct {
		gops []string
		err  error
	}
	cutDone := make(chan cut, 1)
	go func() {
		gops, err := e.cfg.FFmpeg.CutGOPs(cutCtx, s.in.path, v.Codec, s.dir)
		cutDone <- cut{gops, err}
	}()
	num, den, pkts, err := e.cfg.FFmpeg.VideoPackets(ctx, s.in.path)
	if err == nil {
		s.Plan, err = PlanSplit(num, den, pkts, o.Chunk, s.grid)
	} else {
		err = fmt.Errorf("split: %w", err)
	}
	if err != nil {
		stopCut()
		<-cutDone
		return err
	}
	c := <-cutDone
	if c.err != nil {
		if errors.Is(c.err, ffmpeg.ErrNoSpace) {
			return fmt.Errorf("split: %w", storage.DiskFull("spool", e.cfg.SpoolDir, c.err))
		}
		return fmt.Errorf("split: %w", c.err)
	}
	s.gops = c.gops
	if len(s.gops) != s.Plan.GOPs {
		return unsplittable("the copy cut made %d GOP files, the packets have %d GOPs", len(s.gops), s.Plan.GOPs)
	}
	t.phase("split")
	return nil
}

// longEnough reports (as nil) an input the head describes as at least minDuration long; an
// input whose head does not say (an mp4 whose index is at its end) is not split.
func (e *Engine) longEnough(ctx context.Context, in *input, minDuration time.Duration) error {
	probe := in.probe
	if probe == nil && in.path == "" {
		probe, _ = e.cfg.FFmpeg.ProbeChunks(ctx, chunks(in.head))
	}
	if probe == nil || probe.Duration < minDuration {
		d := time.Duration(0)
		if probe != nil {
			d = probe.Duration
		}
		return unsplittable("%.0fs long by its head, shorter than split_min_duration (%s)", d.Seconds(), minDuration)
	}
	return nil
}

// splitOutput checks that the plan's one output can be stitched from chunks, and takes its
// encoder settings: a file's video, or every rung of a ladder (its segments then on the
// chunks' keyframe grid).
func splitOutput(p *Plan, s *Split) error {
	if len(p.Outputs) != 1 {
		return unsplittable("a split job has one output (this one has %d)", len(p.Outputs))
	}
	po := p.Outputs[0]
	switch po.Kind {
	case KindFile, KindFaststart:
		o := p.Spec.Outputs[0]
		if !slices.Contains([]string{"mp4", "mkv", "mpegts"}, o.Container) {
			return unsplittable("chunks are stitched into mp4, mkv or mpegts, not %s", o.Container)
		}
	case KindLadder:
		s.grid = po.Resolved.Segment
	default:
		return unsplittable("a %s output is not stitched from chunks", po.Kind)
	}
	for _, o := range p.Spec.Outputs {
		if o.Video != nil {
			if !slices.Contains(ffmpeg.Stitchable, o.Video.Codec) {
				return unsplittable("only %v encodes are stitched from chunks", ffmpeg.Stitchable)
			}
			s.Videos = append(s.Videos, *o.Video)
		}
		if len(o.Subtitles) > 0 || o.Container == "webvtt" || o.Video != nil && o.Video.Burn != nil {
			return unsplittable("subtitles are kept or burned from the whole input")
		}
		if o.Audio != nil {
			if o.Audio.Codec != "aac" || len(o.Audio.Tracks) > 1 {
				return unsplittable("the audio is encoded once into m4a: aac, one track")
			}
			s.Audio = o.Audio
		}
	}
	if len(s.Videos) == 0 {
		return unsplittable("the output has no video")
	}
	return nil
}

// ChunkInput is chunk i's input: its GOP files, one after the other. Close it.
func (s *Split) ChunkInput(i int) (io.ReadCloser, int64, error) {
	c := s.Plan.Chunks[i]
	var files []*os.File
	var readers []io.Reader
	var size int64
	for _, name := range s.gops[c.First : c.Last+1] {
		f, err := os.Open(name)
		if err != nil {
			closeAll(files)
			return nil, 0, fmt.Errorf("split: %w", err)
		}
		if fi, err := f.Stat(); err == nil {
			size += fi.Size()
		}
		files, readers = append(files, f), append(readers, f)
	}
	return multiCloser{Reader: io.MultiReader(readers...), files: files}, size, nil
}

type multiCloser struct {
	io.Reader
	files []*os.File
}

func (m multiCloser) Close() error { closeAll(m.files); return nil }

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// Close removes what the split made on this worker: the spooled source, the GOP files, the
// audio (its encode stopped if it still runs).
func (s *Split) Close() {
	if s.audioStop != nil {
		s.audioStop()
		<-s.audioDone
	}
	if s.in != nil {
		s.in.close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// StartAudio starts encoding the source's audio, whole, into a local m4a in the split's
// directory (the stitch takes it from there). A coordinator starts it once the chunks are out,
// so that it does not delay them. Calls after the first do nothing.
func (s *Split) StartAudio(ctx context.Context) {
	if s.audioDone != nil {
		return
	}
	e := s.e
	ctx, s.audioStop = context.WithCancel(ctx)
	s.audioDone = make(chan struct{})
	go func() {
		defer close(s.audioDone)
		if s.Audio == nil {
			return
		}
		if _, ok := s.Probe.Audio(); !ok {
			return
		}
		path := filepath.Join(s.dir, "audio.m4a")
		spec := ffmpeg.Spec{Input: ffmpeg.Input{Path: s.in.path}, MaxPixels: s.plan.Spec.MaxPixels, Program: s.plan.Spec.Program,
			Outputs: []ffmpeg.Output{{Container: "m4a", Audio: s.Audio, Path: path, MaxBytes: e.cfg.Limits.MaxOutputBytes}}}
		if err := e.runToEnd(ctx, spec); err != nil {
			s.audioErr = fmt.Errorf("split: audio: %w", err)
			return
		}
		s.audio = path
	}()
}

// AudioDone is closed when the audio encode StartAudio began has ended (nil before it).
func (s *Split) AudioDone() <-chan struct{} { return s.audioDone }

// AudioFile waits for the audio encode (started now if it was not) and returns its file; ""
// when the output has no audio.
func (s *Split) AudioFile(ctx context.Context) (string, error) {
	s.StartAudio(ctx)
	select {
	case <-s.audioDone:
		return s.audio, s.audioErr
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// runToEnd runs an ffmpeg spec whose outputs are files, and waits for it.
func (e *Engine) runToEnd(ctx context.Context, spec ffmpeg.Spec) error {
	for _, o := range spec.Outputs {
		if o.Path == "" {
			return errors.New("media: runToEnd writes files only")
		}
	}
	proc, err := e.cfg.FFmpeg.Start(ctx, spec)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, proc.Stop)
	defer stop()
	go func() {
		for range proc.Progress() {
		}
	}()
	for i := range spec.Outputs {
		_ = proc.Output(i).Close() // ffmpeg writes the file; its pipe stays empty
	}
	err = proc.Wait()
	_ = proc.Close()
	return err
}

// Stitch joins the encoded chunks (for each video of the output, a local MPEG-TS file: its
// chunks one after the other) and the audio into the job's output, verifies it against the
// source like a whole run's, and publishes it.
func (e *Engine) Stitch(ctx context.Context, t *Task, s *Split, videos []string) ([]job.OutputResult, error) {
	t = t.metered()
	if len(videos) != len(s.Videos) {
		return nil, fmt.Errorf("media: stitch: %d videos for %d", len(videos), len(s.Videos))
	}
	audio, err := s.AudioFile(ctx)
	if err != nil {
		return nil, err
	}
	t.probed(s.Probe)
	spec := ffmpeg.Spec{Input: ffmpeg.Input{Path: videos[0], Format: "mpegts"}, MaxPixels: s.plan.Spec.MaxPixels}
	for _, v := range videos[1:] {
		spec.VideoInputs = append(spec.VideoInputs, ffmpeg.Input{Path: v, Format: "mpegts"})
	}
	if audio != "" {
		spec.AudioInput = &ffmpeg.AudioInput{Path: audio, Offset: s.AudioOffset}
	}
	rung := 0
	for _, o := range s.plan.Spec.Outputs {
		if o.Video != nil {
			o.Video, o.VideoInput = &ffmpeg.Video{Codec: "copy"}, rung
			rung++
		}
		if o.Audio != nil {
			o.Audio = &ffmpeg.Audio{Codec: "copy"}
		}
		if audio == "" {
			o.Audio = nil
		}
		if o.Video != nil || o.Audio != nil {
			spec.Outputs = append(spec.Outputs, o)
		}
	}
	p := &Plan{Spec: spec, Outputs: s.plan.Outputs}
	in := &input{acq: t.Buffers, path: videos[0], probe: s.Probe, local: videos[0]} // nothing to feed: ffmpeg reads the files
	outs, err := e.createOutputs(ctx, t, p)
	if err != nil {
		return nil, err
	}
	defer outs.abort()
	if err := e.transcode(ctx, t, p, in, outs); err != nil {
		return nil, err
	}
	return e.finish(ctx, t, outs, s.Plan.Frames)
}
