package media

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTSPrograms: the programme table of a TS head, in 188-byte packets and in M2TS's 192.
func TestTSPrograms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk := func(name string, extra ...string) []byte {
		p := filepath.Join(dir, name)
		args := []string{"-hide_banner", "-v", "error", "-f", "lavfi", "-i", "sine=duration=0.5", "-f", "lavfi", "-i", "sine=duration=0.5:frequency=880",
			"-map", "0", "-map", "1", "-c:a", "mp2"}
		args = append(append(args, extra...), "-f", "mpegts", p)
		if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	two := []string{"-program", "st=0", "-program", "st=1"}
	for _, c := range []struct {
		name string
		head []byte
		want int
	}{
		{"one programme", mk("one.ts"), 1},
		{"two programmes", mk("two.ts", two...), 2},
		{"m2ts (one programme: ffmpeg writes no more)", mk("one.m2ts", "-mpegts_m2ts_mode", "1"), 1},
		{"not ts", []byte("RIFF....WAVEfmt "), 0},
		{"sync bytes, no PAT", append(append(make([]byte, 0, 600), 0x47), make([]byte, 600)...), 0},
	} {
		if got := tsPrograms(c.head); got != c.want {
			t.Errorf("%s: %d programmes, want %d", c.name, got, c.want)
		}
	}
}
