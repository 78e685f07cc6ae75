package ffmpeg

import (
	"slices"
	"testing"
)

// TestArgPaths: the sandbox's files are every file: URL of the argv and the files a filter
// graph names (a burn-in's subtitles filter reads its track from a file).
func TestArgPaths(t *testing.T) {
	p := argPaths([]string{"-i", "file:/spool/in", "-filter_complex",
		"[0:V:0]scale=854:480,subtitles=filename=/spool/transcoder-burn-1.ass,format=yuv420p[v0]",
		"-map", "[v0]", "-y", "file:/spool/out.mp4", "-f", "segment", "file:/spool/gops/gop%05d.ts"})
	if !slices.Equal(p.Read, []string{"/spool/in", "/spool/transcoder-burn-1.ass"}) {
		t.Errorf("read %v", p.Read)
	}
	if !slices.Equal(p.Write, []string{"/spool/out.mp4"}) || !slices.Equal(p.Dirs, []string{"/spool/gops"}) {
		t.Errorf("write %v, dirs %v", p.Write, p.Dirs)
	}
}
