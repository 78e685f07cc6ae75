package ffmpeg

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func ExampleSpec_Args() {
	s := Spec{
		Outputs: []Output{{
			Container: "mp4",
			Video:     &Video{Codec: "libx264", Height: 720, CRF: 23, Preset: "veryfast"},
			Audio:     &Audio{Codec: "aac", Bitrate: "128k", Channels: 2, SampleRate: 48000},
		}},
	}
	args, err := s.Args()
	if err != nil {
		panic(err)
	}
	fmt.Println(Quote(append([]string{"ffmpeg"}, args...)))
	// Output:
	// ffmpeg -hide_banner -nostdin -nostats -loglevel level+error -progress pipe:4 -stats_period 0.5 -probesize 16777216 -protocol_whitelist pipe -format_whitelist mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,kux,ogg,nut,ivf,obu,asf,rm,ivr,nsv,nuv,r3d,cine,mpegts,mpeg,pva,ty,mxf,gxf,lxf,dv,wtv,dhav,ifv,h261,h263,h264,hevc,mpegvideo,m4v,vc1,av1,avs2,avs3,cavsvideo,dirac,dnxhd,mjpeg,mjpeg_2000,yuv4mpegpipe,wav,w64,aiff,caf,au,sox,ircam,nistsphere,avr,epaf,mp3,aac,loas,ac3,eac3,dts,dtshd,truehd,mlp,spdif,s337m,flac,ape,tta,wv,tak,shn,mpc,mpc8,dsf,wsd,amr,amrnb,amrwb,gsm,g723_1,g729,ilbc,qcp,sbc,codec2,oma,voc,xwma,mmf,act,dss,vqf,rso -i pipe:0 -map '0:V:0?' -map '0:a:0?' -c:v libx264 -vf 'setpts='\''if(eq(N,0),min(PTS,0),PTS)'\'',scale=-2:720,setsar=1,format=yuv420p' -fps_mode passthrough -enc_time_base:v -1 -preset veryfast -crf 23 -c:a aac -b:a 128k -ac 2 -ar 48000 -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof pipe:3
}

func ExampleQuote() {
	fmt.Println(Quote([]string{"ffmpeg", "-i", "file:/spool/my clip.mp4", "-vf", "scale=1280:720", "it's", ""}))
	// Output:
	// ffmpeg -i 'file:/spool/my clip.mp4' -vf scale=1280:720 'it'\''s' ''
}

// tail returns the argv after the input ("-i url").
func afterInput(t *testing.T, args []string) []string {
	t.Helper()
	i := slices.Index(args, "-i")
	if i < 0 {
		t.Fatalf("no -i in %q", args)
	}
	return args[i+2:]
}

func TestArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		spec      Spec
		threads   int
		wantIn    []string // must appear, in order, up to and including -i
		wantOut   string   // argv after the input, space-joined
		wantFlags []string // each must appear somewhere
	}{
		{
			name:    "file input, audio only m4a, duration",
			spec:    Spec{Input: Input{Path: "/spool/a b.mp4", Format: "mov"}, Outputs: []Output{{Container: "m4a", Audio: &Audio{Codec: "aac"}, Duration: 1500 * time.Millisecond}}},
			wantIn:  []string{"-protocol_whitelist", "file", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-f", "mov", "-i", "file:/spool/a b.mp4"},
			wantOut: "-map 0:a:0? -vn -c:a aac -t 1.5 -frag_duration 1000000 -f ipod -movflags +delay_moov+default_base_moof pipe:3",
		},
		{
			name:    "copy both into mpegts",
			spec:    Spec{Outputs: []Output{{Container: "mpegts", Video: &Video{Codec: "copy"}, Audio: &Audio{Codec: "copy"}}}},
			wantOut: "-map 0:V:0? -map 0:a:0? -c:v copy -c:a copy -f mpegts pipe:3",
		},
		{
			name: "full x264 video, no audio, threads",
			spec: Spec{MaxPixels: 8294400, Outputs: []Output{{Container: "mkv", Video: &Video{
				Codec: "libx264", Width: 1280, Height: 720, CRF: 20, Preset: "fast", Bitrate: "3M", MaxRate: "4M", BufSize: "8M",
				PixFmt: "yuv420p10le", FPS: 29.97, GOP: 60, Profile: "high", Deinterlace: true,
			}}}},
			threads:   4,
			wantIn:    []string{"-max_pixels", "8294400", "-protocol_whitelist", "pipe", "-format_whitelist", strings.Join(AllowedDemuxers, ","), "-i", "pipe:0"},
			wantOut:   "-map 0:V:0? -c:v libx264 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',yadif=deint=interlaced,fps=29.97,scale=1280:720,setsar=1,format=yuv420p10le -fps_mode cfr -preset fast -crf 20 -b:v 3M -maxrate 4M -bufsize 8M -profile:v high -g 60 -threads 4 -an -f matroska -live 1 pipe:3",
			wantFlags: []string{"-progress", "pipe:4"},
		},
		{
			name:    "hevc into mp4 is tagged hvc1, all audio tracks",
			spec:    Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx265", Height: 720, CRF: 26, Preset: "fast", Profile: "main"}, Audio: &Audio{Codec: "aac", Channels: 2, Tracks: []AudioTrack{{N: 1, Default: true}, {N: 0}}}}}},
			wantOut: "-map 0:V:0? -map 0:a:1 -map 0:a:0 -c:v libx265 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',scale=-2:720,setsar=1,format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -preset fast -crf 26 -profile:v main -x265-params log-level=error -tag:v hvc1 -c:a aac -ac 2 -disposition:a:0 default -disposition:a:1 0 -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof pipe:3",
		},
		{
			name:    "hevc into mpegts is not tagged",
			spec:    Spec{Outputs: []Output{{Container: "mpegts", Video: &Video{Codec: "libx265", FPS: 25}}}},
			wantOut: "-map 0:V:0? -c:v libx265 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',fps=25,format=yuv420p -fps_mode cfr -x265-params log-level=error -an -f mpegts pipe:3",
		},
		{
			name:    "svt-av1 with a numeric preset",
			spec:    Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libsvtav1", Width: 1280, Height: 720, Fit: true, CRF: 35, Preset: "8"}}}},
			wantOut: "-map 0:V:0? -c:v libsvtav1 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',scale=w='" + mustFit(1280, 720, 0) + "':h='" + mustFit(1280, 720, 1) + "',setsar=1,format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -preset 8 -crf 35 -an -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof pipe:3",
		},
		{
			name:    "opus into ogg",
			spec:    Spec{Outputs: []Output{{Container: "ogg", Audio: &Audio{Codec: "libopus", Bitrate: "96k", Channels: 2, SampleRate: 48000}}}},
			wantOut: "-map 0:a:0? -vn -c:a libopus -b:a 96k -ac 2 -ar 48000 -f ogg pipe:3",
		},
		{
			name:    "vp9 crf into webm",
			spec:    Spec{Outputs: []Output{{Container: "webm", Video: &Video{Codec: "libvpx-vp9", Width: 640, CRF: 31, Preset: "realtime"}, Audio: &Audio{Codec: "libopus", Bitrate: "96k"}}}},
			wantOut: "-map 0:V:0? -map 0:a:0? -c:v libvpx-vp9 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',scale=640:-2,setsar=1,format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -deadline realtime -crf 31 -b:v 0 -row-mt 1 -cpu-used 8 -c:a libopus -b:a 96k -f webm -live 1 pipe:3",
		},
		{
			name: "two outputs get consecutive pipes, progress after them",
			spec: Spec{Outputs: []Output{
				{Container: "mp4", Video: &Video{Codec: "libx264"}, Audio: &Audio{Codec: "aac"}},
				{Container: "m4a", Audio: &Audio{Codec: "aac"}},
			}},
			wantOut: "-map 0:V:0? -map 0:a:0? -c:v libx264 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -c:a aac -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof pipe:3 " +
				"-map 0:a:0? -vn -c:a aac -frag_duration 1000000 -f ipod -movflags +delay_moov+default_base_moof pipe:4",
			wantFlags: []string{"pipe:5"},
		},
		{
			name:    "faststart mp4 to a spool file",
			spec:    Spec{Outputs: []Output{{Container: "mp4", Path: "/spool/o.mp4", Video: &Video{Codec: "libx264"}}}},
			wantOut: "-map 0:V:0? -c:v libx264 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -an -f mp4 -movflags +faststart -y file:/spool/o.mp4",
		},
		{
			name: "ladder rendition and audio for segments: forced keyframes, no scene cuts, cmaf",
			spec: Spec{Outputs: []Output{
				{Container: "mp4", Segment: 4 * time.Second, Video: &Video{Codec: "libx264", Bitrate: "800k"}},
				{Container: "mp4", Segment: 4 * time.Second, Video: &Video{Codec: "libx265"}},
				{Container: "mp4", Segment: 4 * time.Second, Audio: &Audio{Codec: "aac"}},
			}},
			wantOut: "-map 0:V:0? -c:v libx264 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -b:v 800k -force_key_frames expr:gte(t,n_forced*4) -sc_threshold 0 -an -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof+cmaf -map_chapters -1 pipe:3 " +
				"-map 0:V:0? -c:v libx265 -vf setpts='if(eq(N,0),min(PTS,0),PTS)',format=yuv420p -fps_mode passthrough -enc_time_base:v -1 -x265-params log-level=error:scenecut=0 -force_key_frames expr:gte(t,n_forced*4) -tag:v hvc1 -an -f mp4 -movflags +frag_keyframe+delay_moov+default_base_moof+cmaf -map_chapters -1 pipe:4 " +
				"-map 0:a:0? -vn -c:a aac -frag_duration 1000000 -f mp4 -movflags +delay_moov+default_base_moof+cmaf -map_chapters -1 pipe:5",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args, err := tt.spec.args(tt.threads)
			if err != nil {
				t.Fatal(err)
			}
			if got := args[:5]; !slices.Equal(got, []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+error"}) {
				t.Errorf("prefix = %q", got)
			}
			if !slices.Contains(args, "-stats_period") {
				t.Errorf("no -stats_period in %q", args)
			}
			if tt.wantIn != nil {
				i := slices.Index(args, tt.wantIn[0])
				if i < 0 || !slices.Equal(args[i:i+len(tt.wantIn)], tt.wantIn) {
					t.Errorf("input args: want %q in %q", tt.wantIn, args)
				}
			}
			if got := strings.Join(afterInput(t, args), " "); got != tt.wantOut {
				t.Errorf("outputs:\n got %s\nwant %s", got, tt.wantOut)
			}
			for _, f := range tt.wantFlags {
				if !slices.Contains(args, f) {
					t.Errorf("missing %q in %q", f, args)
				}
			}
			if tt.threads == 0 {
				plain, _ := tt.spec.Args()
				if !slices.Equal(plain, args) {
					t.Errorf("Spec.Args differs from args(0)")
				}
			}
		})
	}
}

func TestArgsInvalid(t *testing.T) {
	t.Parallel()
	v := func(mod func(*Video)) Spec {
		vid := &Video{Codec: "libx264"}
		mod(vid)
		return Spec{Outputs: []Output{{Container: "mp4", Video: vid}}}
	}
	a := func(mod func(*Audio)) Spec {
		au := &Audio{Codec: "aac"}
		mod(au)
		return Spec{Outputs: []Output{{Container: "mp4", Audio: au}}}
	}
	tests := []struct {
		name, field string
		spec        Spec
	}{
		{"no outputs", "Outputs", Spec{}},
		{"too many outputs", "Outputs", Spec{Outputs: make([]Output, MaxOutputs+1)}},
		{"unknown container", "Outputs[0].Container", Spec{Outputs: []Output{{Container: "avi", Audio: &Audio{Codec: "aac"}}}}},
		{"empty output", "Outputs[0]", Spec{Outputs: []Output{{Container: "mp4"}}}},
		{"negative duration", "Outputs[0].Duration", Spec{Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}, Duration: -1}}}},
		{"lavfi input", "Input.Format", Spec{Input: Input{Format: "lavfi"}, Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}}}}},
		{"hls input", "Input.Format", Spec{Input: Input{Format: "hls"}, Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}}}}},
		{"negative max pixels", "MaxPixels", Spec{MaxPixels: -1, Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}}}}},
		{"video in m4a", "Outputs[0].Video.Codec", Spec{Outputs: []Output{{Container: "m4a", Video: &Video{Codec: "libx264"}}}}},
		{"h264 in webm", "Outputs[0].Video.Codec", Spec{Outputs: []Output{{Container: "webm", Video: &Video{Codec: "libx264"}}}}},
		{"aac in webm", "Outputs[0].Audio.Codec", Spec{Outputs: []Output{{Container: "webm", Audio: &Audio{Codec: "aac"}}}}},
		{"video in ogg", "Outputs[0].Video.Codec", Spec{Outputs: []Output{{Container: "ogg", Video: &Video{Codec: "libx264"}}}}},
		{"aac in ogg", "Outputs[0].Audio.Codec", Spec{Outputs: []Output{{Container: "ogg", Audio: &Audio{Codec: "aac"}}}}},
		{"svt-av1 with an x264 preset", "Outputs[0].Video.Preset", v(func(v *Video) { v.Codec = "libsvtav1"; v.Preset = "fast" })},
		{"svt-av1 preset out of range", "Outputs[0].Video.Preset", v(func(v *Video) { v.Codec = "libsvtav1"; v.Preset = "14" })},
		{"unknown video codec", "Outputs[0].Video.Codec", v(func(v *Video) { v.Codec = "h264" })},
		{"odd width", "Outputs[0].Video.Width", v(func(v *Video) { v.Width = 641 })},
		{"negative height", "Outputs[0].Video.Height", v(func(v *Video) { v.Height = -2 })},
		{"crf range", "Outputs[0].Video.CRF", v(func(v *Video) { v.CRF = 70 })},
		{"bad preset", "Outputs[0].Video.Preset", v(func(v *Video) { v.Preset = "turbo" })},
		{"bad bitrate", "Outputs[0].Video.Bitrate", v(func(v *Video) { v.Bitrate = "-1k" })},
		{"bad pixfmt", "Outputs[0].Video.PixFmt", v(func(v *Video) { v.PixFmt = "yuv420p,scale=1" })},
		{"bad profile", "Outputs[0].Video.Profile", v(func(v *Video) { v.Profile = "high -x" })},
		{"fps", "Outputs[0].Video.FPS", v(func(v *Video) { v.FPS = 1000 })},
		{"gop", "Outputs[0].Video.GOP", v(func(v *Video) { v.GOP = -1 })},
		{"copy with scale", "Outputs[0].Video", v(func(v *Video) { v.Codec = "copy"; v.Width = 640 })},
		{"unknown audio codec", "Outputs[0].Audio.Codec", a(func(a *Audio) { a.Codec = "mp3" })},
		{"audio bitrate", "Outputs[0].Audio.Bitrate", a(func(a *Audio) { a.Bitrate = "lots" })},
		{"channels", "Outputs[0].Audio.Channels", a(func(a *Audio) { a.Channels = 9 })},
		{"sample rate", "Outputs[0].Audio.SampleRate", a(func(a *Audio) { a.SampleRate = 100 })},
		{"audio copy with bitrate", "Outputs[0].Audio", a(func(a *Audio) { a.Codec = "copy"; a.Bitrate = "64k" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.spec.Args()
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

func TestFDs(t *testing.T) {
	t.Parallel()
	if OutputFD(0) != 3 || OutputFD(2) != 5 || ProgressFD(1) != 4 || ProgressFD(3) != 6 {
		t.Error("fd layout changed: outputs from 3, progress after the last output")
	}
}

func mustFit(bw, bh, i int) string {
	w, h := fitExpr(bw, bh)
	return []string{w, h}[i]
}

// TestArgsToneMap: an SDR output of an HDR input tone-maps after its scale, before the pixel
// format, and is tagged BT.709; a ladder tone-maps once, on its largest rung; an output without
// ToneMap (an SDR input, an HDR output) has no colour conversion at all.
func TestArgsToneMap(t *testing.T) {
	t.Parallel()
	pq := &Colour{Transfer: "smpte2084", Primaries: "bt2020", Matrix: "bt2020nc", Range: "tv"}
	chain := "zscale=tin=smpte2084:pin=bt2020:min=bt2020nc:rin=tv:t=linear:npl=100,format=gbrpf32le,zscale=p=bt709," +
		"tonemap=tonemap=hable:desat=0,zscale=t=bt709:m=bt709:r=tv"
	argv := func(t *testing.T, s Spec) string {
		t.Helper()
		a, err := s.Args()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(afterInput(t, a), " ")
	}
	t.Run("file", func(t *testing.T) {
		got := argv(t, Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx264", Height: 480, ToneMap: pq}}}})
		if want := "scale=-2:480,setsar=1," + chain + ",format=yuv420p "; !strings.Contains(got, want) {
			t.Errorf("argv %q\nlacks %q", got, want)
		}
		if want := "-color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv"; !strings.Contains(got, want) {
			t.Errorf("argv %q\nlacks the BT.709 tags %q", got, want)
		}
	})
	t.Run("wide gamut SDR: no tone curve", func(t *testing.T) {
		c := &Colour{Transfer: "bt709", Primaries: "bt2020", Matrix: "bt2020nc", Range: "tv"}
		got := argv(t, Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx264", ToneMap: c}}}})
		if !strings.Contains(got, "zscale=p=bt709,zscale=t=bt709") || strings.Contains(got, "tonemap") {
			t.Errorf("argv %q: want the primaries converted without tonemap", got)
		}
	})
	t.Run("ladder", func(t *testing.T) {
		rung := func(w, h int) Output {
			return Output{Container: "mp4", Segment: 4 * time.Second, Video: &Video{Codec: "libx264", Width: w, Height: h, PixFmt: "yuv420p", ToneMap: pq}}
		}
		got := argv(t, Spec{SplitVideo: true, Outputs: []Output{rung(1280, 720), rung(640, 360)}})
		if want := "scale=1280:720,setsar=1," + chain + ",format=yuv420p,split=2"; !strings.Contains(got, want) || strings.Count(got, "tonemap=tonemap") != 1 {
			t.Errorf("argv %q\nwant one tone map, in %q", got, want)
		}
		if strings.Count(got, "-color_trc bt709") != 2 {
			t.Errorf("argv %q: want both rungs tagged BT.709", got)
		}
	})
	t.Run("HDR output", func(t *testing.T) {
		got := argv(t, Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx265", PixFmt: "yuv420p10le"}}}})
		if strings.Contains(got, "zscale") || strings.Contains(got, "-color_") {
			t.Errorf("argv %q: an output without ToneMap keeps the input's colour", got)
		}
	})
	for name, v := range map[string]*Video{
		"copy":          {Codec: "copy", ToneMap: pq},
		"bad transfer":  {Codec: "libx264", ToneMap: &Colour{Transfer: "linear,drawtext", Primaries: "bt2020", Matrix: "bt2020nc", Range: "tv"}},
		"empty matrix":  {Codec: "libx264", ToneMap: &Colour{Transfer: "smpte2084", Primaries: "bt2020", Range: "tv"}},
		"unknown range": {Codec: "libx264", ToneMap: &Colour{Transfer: "smpte2084", Primaries: "bt2020", Matrix: "bt2020nc", Range: "jpeg"}},
		"bad primaries": {Codec: "libx264", ToneMap: &Colour{Transfer: "smpte2084", Primaries: "x", Matrix: "bt2020nc", Range: "tv"}},
	} {
		if _, err := (Spec{Outputs: []Output{{Container: "mkv", Video: v}}}).Args(); !errors.Is(err, ErrSpec) {
			t.Errorf("%s: err %v, want ErrSpec", name, err)
		}
	}
}
