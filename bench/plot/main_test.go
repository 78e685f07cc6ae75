package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseLatencyCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []latencyPoint
		wantErr string
	}{
		{name: "ok", in: "percentile,ns\n0,100\n50,200\n99.9,3000\n100,4000\n",
			want: []latencyPoint{{0, 100}, {50, 200}, {99.9, 3000}, {100, 4000}}},
		{name: "blank lines and spaces", in: "\npercentile, ns\n\n 90 , 1e3\n",
			want: []latencyPoint{{90, 1000}}},
		{name: "empty", in: "", wantErr: "no header"},
		{name: "header only", in: "percentile,ns\n", wantErr: "no data rows"},
		{name: "wrong header", in: "p,ns\n50,1\n", wantErr: "header"},
		{name: "three fields", in: "percentile,ns\n50,1,2\n", wantErr: "3 fields"},
		{name: "not a number", in: "percentile,ns\n50,abc\n", wantErr: "bad number"},
		{name: "NaN", in: "percentile,ns\n50,NaN\n", wantErr: "bad number"},
		{name: "percentile above 100", in: "percentile,ns\n101,1\n", wantErr: "out of range"},
		{name: "negative latency", in: "percentile,ns\n50,-1\n", wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLatencyCSV(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRSSCSV(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []rssPoint
		wantErr string
	}{
		{name: "ok", in: "input_bytes,peak_rss_bytes\n1000000,52428800\n1000000000,54525952\n",
			want: []rssPoint{{1e6, 52428800}, {1e9, 54525952}}},
		{name: "zero input", in: "input_bytes,peak_rss_bytes\n0,1\n", wantErr: "positive"},
		{name: "latency header", in: "percentile,ns\n50,1\n", wantErr: "header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRSSCSV(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseLatencyName(t *testing.T) {
	tests := []struct {
		in            string
		cond, variant string
		ok            bool
	}{
		{"latency-quiet-ring.csv", "quiet", "ring", true},
		{"latency-gcpressure-bytebufferpool.csv", "gcpressure", "bytebufferpool", true},
		{"latency-quiet-.csv", "", "", false},
		{"latency-quiet.csv", "", "", false},
		{"rss.csv", "", "", false},
		{"latency-quiet-ring.png", "", "", false},
	}
	for _, tt := range tests {
		cond, variant, ok := parseLatencyName(tt.in)
		if cond != tt.cond || variant != tt.variant || ok != tt.ok {
			t.Errorf("parseLatencyName(%q) = %q, %q, %v; want %q, %q, %v", tt.in, cond, variant, ok, tt.cond, tt.variant, tt.ok)
		}
	}
}

func TestRunDrawsPNGs(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	csv := "percentile,ns\n0,1000\n50,2000\n90,5000\n99,20000\n99.9,80000\n99.99,150000\n99.999,160000\n100,170000\n"
	for _, name := range []string{"latency-quiet-ring.csv", "latency-quiet-make.csv", "latency-gcpressure-ring.csv"} {
		if err := os.WriteFile(filepath.Join(in, name), []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rss := "input_bytes,peak_rss_bytes\n10000000,40000000\n100000000,41000000\n1000000000,41500000\n"
	if err := os.WriteFile(filepath.Join(in, "rss.csv"), []byte(rss), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-in", in, "-out", out}, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	for _, name := range []string{"latency-quiet.png", "latency-gcpressure.png", "rss.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := png.DecodeConfig(f)
		_ = f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Width == 0 || cfg.Height == 0 {
			t.Fatalf("%s: %dx%d", name, cfg.Width, cfg.Height)
		}
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("stdout %q does not name %s", stdout.String(), name)
		}
	}
}

func TestRunErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"-in", t.TempDir(), "-out", t.TempDir()}, &stdout, &stderr); err == nil {
		t.Error("empty input directory: no error")
	}
	if err := run([]string{"-bogus"}, &stdout, &stderr); err == nil {
		t.Error("unknown flag: no error")
	}
	in := t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "latency-quiet-ring.csv"), []byte("nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-in", in, "-out", t.TempDir()}, &stdout, &stderr); err == nil {
		t.Error("bad CSV: no error")
	}
}
