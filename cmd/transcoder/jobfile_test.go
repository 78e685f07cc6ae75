package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
)

// TestJobFile: --job FILE is the whole job, for run and submit; the job flags and an INPUT
// beside it are refused (usage errors), and a bad job in it is named by its field.
func TestJobFile(t *testing.T) {
	dir := t.TempDir()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3})
	out := filepath.Join(dir, "clip.mp4")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("job.json", `{"input":"file://`+in+`","clip":{"start":"1s"},"outputs":[
		{"url":"file://`+out+`","preset":"h264-480p","video":{"preset":"ultrafast"},"loudness":{"target":-16}}]}`)

	stdout, _, err := cli(t, "submit", "--job", good, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Decode([]byte(stdout))
	if err != nil || j.ID == "" || j.Clip == nil || j.Clip.Start != job.Duration(time.Second) || j.Outputs[0].Loudness == nil {
		t.Fatalf("dry-run job %+v, %v:\n%s", j, err, stdout)
	}
	for name, args := range map[string][]string{
		"with -o":      {"run", "--job", good, "-o", filepath.Join(dir, "x.mp4")},
		"with preset":  {"submit", "--job", good, "--preset", "h264-720p", "--dry-run"},
		"with INPUT":   {"run", in, "--job", good},
		"with upload":  {"submit", "--job", good, "--upload", in, "--dry-run"},
		"neither":      {"run"},
		"missing file": {"run", "--job", filepath.Join(dir, "none.json")},
		"bad field":    {"run", "--job", write("bad.json", `{"input":"file://`+in+`","outputs":[{"url":"file:///o.mp4","preset":"h264-480p","loudness":{"target":2}}]}`)},
		"unknown key":  {"run", "--job", write("typo.json", `{"input":"file://`+in+`","ouputs":[]}`)},
	} {
		_, _, err := cli(t, args...)
		if exitCode(err) != 2 {
			t.Errorf("%s: err %v (exit %d), want a usage error", name, err, exitCode(err))
		}
		if name == "bad field" && !strings.Contains(err.Error(), "outputs[0].loudness.target") {
			t.Errorf("bad field: %v does not name it", err)
		}
	}

	stdout, stderr, err := cli(t, "run", "--job", good)
	if err != nil {
		t.Fatalf("run --job: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, out) || !strings.Contains(stdout, "loudness") {
		t.Errorf("run did not report the output and its loudness: %q", stdout)
	}
	if d := testenv.Probe(t, out, "format=duration", ""); !strings.HasPrefix(d, "2.0") {
		t.Errorf("clip from 1s of 3s lasts %s, want 2s", d)
	}
}
