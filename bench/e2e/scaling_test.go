package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// fleetEnv, set to a NATS URL, makes the test binary one worker of BenchmarkFleet's fleet
// (with fleetIDEnv and the fake tools of fleetFFmpegEnv and fleetFFprobeEnv). It is read in
// init, before TestMain, so that this file needs no hook in main_test.go.
const (
	fleetEnv        = "BENCH_FLEET_NATS"
	fleetIDEnv      = "BENCH_FLEET_ID"
	fleetFFmpegEnv  = "BENCH_FLEET_FFMPEG"
	fleetFFprobeEnv = "BENCH_FLEET_FFPROBE"
	fleetSlots      = 2
)

func init() {
	if url := os.Getenv(fleetEnv); url != "" {
		os.Exit(fleetWorker(url))
	}
}

// fleetWorker is one worker process of the fleet: production settings (heartbeat, fetch wait,
// progress interval, registry), except the tools, which are fakeTools' trivial stand-ins, so
// that what is measured is dispatch, not encoding, and the ack wait, 5 s instead of 30 s: on
// a saturated machine a few deliveries per burst reach a worker after it gave up their pull
// request and come back only after the ack wait (counted in "redelivered"); 5 s keeps such a
// run within the time make test allows without hiding it.
func fleetWorker(url string) int {
	return testenv.ServeWorker(url, func(nc *nats.Conn, _ *ffmpeg.Runner, presets job.Presets) worker.Config {
		r, err := ffmpeg.New(ffmpeg.Config{FFmpeg: os.Getenv(fleetFFmpegEnv), FFprobe: os.Getenv(fleetFFprobeEnv)})
		if err != nil {
			panic(err)
		}
		return worker.Config{Conn: nc, FFmpeg: r, Presets: presets, ID: os.Getenv(fleetIDEnv),
			Slots: fleetSlots, AckWait: 5 * time.Second, Logger: quietLogger()}
	})
}

// fleetNATS is the fleet's nats-server: the real binary in a process of its own when it is
// installed (`make tools`), so that its CPU time per job can be read apart from the workers';
// otherwise an in-process server, and no CPU figure.
type fleetNATS struct {
	url    string
	pid    int                   // 0: in process
	inMsgs func() (int64, error) // messages received from clients so far
}

func startFleetNATS(b *testing.B) *fleetNATS {
	b.Helper()
	if bin := testenv.FindNATSServer(); bin != "" {
		return startRealNATS(b, bin)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: b.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	b.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready")
	}
	return &fleetNATS{url: ns.ClientURL(), inMsgs: func() (int64, error) {
		v, err := ns.Varz(nil)
		if err != nil {
			return 0, err
		}
		return v.InMsgs, nil
	}}
}

func freePort(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func startRealNATS(b *testing.B, bin string) *fleetNATS {
	b.Helper()
	port, mport := freePort(b), freePort(b)
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", port, "-m", mport, "-js", "-sd", b.TempDir())
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	inMsgs := func() (int64, error) {
		resp, err := hc.Get("http://127.0.0.1:" + mport + "/varz") //nolint:noctx // loopback, with a client timeout
		if err != nil {
			return 0, err
		}
		defer func() { _ = resp.Body.Close() }()
		var v struct {
			InMsgs int64 `json:"in_msgs"`
		}
		err = json.NewDecoder(resp.Body).Decode(&v)
		return v.InMsgs, err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		if _, err := inMsgs(); err == nil {
			break
		}
		select {
		case <-tick.C:
		case <-exited:
			b.Fatal("nats-server exited")
		case <-deadline:
			b.Fatal("nats-server not ready")
		}
	}
	return &fleetNATS{url: "nats://127.0.0.1:" + port, pid: cmd.Process.Pid, inMsgs: inMsgs}
}

// cpu is the server process's CPU time (user + system) so far, or 0 in process.
func (n *fleetNATS) cpu() time.Duration {
	if n.pid == 0 {
		return 0
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid))
	if err != nil {
		return 0
	}
	s := string(st)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	var utime, stime int64
	_, _ = fmt.Sscan(f[11], &utime) // fields 14 and 15 of stat(5), in clock ticks (100 Hz)
	_, _ = fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func (n *fleetNATS) msgs(b *testing.B) int64 {
	b.Helper()
	v, err := n.inMsgs()
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// startFleet starts n worker processes against url and waits until each says it is ready.
func startFleet(b *testing.B, url string, n int, tools ffmpeg.Config) {
	b.Helper()
	procs := make([]*workerProc, n)
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), fleetEnv+"="+url, fmt.Sprintf("%s=fleet-%d", fleetIDEnv, i),
			fleetFFmpegEnv+"="+tools.FFmpeg, fleetFFprobeEnv+"="+tools.FFprobe)
		procs[i] = startWorkerProc(b, cmd) // all start at once; then each is awaited
	}
	for i, p := range procs {
		if err := p.await(fmt.Sprintf("worker %d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// fleetCounter counts the messages on the subjects that make up a job's cost to NATS. A
// subscription receives a copy of each: nothing is taken from the workers.
type fleetCounter struct {
	pulls, acks, states, events atomic.Int64
}

func (c *fleetCounter) subscribe(b *testing.B, nc *nats.Conn) {
	b.Helper()
	for subj, n := range map[string]*atomic.Int64{
		"$JS.API.CONSUMER.MSG.NEXT." + worker.JobsStream + ".>": &c.pulls,  // pull requests
		"$JS.ACK." + worker.JobsStream + ".>":                   &c.acks,   // ack, nak, term, in-progress
		"$KV." + worker.StateBucket + ".>":                      &c.states, // job state writes
		worker.EventsSubjects:                                   &c.events, // job events
	} {
		sub, err := nc.Subscribe(subj, func(*nats.Msg) { n.Add(1) })
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
}

func (c *fleetCounter) snapshot() [4]int64 {
	return [4]int64{c.pulls.Load(), c.acks.Load(), c.states.Load(), c.events.Load()}
}

// fleetEvents records, per job, when it was published (just before Submit) and its started and
// terminal events.
type fleetEvents struct {
	mu        sync.Mutex
	published map[string]time.Time
	started   map[string]time.Time // the worker's own time stamp: the same clock, one machine
	done      map[string]job.Event
	notify    chan struct{}
	// redelivered counts the starts of an attempt after the first: a delivery lost on its way
	// to a worker comes back only after the ack wait.
	redelivered int
}

func (f *fleetEvents) onEvent(m *nats.Msg) {
	var ev job.Event
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case ev.Type == job.EventStarted:
		if _, again := f.started[ev.JobID]; again || ev.Attempt > 1 {
			f.redelivered++
		}
		f.started[ev.JobID] = ev.Time
	case ev.Type.Terminal():
		f.done[ev.JobID] = ev
		select {
		case f.notify <- struct{}{}:
		default:
		}
	}
}

// wait waits until every job in ids has ended; it fails on a job that did not succeed.
func (f *fleetEvents) wait(b *testing.B, ids []string) {
	b.Helper()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		f.mu.Lock()
		n := 0
		for _, id := range ids {
			if ev, ok := f.done[id]; ok {
				if ev.Type != job.EventSucceeded {
					f.mu.Unlock()
					b.Fatalf("job %s %s: %+v", id, ev.Type, ev.Error)
				}
				n++
			}
		}
		f.mu.Unlock()
		if n == len(ids) {
			return
		}
		select {
		case <-f.notify:
		case <-deadline.C:
			b.Fatalf("%d of %d jobs ended within 2 minutes", n, len(ids))
		}
	}
}

// BenchmarkFleet runs 1, 2, 4 and 8 worker processes (2 slots each) against one nats-server
// and measures what the fleet costs NATS per job. Each iteration publishes a burst of 96 tiny
// jobs at once (throughput, fairness, queueing), then 16 jobs one at a time on the idle fleet
// (the dispatch latency: publish to started, no queueing).
//
// Worker processes, not in-process workers: each has its own connection, its own fetch loop
// and its own runtime, as in production, and the cost of N herds of pull requests lands on
// the server, not on one shared client. The tools are BenchmarkDispatch's trivial stand-ins
// (ffprobe answers a fixed description, "ffmpeg" is cat): every step around ffmpeg is real
// (pulls, state writes, events, heartbeats, the ring, the output commit) but a job costs
// ~10 ms of CPU instead of seconds, so dispatch is what is measured; a real encode adds its
// own CPU time and changes none of the per-job NATS figures.
//
// Metrics: jobs/s (burst), p50/p99 queue-to-start of the idle fleet (p50-start-ms,
// p99-start-ms) and of the burst (burst-p50-start-ms, burst-p99-start-ms: mostly waiting for
// a free slot), fairness (max/min jobs per worker in the burst; 1 is perfectly even), and per
// job: pull requests, ack-subject messages (ack + in-progress heartbeats), state writes,
// events, and all messages into the server (srv-msgs/job).
func BenchmarkFleet(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", n), func(b *testing.B) { benchFleet(b, n) })
	}
}

func benchFleet(b *testing.B, workers int) {
	const burst, paced = 96, 16
	tools := fakeTools(b).Config()
	ns := startFleetNATS(b)
	nc, err := nats.Connect(ns.url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	client, err := worker.NewClient(context.Background(), nc)
	if err != nil {
		b.Fatal(err)
	}
	f := &fleetEvents{published: map[string]time.Time{}, started: map[string]time.Time{},
		done: map[string]job.Event{}, notify: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(worker.EventsSubjects, f.onEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
	var counts fleetCounter
	counts.subscribe(b, nc)
	startFleet(b, ns.url, workers, tools)

	dir := b.TempDir()
	in := filepath.Join(dir, "tiny.mp4")
	if err := os.WriteFile(in, make([]byte, 4096), 0o644); err != nil {
		b.Fatal(err)
	}
	seq := 0
	submit := func() string {
		seq++
		j := &job.Job{Input: fileURL(in), Preset: "h264-480p",
			Outputs: []job.Output{{URL: fileURL(filepath.Join(dir, fmt.Sprintf("o%d.mkv", seq))), Container: "mkv"}}} // streamed: see fakeTools
		worker.Prepare(j)
		f.mu.Lock()
		f.published[j.ID] = time.Now()
		f.mu.Unlock()
		if _, err := client.Submit(context.Background(), j); err != nil {
			b.Fatal(err)
		}
		return j.ID
	}
	// Warm up: every worker's first job (ffmpeg version and encoders are asked beside it).
	var warm []string
	for range 2 * workers {
		warm = append(warm, submit())
	}
	f.wait(b, warm)

	var burstLat, idleLat []time.Duration
	perWorker := map[string]int{}
	var burstTime, submitTime time.Duration
	var burstJobs int
	var msgs [4]int64
	var srvMsgs int64
	var srvCPU time.Duration
	for b.Loop() {
		before, vz, cpu := counts.snapshot(), ns.msgs(b), ns.cpu()
		start := time.Now()
		ids := make([]string, burst)
		for i := range ids {
			ids[i] = submit()
		}
		submitTime += time.Since(start)
		f.wait(b, ids)
		burstTime += time.Since(start)
		burstJobs += burst
		after := counts.snapshot()
		for i := range msgs {
			msgs[i] += after[i] - before[i]
		}
		srvMsgs += ns.msgs(b) - vz
		srvCPU += ns.cpu() - cpu
		f.mu.Lock()
		for _, id := range ids {
			burstLat = append(burstLat, f.started[id].Sub(f.published[id]))
			perWorker[f.done[id].WorkerID]++
		}
		f.mu.Unlock()

		for range paced {
			id := submit()
			f.wait(b, []string{id})
			f.mu.Lock()
			idleLat = append(idleLat, f.started[id].Sub(f.published[id]))
			f.mu.Unlock()
		}
	}
	b.StopTimer()

	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	bl, il := sortDurations(burstLat), sortDurations(idleLat)
	b.ReportMetric(float64(burstJobs)/burstTime.Seconds(), "jobs/s")
	b.ReportMetric(float64(burstJobs)/submitTime.Seconds(), "submit-jobs/s")
	b.ReportMetric(ms(percentile(il, 50)), "p50-start-ms")
	b.ReportMetric(ms(percentile(il, 99)), "p99-start-ms")
	b.ReportMetric(ms(percentile(bl, 50)), "burst-p50-start-ms")
	b.ReportMetric(ms(percentile(bl, 99)), "burst-p99-start-ms")
	b.ReportMetric(ms(bl[len(bl)-1]), "burst-max-start-ms")
	b.ReportMetric(float64(f.redelivered), "redelivered")
	var shares []int
	for _, n := range perWorker {
		shares = append(shares, n)
	}
	if len(shares) < workers {
		shares = append(shares, 0) // a worker that took nothing
	}
	if lo := slices.Min(shares); lo > 0 {
		b.ReportMetric(float64(slices.Max(shares))/float64(lo), "max/min-jobs")
	} else {
		b.ReportMetric(float64(burstJobs), "max/min-jobs") // unbounded: report the worst case
	}
	per := func(n int64) float64 { return float64(n) / float64(burstJobs) }
	b.ReportMetric(per(msgs[0]), "pulls/job")
	b.ReportMetric(per(msgs[1]), "acks/job")
	b.ReportMetric(per(msgs[2]), "kv-puts/job")
	b.ReportMetric(per(msgs[3]), "events/job")
	b.ReportMetric(per(srvMsgs), "srv-msgs/job")
	if ns.pid != 0 {
		b.ReportMetric(float64(srvCPU.Microseconds())/float64(burstJobs), "srv-cpu-us/job")
	}
}
