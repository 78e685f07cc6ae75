// Command plot draws the bench package's results as PNGs.
//
//	go run ./bench/plot -in DIR -out DIR
//
// From every latency-<condition>-<variant>.csv in -in (header
// "percentile,ns", as BenchmarkChunkLatency writes them with BENCH_OUT=DIR)
// it draws latency-<condition>.png: chunk latency on a log axis against the
// percentile on a "nines" axis (50, 90, 99, 99.9, ...), one line per variant.
// If -in holds rss.csv (header "input_bytes,peak_rss_bytes") it also draws
// rss.png: the worker's peak RSS in MiB against the input size in MB.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", ".", "directory with latency-*.csv (and optionally rss.csv)")
	out := fs.String("out", ".", "directory to write the PNGs to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}

	series, err := readLatencyDir(*in)
	if err != nil {
		return err
	}
	rssPath := filepath.Join(*in, "rss.csv")
	_, rssErr := os.Stat(rssPath)
	if len(series) == 0 && rssErr != nil {
		return fmt.Errorf("no latency-*.csv or rss.csv in %s", *in)
	}
	for _, cond := range conditions(series) {
		name := filepath.Join(*out, "latency-"+cond+".png")
		if err := drawLatency(name, cond, series); err != nil {
			return err
		}
		fmt.Fprintln(stdout, name)
	}
	if rssErr == nil {
		pts, err := readRSSFile(rssPath)
		if err != nil {
			return err
		}
		name := filepath.Join(*out, "rss.png")
		if err := drawRSS(name, pts); err != nil {
			return err
		}
		fmt.Fprintln(stdout, name)
	}
	return nil
}

// latencyPoint is one row of a latency CSV.
type latencyPoint struct {
	Percentile float64
	NS         float64
}

// latencySeries is one latency-<condition>-<variant>.csv.
type latencySeries struct {
	Condition, Variant string
	Points             []latencyPoint
}

// parseLatencyName splits "latency-<condition>-<variant>.csv". The
// condition is up to the first dash, the variant the rest.
func parseLatencyName(base string) (cond, variant string, ok bool) {
	rest, ok := strings.CutPrefix(base, "latency-")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, ".csv")
	if !ok {
		return "", "", false
	}
	cond, variant, ok = strings.Cut(rest, "-")
	if !ok || cond == "" || variant == "" {
		return "", "", false
	}
	return cond, variant, true
}

func readLatencyDir(dir string) ([]latencySeries, error) {
	names, err := filepath.Glob(filepath.Join(dir, "latency-*.csv"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []latencySeries
	for _, name := range names {
		cond, variant, ok := parseLatencyName(filepath.Base(name))
		if !ok {
			continue
		}
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		pts, err := parseLatencyCSV(f)
		_ = f.Close() // read-only: nothing to lose
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, latencySeries{Condition: cond, Variant: variant, Points: pts})
	}
	return out, nil
}

// parseLatencyCSV reads "percentile,ns" rows: percentiles in [0, 100],
// latencies >= 0.
func parseLatencyCSV(r io.Reader) ([]latencyPoint, error) {
	rows, err := parseCSV(r, "percentile", "ns")
	if err != nil {
		return nil, err
	}
	pts := make([]latencyPoint, 0, len(rows))
	for i, row := range rows {
		if row[0] < 0 || row[0] > 100 || row[1] < 0 {
			return nil, fmt.Errorf("row %d: percentile %g or latency %g out of range", i+2, row[0], row[1])
		}
		pts = append(pts, latencyPoint{Percentile: row[0], NS: row[1]})
	}
	return pts, nil
}

// rssPoint is one row of rss.csv.
type rssPoint struct {
	InputBytes, PeakRSSBytes float64
}

func readRSSFile(name string) ([]rssPoint, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	pts, err := parseRSSCSV(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pts, nil
}

// parseRSSCSV reads "input_bytes,peak_rss_bytes" rows, both > 0 (the input
// size goes on a log axis).
func parseRSSCSV(r io.Reader) ([]rssPoint, error) {
	rows, err := parseCSV(r, "input_bytes", "peak_rss_bytes")
	if err != nil {
		return nil, err
	}
	pts := make([]rssPoint, 0, len(rows))
	for i, row := range rows {
		if row[0] <= 0 || row[1] <= 0 {
			return nil, fmt.Errorf("row %d: sizes must be positive, got %g and %g", i+2, row[0], row[1])
		}
		pts = append(pts, rssPoint{InputBytes: row[0], PeakRSSBytes: row[1]})
	}
	return pts, nil
}

// parseCSV reads a two-column numeric CSV with the given header; blank lines
// are skipped.
func parseCSV(r io.Reader, col1, col2 string) ([][2]float64, error) {
	sc := bufio.NewScanner(r)
	line := 0
	var rows [][2]float64
	header := false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: %d fields, want 2", line, len(fields))
		}
		if !header {
			if strings.TrimSpace(fields[0]) != col1 || strings.TrimSpace(fields[1]) != col2 {
				return nil, fmt.Errorf("line %d: header %q, want %q", line, text, col1+","+col2)
			}
			header = true
			continue
		}
		var row [2]float64
		for i, f := range fields {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d: bad number %q", line, f)
			}
			row[i] = v
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !header {
		return nil, errors.New("empty file: no header")
	}
	if len(rows) == 0 {
		return nil, errors.New("no data rows")
	}
	return rows, nil
}

// conditions returns the conditions in series: quiet first, then the others
// sorted.
func conditions(series []latencySeries) []string {
	var cs []string
	for _, s := range series {
		if !slices.Contains(cs, s.Condition) {
			cs = append(cs, s.Condition)
		}
	}
	slices.SortFunc(cs, func(a, b string) int {
		if a == "quiet" || b == "quiet" {
			return boolInt(b == "quiet") - boolInt(a == "quiet")
		}
		return strings.Compare(a, b)
	})
	return cs
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// variantOrder puts the known variants first, in the benchmark's order.
var variantOrder = []string{"ring", "make", "syncpool", "bytebufferpool"}

func variantRank(v string) int {
	if i := slices.Index(variantOrder, v); i >= 0 {
		return i
	}
	return len(variantOrder)
}

// maxNines is the right end of the percentile axis: 99.999.
const maxNines = 5

// nines maps a percentile to its number of nines: 90 -> 1, 99 -> 2, 99.9 -> 3.
func nines(p float64) float64 { return -math.Log10(1 - p/100) }

func drawLatency(name, cond string, series []latencySeries) error {
	p := plot.New()
	p.Title.Text = "chunk latency, " + cond + " (1 MiB chunks, 4-stage pipeline)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ns, log scale)"
	p.X.Min, p.X.Max = 0, maxNines
	p.X.Tick.Marker = ninesTicks{}
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = durationTicks{}
	p.Add(plotter.NewGrid())
	// Bottom right: the curves rise to the right, so that corner is free.
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Points(10)
	p.Legend.YOffs = vg.Points(10)

	var mine []latencySeries
	for _, s := range series {
		if s.Condition == cond {
			mine = append(mine, s)
		}
	}
	slices.SortStableFunc(mine, func(a, b latencySeries) int { return variantRank(a.Variant) - variantRank(b.Variant) })
	i := 0
	for _, s := range mine {
		var xys plotter.XYs
		for _, pt := range s.Points {
			// 100 is infinitely many nines and the log axis cannot show 0 ns.
			if pt.Percentile >= 100 || pt.NS <= 0 || nines(pt.Percentile) > maxNines+1e-9 {
				continue
			}
			xys = append(xys, plotter.XY{X: nines(pt.Percentile), Y: pt.NS})
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", cond, s.Variant, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Variant, l)
		i++
	}
	if i == 0 {
		return fmt.Errorf("no plottable points for condition %q", cond)
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, name)
}

func drawRSS(name string, pts []rssPoint) error {
	slices.SortFunc(pts, func(a, b rssPoint) int { return int(math.Copysign(1, a.InputBytes-b.InputBytes)) })
	p := plot.New()
	p.Title.Text = "worker peak RSS against input size"
	p.X.Label.Text = "input size (MB, log scale)"
	p.Y.Label.Text = "peak RSS (MiB)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	xys := make(plotter.XYs, len(pts))
	for i, pt := range pts {
		xys[i] = plotter.XY{X: pt.InputBytes / 1e6, Y: pt.PeakRSSBytes / (1 << 20)}
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = color.RGBA{B: 200, A: 255}
	l.Width = vg.Points(1.5)
	s.Color = l.Color
	p.Add(l, s)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, name)
}

// ninesTicks labels the nines axis with percentiles.
type ninesTicks struct{}

func (ninesTicks) Ticks(min, max float64) []plot.Tick {
	labels := []string{"0", "90", "99", "99.9", "99.99", "99.999"}
	var ts []plot.Tick
	for n, l := range labels {
		if x := float64(n); x >= min && x <= max {
			ts = append(ts, plot.Tick{Value: x, Label: l})
		}
	}
	if x := nines(50); x >= min && x <= max {
		ts = append(ts, plot.Tick{Value: x, Label: "50"})
	}
	return ts
}

// durationTicks puts a tick at 1..9 times every power of ten of nanoseconds,
// labeled as a duration (10µs, 1ms) at 1x, and also at 2x and 5x when the
// axis spans less than two decades.
type durationTicks struct{}

func (durationTicks) Ticks(min, max float64) []plot.Tick {
	if min <= 0 {
		min = 1
	}
	narrow := max/min < 100
	var ts []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		base := math.Pow(10, e)
		for m := 1.0; m < 10; m++ {
			v := m * base
			if v < min || v > max {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || narrow && (m == 2 || m == 5) {
				t.Label = time.Duration(v).String()
			}
			ts = append(ts, t)
		}
	}
	return ts
}
