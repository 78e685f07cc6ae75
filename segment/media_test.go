package segment

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests with real media: ffmpeg writes fMP4 streams to pipes exactly as the worker has it do,
// the Segmenter cuts them, and ffmpeg/ffprobe read the packaged result back.

func needFFmpeg(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
}

const (
	videoMovflags = "+frag_keyframe+delay_moov+default_base_moof+cmaf"
	audioMovflags = "+delay_moov+default_base_moof+cmaf"
)

// encodeOutputs runs one ffmpeg process whose outputs go to pipes 3, 4, ... (as in the worker)
// and returns the bytes each output wrote, saved as dir/out<i>.mp4.
func encodeOutputs(t *testing.T, dir string, inputs []string, outputs [][]string) []string {
	t.Helper()
	args := append([]string{"-hide_banner", "-nostdin", "-v", "error"}, inputs...)
	var files []*os.File
	var paths []string
	for i, o := range outputs {
		p := filepath.Join(dir, fmt.Sprintf("out%d.mp4", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
		paths = append(paths, p)
		args = append(append(args, o...), fmt.Sprintf("pipe:%d", 3+i))
	}
	cmd := exec.Command("ffmpeg", args...)
	cmd.ExtraFiles = files
	out, err := cmd.CombinedOutput()
	for _, f := range files {
		_ = f.Close()
	}
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return paths
}

// packageStream runs the stream at path through a Segmenter into dir/name with the given
// chunking, and checks that the init and media segments hold exactly the stream's ftyp,
// moov, moof and mdat boxes.
func packageStream(t *testing.T, path, dir, name string, sizes func(*rand.Rand) int) *dirHandler {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := &dirHandler{dir: filepath.Join(dir, name)}
	s, err := New(Config{}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(t, s, data, sizes, uint64(len(name))); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s.Track() != h.track || s.Segments() != len(h.segs) {
		t.Fatalf("%s: Track/Segments disagree with the handler", name)
	}
	got := readAll(t, h)
	if want := keepBoxes(t, data); !bytes.Equal(got, want) {
		t.Fatalf("%s: packaged bytes (%d) differ from the stream's boxes (%d)", name, len(got), len(want))
	}
	return h
}

// readAll concatenates a rendition's init and media segments from disk, checking each
// segment's Size against its file.
func readAll(t *testing.T, h *dirHandler) []byte {
	t.Helper()
	out, err := os.ReadFile(filepath.Join(h.dir, InitName))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range h.segs {
		b, err := os.ReadFile(filepath.Join(h.dir, SegmentName(s.N)))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != s.Size {
			t.Fatalf("segment %d: Size %d, file %d bytes", s.N, s.Size, len(b))
		}
		out = append(out, b...)
	}
	return out
}

// keepBoxes returns the top-level ftyp, moov, moof and mdat boxes of an fMP4 file.
func keepBoxes(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []byte
	for len(b) > 0 {
		size := uint64(binary.BigEndian.Uint32(b))
		if size == 1 {
			size = binary.BigEndian.Uint64(b[8:])
		}
		switch string(b[4:8]) {
		case "ftyp", "moov", "moof", "mdat":
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// segmentFile writes init+segment n of a rendition to one file that ffprobe can read.
func segmentFile(t *testing.T, h *dirHandler, n int) string {
	t.Helper()
	init, err := os.ReadFile(filepath.Join(h.dir, InitName))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := os.ReadFile(filepath.Join(h.dir, SegmentName(n)))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), fmt.Sprintf("seg%d.mp4", n))
	if err := os.WriteFile(p, cat(init, seg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func probe(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, args...)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

// decode runs ffmpeg -i input -map m -f null - and returns the frames decoded and the
// output time reached, from -progress.
func decode(t *testing.T, dir, input string, maps ...string) (frames int, outTime time.Duration) {
	t.Helper()
	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1", "-i", input}
	for _, m := range maps {
		args = append(args, "-map", m)
	}
	cmd := exec.Command("ffmpeg", append(args, "-f", "null", "-")...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "frame":
			frames, _ = strconv.Atoi(v)
		case "out_time_us":
			us, _ := strconv.ParseInt(v, 10, 64)
			outTime = time.Duration(us) * time.Microsecond
		}
	}
	return frames, outTime
}

func near(d, want, tol time.Duration) bool { return (d - want).Abs() <= tol }

// TestLadder packages an adaptive-bitrate ladder (two H.264 renditions with forced keyframes
// every 2 s, one of them with extra keyframes from a short GOP, and one AAC rendition) and
// has ffmpeg and ffprobe read it back through the HLS and DASH manifests.
func TestLadder(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	const seconds = 10
	x264 := func(scale string, extra ...string) []string {
		return append([]string{"-map", scale, "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
			"-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0", "-an", "-f", "mp4", "-movflags", videoMovflags}, extra...)
	}
	paths := encodeOutputs(t, dir,
		[]string{"-f", "lavfi", "-t", strconv.Itoa(seconds), "-i", "testsrc2=size=640x360:rate=30",
			"-f", "lavfi", "-t", strconv.Itoa(seconds), "-i", "sine=frequency=440:sample_rate=48000",
			"-filter_complex", "[0:v]split=2[hi][v2];[v2]scale=320:180[lo]"},
		[][]string{
			x264("[hi]"),
			x264("[lo]", "-g", "45"), // extra keyframes at 1.5 s after each one: must not move the cuts
			{"-map", "1:a", "-c:a", "aac", "-b:a", "128k", "-vn", "-frag_duration", "1000000", "-f", "mp4", "-movflags", audioMovflags},
		})
	pkg := filepath.Join(dir, "pkg")
	hi := packageStream(t, paths[0], pkg, "360p", chunkings[2].sizes)
	lo := packageStream(t, paths[1], pkg, "180p", chunkings[1].sizes)
	au := packageStream(t, paths[2], pkg, "audio", chunkings[2].sizes)

	t.Run("tracks", func(t *testing.T) {
		if hi.track.Kind != "video" || hi.track.Width != 640 || hi.track.Height != 360 || lo.track.Width != 320 || lo.track.Height != 180 {
			t.Errorf("video tracks %+v %+v", hi.track, lo.track)
		}
		if au.track.Kind != "audio" || au.track.SampleRate != 48000 || au.track.Channels != 1 /* sine is mono */ || au.track.Codec != "mp4a.40.2" {
			t.Errorf("audio track %+v", au.track)
		}
		// The codec string against ffprobe's profile and level.
		for _, h := range []*dirHandler{hi, lo} {
			out := probe(t, "-select_streams", "v", "-show_entries", "stream=profile,level", "-of", "csv=p=0", segmentFile(t, h, 1))
			profile, level, _ := strings.Cut(out, ",")
			lv, _ := strconv.Atoi(level)
			if profile != "High" || !strings.HasPrefix(h.track.Codec, "avc1.64") || h.track.Codec[9:] != fmt.Sprintf("%02x", lv) {
				t.Errorf("codec %s, ffprobe says %s", h.track.Codec, out)
			}
		}
		if out := probe(t, "-show_entries", "stream=profile", "-of", "csv=p=0", segmentFile(t, au, 1)); out != "LC" {
			t.Errorf("ffprobe says AAC profile %q", out)
		}
		// And against the CODECS that ffmpeg's own HLS muxer writes for a stream encoded alike
		// (it writes none for copied streams).
		ref := filepath.Join(dir, "ref")
		if err := os.Mkdir(ref, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
			"-f", "lavfi", "-t", "1", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-t", "1", "-i", "sine=frequency=440:sample_rate=48000",
			"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
			"-f", "hls", "-hls_segment_type", "fmp4", "-master_pl_name", "master.m3u8", filepath.Join(ref, "index.m3u8")).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg hls: %v %s", err, out)
		}
		master, _ := os.ReadFile(filepath.Join(ref, "master.m3u8"))
		if want := fmt.Sprintf("CODECS=%q", hi.track.Codec+","+au.track.Codec); !bytes.Contains(master, []byte(want)) {
			t.Errorf("ffmpeg's HLS muxer wrote\n%s\nwant %s", master, want)
		}
	})

	t.Run("aligned keyframe segments", func(t *testing.T) {
		if len(hi.segs) != 3 || len(lo.segs) != 3 {
			t.Fatalf("%d and %d segments, want 3 (cuts at 4 s and 8 s)", len(hi.segs), len(lo.segs))
		}
		for i := range hi.segs {
			a, b := hi.segs[i], lo.segs[i]
			if a.Start != b.Start || a.Duration != b.Duration || a.Start != time.Duration(4*i)*time.Second {
				t.Errorf("segment %d: %v+%v and %v+%v", i+1, a.Start, a.Duration, b.Start, b.Duration)
			}
		}
		firstPTS := map[int]string{}
		for _, h := range []*dirHandler{hi, lo} {
			for _, s := range h.segs {
				out := probe(t, "-select_streams", "v", "-read_intervals", "%+#1", "-show_frames", "-show_entries", "frame=key_frame,pict_type,pts_time", "-of", "csv=p=0", segmentFile(t, h, s.N))
				fields := strings.Split(out, ",")
				if len(fields) < 3 || fields[0] != "1" || fields[2] != "I" {
					t.Errorf("%s segment %d starts with frame %q, want a keyframe", filepath.Base(h.dir), s.N, out)
					continue
				}
				if p, ok := firstPTS[s.N]; ok && p != fields[1] {
					t.Errorf("segment %d starts at %s in one rendition, %s in the other", s.N, p, fields[1])
				}
				firstPTS[s.N] = fields[1]
			}
		}
		var total time.Duration
		for _, s := range au.segs {
			total += s.Duration
		}
		if len(au.segs) != 3 || !near(total, seconds*time.Second, 100*time.Millisecond) {
			t.Errorf("audio: %d segments, %v", len(au.segs), total)
		}
	})

	// The manifests.
	rends := []*dirHandler{hi, lo, au}
	names := []string{"360p", "180p", "audio"}
	for i, h := range rends {
		f, err := os.Create(filepath.Join(pkg, MediaPlaylistPath(names[i])))
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteMediaPlaylist(f, NewMediaPlaylist(h.segs, true)); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m := Master{Audio: []AudioRendition{{GroupID: "aac", Name: "English", Language: "en", Default: true, URI: MediaPlaylistPath("audio"), Channels: au.track.Channels}}}
	for i, h := range rends[:2] {
		peak, avg := VariantBandwidth(h.segs, au.segs)
		m.Variants = append(m.Variants, Variant{URI: MediaPlaylistPath(names[i]), Bandwidth: peak, AverageBandwidth: avg,
			Width: h.track.Width, Height: h.track.Height, FrameRate: FrameRate(h.segs), Codecs: h.track.Codec + "," + au.track.Codec, Audio: "aac"})
	}
	writeFile(t, filepath.Join(pkg, MasterPlaylistName), func(f *os.File) error { return WriteMasterPlaylist(f, m) })
	mpd := MPD{Representations: []Representation{
		{ID: "360p", Track: hi.track, Segments: hi.segs},
		{ID: "180p", Track: lo.track, Segments: lo.segs},
		{ID: "audio", Track: au.track, Segments: au.segs},
	}}
	writeFile(t, filepath.Join(pkg, ManifestName), func(f *os.File) error { return WriteMPD(f, mpd) })

	t.Run("hls playback", func(t *testing.T) {
		for _, name := range names {
			out := probe(t, "-show_entries", "format=duration", "-of", "csv=p=0", filepath.Join(pkg, MediaPlaylistPath(name)))
			if d, err := strconv.ParseFloat(out, 64); err != nil || math.Abs(d-seconds) > 0.1 {
				t.Errorf("%s: ffprobe duration %q, want %d s", name, out, seconds)
			}
		}
		for _, mp := range []string{"0:v:0", "0:v:1", "0:a"} {
			frames, outTime := decode(t, pkg, MasterPlaylistName, mp)
			if !near(outTime, seconds*time.Second, 100*time.Millisecond) || (mp != "0:a" && frames != 30*seconds) {
				t.Errorf("master.m3u8 -map %s: %d frames, %v", mp, frames, outTime)
			}
		}
	})

	t.Run("bandwidth", func(t *testing.T) {
		master, err := os.ReadFile(filepath.Join(pkg, MasterPlaylistName))
		if err != nil {
			t.Fatal(err)
		}
		bws := regexp.MustCompile(`(?m)^#EXT-X-STREAM-INF:BANDWIDTH=(\d+)`).FindAllSubmatch(master, -1)
		if len(bws) != 2 {
			t.Fatalf("master:\n%s", master)
		}
		actualPeak := func(h *dirHandler) float64 {
			var peak float64
			for _, s := range h.segs {
				st, err := os.Stat(filepath.Join(h.dir, SegmentName(s.N)))
				if err != nil {
					t.Fatal(err)
				}
				peak = math.Max(peak, float64(st.Size())*8/s.Duration.Seconds())
			}
			return peak
		}
		for i, h := range rends[:2] {
			bw, _ := strconv.Atoi(string(bws[i][1]))
			if need := actualPeak(h) + actualPeak(au); float64(bw) < need {
				t.Errorf("variant %d: BANDWIDTH %d below the actual peak %.0f", i, bw, need)
			}
		}
	})

	t.Run("dash", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(pkg, ManifestName))
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Type   string `xml:"type,attr"`
			Period struct {
				Sets []struct {
					ContentType string `xml:"contentType,attr"`
					Reps        []struct {
						ID       string `xml:"id,attr"`
						Template struct {
							Timescale uint32 `xml:"timescale,attr"`
							S         []struct {
								D uint64 `xml:"d,attr"`
								R int    `xml:"r,attr"`
							} `xml:"SegmentTimeline>S"`
						} `xml:"SegmentTemplate"`
					} `xml:"Representation"`
				} `xml:"AdaptationSet"`
			}
		}
		if err := xml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.Type != "static" || len(doc.Period.Sets) != 2 || len(doc.Period.Sets[0].Reps) != 2 || len(doc.Period.Sets[1].Reps) != 1 {
			t.Fatalf("MPD structure:\n%s", b)
		}
		for _, set := range doc.Period.Sets {
			for _, r := range set.Reps {
				var total uint64
				for _, s := range r.Template.S {
					total += s.D * uint64(s.R+1)
				}
				if d := tsToDuration(total, r.Template.Timescale); !near(d, seconds*time.Second, 100*time.Millisecond) {
					t.Errorf("%s: timeline totals %v", r.ID, d)
				}
			}
		}
		for _, mp := range []string{"0:v:0", "0:v:1", "0:a"} {
			frames, outTime := decode(t, pkg, ManifestName, mp)
			if !near(outTime, seconds*time.Second, 100*time.Millisecond) || (mp != "0:a" && frames != 30*seconds) {
				t.Errorf("manifest.mpd -map %s: %d frames, %v", mp, frames, outTime)
			}
		}
	})
}

func writeFile(t *testing.T, path string, fn func(*os.File) error) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func haveEncoder(t *testing.T, name string) bool {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^ \S+ ` + regexp.QuoteMeta(name) + `\s`).Match(out)
}

// TestCodecsFromFFmpeg packages short HEVC, VP9, AV1 and Opus fMP4 streams from ffmpeg and
// checks the codecs strings against ffprobe and the streams' own parameter sets, and that the
// packaged rendition plays through its media playlist.
func TestCodecsFromFFmpeg(t *testing.T) {
	needFFmpeg(t)
	src := []string{"-f", "lavfi", "-t", "2", "-i", "testsrc2=size=320x180:rate=30"}
	video := func(args ...string) []string {
		return append(append([]string{"-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*1)"}, args...),
			"-f", "mp4", "-movflags", videoMovflags)
	}
	tests := []struct {
		name    string
		encoder string
		input   []string
		output  []string
		codec   *regexp.Regexp
		check   func(t *testing.T, tr Track, seg1 string, init []byte)
	}{
		{"hevc", "libx265", src, video("-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1", "-x265-params", "log-level=error:scenecut=0"),
			regexp.MustCompile(`^hvc1\.1\.6\.L(\d+)\.[0-9A-F]{1,2}(\.[0-9A-F]{1,2})*$`), checkHEVC},
		{"vp9", "libvpx-vp9", src, video("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"),
			regexp.MustCompile(`^vp09\.00\.(10|11|20|21|30|31|40|41|50|51|52|60|61|62)\.08$`), nil},
		{"av1", "libsvtav1", src, video("-c:v", "libsvtav1", "-preset", "12"),
			regexp.MustCompile(`^av01\.0\.\d\dM\.08$`), checkAV1Level},
		{"opus", "libopus", []string{"-f", "lavfi", "-t", "2", "-i", "sine=frequency=440:sample_rate=48000"},
			[]string{"-c:a", "libopus", "-b:a", "64k", "-frag_duration", "1000000", "-f", "mp4", "-movflags", audioMovflags},
			regexp.MustCompile(`^Opus$`), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !haveEncoder(t, tc.encoder) {
				t.Skipf("ffmpeg has no %s encoder", tc.encoder)
			}
			dir := t.TempDir()
			paths := encodeOutputs(t, dir, tc.input, [][]string{tc.output})
			h := &dirHandler{dir: filepath.Join(dir, tc.name)}
			data, err := os.ReadFile(paths[0])
			if err != nil {
				t.Fatal(err)
			}
			s, _ := New(Config{Target: time.Second}, h)
			if err := feed(t, s, data, chunkings[2].sizes, 7); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			tr := h.track
			if !tc.codec.MatchString(tr.Codec) {
				t.Fatalf("codec %q, want %v", tr.Codec, tc.codec)
			}
			if tr.Kind == "video" && (tr.Width != 320 || tr.Height != 180) {
				t.Errorf("size %dx%d", tr.Width, tr.Height)
			}
			if tr.Kind == "audio" && (tr.Channels != 1 || tr.SampleRate != 48000) {
				t.Errorf("audio %+v", tr)
			}
			seg1 := segmentFile(t, h, 1)
			if tc.check != nil {
				init, err := os.ReadFile(filepath.Join(h.dir, InitName))
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, tr, seg1, init)
			}
			writeFile(t, filepath.Join(h.dir, MediaPlaylistName), func(f *os.File) error {
				return WriteMediaPlaylist(f, NewMediaPlaylist(h.segs, true))
			})
			_, outTime := decode(t, h.dir, MediaPlaylistName, "0")
			if !near(outTime, 2*time.Second, 100*time.Millisecond) {
				t.Errorf("decoded %v of 2s", outTime)
			}
			t.Logf("%s: %s, %d segments", tc.name, tr.Codec, len(h.segs))
		})
	}
}

// checkHEVC compares the codecs string with ffprobe's profile and level, and the hvcC fields
// it is made of with the profile_tier_level of the SPS inside the hvcC.
func checkHEVC(t *testing.T, tr Track, seg1 string, init []byte) {
	out := probe(t, "-show_entries", "stream=profile,level", "-of", "csv=p=0", seg1)
	level := regexp.MustCompile(`\.L(\d+)`).FindStringSubmatch(tr.Codec)
	if level == nil || out != "Main,"+level[1] {
		t.Errorf("ffprobe says %q for %s", out, tr.Codec)
	}
	i := bytes.Index(init, []byte("hvcC"))
	if i < 0 {
		t.Fatal("no hvcC")
	}
	hvcC := init[i+4:]
	arrays, p := int(hvcC[22]), 23
	for range arrays {
		typ, n := hvcC[p]&0x3f, int(binary.BigEndian.Uint16(hvcC[p+1:]))
		p += 3
		for range n {
			l := int(binary.BigEndian.Uint16(hvcC[p:]))
			nal := hvcC[p+2 : p+2+l]
			p += 2 + l
			if typ != 33 {
				continue
			}
			rbsp := bytes.ReplaceAll(nal, []byte{0, 0, 3}, []byte{0, 0})
			// NAL header (2 bytes), vps id/max sub layers/nesting (1), then profile_tier_level:
			// the same 12 bytes as hvcC[1:13].
			if !bytes.Equal(rbsp[3:15], hvcC[1:13]) {
				t.Errorf("SPS profile_tier_level % x, hvcC % x", rbsp[3:15], hvcC[1:13])
			}
			return
		}
	}
	t.Error("no SPS in hvcC")
}

// checkAV1Level compares the level in the codecs string with ffprobe's when it reports one.
func checkAV1Level(t *testing.T, tr Track, seg1 string, _ []byte) {
	out := probe(t, "-show_entries", "stream=profile,level", "-of", "csv=p=0", seg1)
	profile, level, _ := strings.Cut(out, ",")
	if profile != "Main" {
		t.Errorf("ffprobe says profile %q for %s", profile, tr.Codec)
	}
	if lv, err := strconv.Atoi(level); err == nil && lv >= 0 && fmt.Sprintf("%02d", lv) != tr.Codec[7:9] {
		t.Errorf("ffprobe says level %d for %s", lv, tr.Codec)
	}
}

// TestWithoutCMAFFlag: the movflags the mp4 container uses today (no cmaf: positive
// composition offsets, no edit list with empty_moov) cut at the same keyframes; segment starts
// are presentation times, so they carry the B-frame delay.
func TestWithoutCMAFFlag(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	paths := encodeOutputs(t, dir, []string{"-f", "lavfi", "-t", "5", "-i", "testsrc2=size=320x180:rate=30"}, [][]string{{
		"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-force_key_frames", "expr:gte(t,n_forced*2)", "-sc_threshold", "0",
		"-f", "mp4", "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
	}})
	h := packageStream(t, paths[0], dir, "v", chunkings[2].sizes)
	if len(h.segs) != 2 || h.segs[1].StartPTS-h.segs[0].StartPTS != 4*uint64(h.track.Timescale) || h.segs[0].DurationTS != 4*uint64(h.track.Timescale) {
		t.Fatalf("segments %+v", h.segs)
	}
	for _, s := range h.segs {
		out := probe(t, "-select_streams", "v", "-read_intervals", "%+#1", "-show_frames", "-show_entries", "frame=key_frame", "-of", "csv=p=0", segmentFile(t, h, s.N))
		if !strings.HasPrefix(out, "1") { // then side data, if any
			t.Errorf("segment %d starts with key_frame=%s", s.N, out)
		}
	}
}
