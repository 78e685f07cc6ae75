package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// gate holds every job at the first byte of its first output until it is opened: the job stays
// running, with its ffmpeg started and its progress reported, for as long as a test needs.
type gate struct {
	once    sync.Once
	open    chan struct{}
	reached chan string
}

func newGate() *gate { return &gate{open: make(chan struct{}), reached: make(chan string, 16)} }

func (g *gate) hook(id string) {
	select {
	case g.reached <- id:
	default:
	}
	<-g.open
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// waitReached waits for a job to reach the gate.
func (g *gate) waitReached(t *testing.T, id string) {
	t.Helper()
	deadline := time.NewTimer(waitLong)
	defer deadline.Stop()
	for {
		select {
		case got := <-g.reached:
			if got == id {
				return
			}
		case <-deadline.C:
			t.Fatalf("job %s never wrote output", id)
		}
	}
}

// dashboardSetup starts NATS, one gated worker with the given slots, and its Handler on a
// loopback server. The gate opens before the worker stops, so its shutdown checks hold.
func dashboardSetup(t *testing.T, id string, slots int) (*env, *gate, string) {
	t.Helper()
	e := setup(t)
	g := newGate()
	w := e.startWorker(id, func(c *worker.Config) {
		c.Slots = slots
		// A gated job does not advance: no heartbeats, no stall check within the test.
		c.AckWait, c.Heartbeat, c.StallTimeout = 2*time.Minute, time.Second, 2*time.Minute
		c.Hooks.FirstOutputByte = g.hook
	})
	t.Cleanup(g.release) // before the worker's shutdown (cleanups run last first)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return e, g, srv.URL
}

// submitJob submits a job with the given input, preset, priority and metadata, writing to a
// fresh file; a bad job is what the worker must reject.
func (e *env) submitJob(input, preset string, prio job.Priority, meta map[string]string) string {
	e.t.Helper()
	j := &job.Job{Input: input, Preset: preset, Priority: prio, Metadata: meta,
		Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, fmt.Sprintf("out-%d.mp4", time.Now().UnixNano()))}}}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// badInput is a file that is not media.
func badInput(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "not-media.mp4")
	if err := os.WriteFile(p, []byte(strings.Repeat("this is not a video\n", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	return "file://" + p
}

func getDashboard(t *testing.T, base string) worker.Dashboard {
	t.Helper()
	d, err := fetchDashboard(base)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fetchDashboard(base string) (worker.Dashboard, error) {
	var d worker.Dashboard
	resp, err := http.Get(base + "/api/dashboard")
	if err != nil {
		return d, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		return d, fmt.Errorf("GET /api/dashboard: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	err = json.NewDecoder(resp.Body).Decode(&d)
	return d, err
}

// waitDashboard polls the endpoint until ok accepts a snapshot; it returns that snapshot.
func waitDashboard(t *testing.T, base, what string, ok func(worker.Dashboard) bool) worker.Dashboard {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		d := getDashboard(t, base)
		if ok(d) {
			return d
		}
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(d, "", "  ")
			t.Fatalf("dashboard never showed %s; last snapshot:\n%s", what, b)
		}
		<-tick.C
	}
}

func TestDashboardAPI(t *testing.T) {
	e, g, base := dashboardSetup(t, "dash-api", 1)
	clip := "file://" + testenv.MakeClip(t, testenv.Clip{Seconds: 2})

	// One slot: a bad job first, then one held running, then two that must wait.
	bad := e.submitJob(badInput(t, e.dir), "h264-480p", "", map[string]string{"who": "api-test"})
	if ev := e.events.terminal(t, bad); ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput {
		t.Fatalf("bad job ended %s %+v", ev.Type, ev.Error)
	}
	held := e.submitJob(clip, "h264-480p", job.PriorityNormal, nil)
	g.waitReached(t, held)
	for range 2 {
		e.submitJob(clip, "h264-480p", job.PriorityLow, nil)
	}

	d := waitDashboard(t, base, "the worker's heartbeat, the held job and two low jobs waiting", func(d worker.Dashboard) bool {
		return len(d.Workers) == 1 && d.Workers[0].HeartbeatAge != nil && len(d.Jobs) == 1 &&
			len(d.Queues) == 3 && d.Queues[2].Pending == 2
	})
	if len(d.Errors) != 0 {
		t.Errorf("errors: %q", d.Errors)
	}
	if d.WorkerID != "dash-api" || d.Time.IsZero() {
		t.Errorf("snapshot of %q at %v", d.WorkerID, d.Time)
	}
	w := d.Workers[0]
	if w.ID != "dash-api" || !w.Self || w.Host == "" || w.PID != os.Getpid() || w.Slots != 1 || w.SlotsUsed != 1 ||
		!slices.Equal(w.Running, []string{held}) || w.RingCapacity == 0 || w.RingReserved == 0 || w.Encoders == 0 ||
		!strings.Contains(w.Version, "ffmpeg") || *w.HeartbeatAge < 0 || *w.HeartbeatAge > 15 {
		t.Errorf("worker: %+v", w)
	}
	j := d.Jobs[0]
	if j.ID != held || j.WorkerID != "dash-api" || j.Attempt != 1 || j.Input != clip || j.Progress == nil {
		t.Errorf("running job: %+v", j)
	}
	for i, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		q := d.Queues[i]
		if q.Priority != p || q.Consumer != worker.ConsumerFor(p) {
			t.Errorf("queue %d: %+v", i, q)
		}
	}
	if q := d.Queues[1]; q.Pending != 0 || q.AckPending != 1 {
		t.Errorf("normal queue: %+v; want the held job in flight", q)
	}
	if q := d.Queues[2]; q.AckPending != 0 {
		t.Errorf("low queue: %+v; want two waiting", q)
	}
	if len(d.Failures) != 1 {
		t.Fatalf("failures: %+v", d.Failures)
	}
	f := d.Failures[0]
	if f.ID != bad || f.Class != job.ClassInvalidInput || f.Reason == "" || f.WorkerID != "dash-api" || f.Attempts != 1 ||
		!strings.HasSuffix(f.Input, "not-media.mp4") || f.Metadata["who"] != "api-test" || f.Time.IsZero() {
		t.Errorf("failure: %+v", f)
	}

	// Many callers at once share snapshots: NATS is asked about once a second.
	var wg sync.WaitGroup
	times := make(chan time.Time, 20)
	for range 20 {
		wg.Go(func() {
			d, err := fetchDashboard(base)
			if err != nil {
				t.Error(err)
			}
			times <- d.Time
		})
	}
	wg.Wait()
	close(times)
	seen := map[time.Time]bool{}
	for tm := range times {
		seen[tm] = true
	}
	if len(seen) > 2 {
		t.Errorf("20 concurrent requests saw %d snapshots; want them cached", len(seen))
	}

	// The page: one self-contained document, locked down by its CSP.
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(csp, "script-src 'sha256-") || !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(string(page), "api/dashboard") || strings.Contains(string(page), "innerHTML") ||
		strings.Contains(string(page), "src=\"http") {
		t.Errorf("GET /: %s %q csp %q", resp.Status, resp.Header.Get("Content-Type"), csp)
	}
	for path, want := range map[string]int{"/nope": 404, "/metrics": 200, "/healthz": 200} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s; want %d", path, resp.Status, want)
		}
	}
	resp, err = http.Post(base+"/api/dashboard", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/dashboard: %s; the dashboard is read-only", resp.Status)
	}
}

// TestDashboardAPINotStarted: a worker that has not started says so in the page, not with a
// blank page or an error status.
func TestDashboardAPINotStarted(t *testing.T) {
	e := setup(t)
	cfg := testConfig(e.nc, e.runner, e.presets, "dash-idle", t.TempDir())
	cfg.Slots = 1
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	d := getDashboard(t, srv.URL)
	if len(d.Errors) != 1 || !strings.Contains(d.Errors[0], "not started") || d.Workers == nil || d.Queues == nil {
		t.Errorf("dashboard of an idle worker: %+v", d)
	}
}

// browser starts headless Debian chromium for the test and returns a context to drive it. When
// the test ends the browser is closed and every process it started is checked gone.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Skip("chromium not installed: apt-get install -y chromium (make test installs it)")
		}
	}
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// The first run starts the browser; it must not carry a timeout (that would end the browser).
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		allocCancel()
		t.Fatalf("start chromium: %v", err)
	}
	root := 0
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		root = p.Pid
	}
	t.Cleanup(func() {
		procs := append(descendants(root), processesWith(profile)...)
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("close chromium: %v", err)
		}
		ccancel()
		cancel()
		allocCancel() // waits for the browser process
		deadline := time.Now().Add(10 * time.Second)
		for {
			var alive []int
			for _, pid := range procs {
				if processAlive(pid) {
					alive = append(alive, pid)
				}
			}
			if len(alive) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("chromium processes left running: %v", alive)
				for _, pid := range alive {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				return
			}
			time.Sleep(50 * time.Millisecond) // waiting for processes, not for the page
		}
	})
	return ctx
}

// processesWith lists the processes whose command line mentions s.
func processesWith(s string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(b), s) {
			out = append(out, p)
		}
	}
	return out
}

// descendants is pid and every process below it.
func descendants(pid int) []int {
	if pid <= 0 {
		return nil
	}
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := parentOf(p); pp > 0 {
			children[pp] = append(children[pp], p)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// statFields are the fields of /proc/pid/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func parentOf(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	pp, _ := strconv.Atoi(f[1])
	return pp
}

// processAlive: a zombie has exited.
func processAlive(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// within runs the actions with a timeout of their own (the browser's context has none).
func within(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		var dump string
		if html, herr := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').innerText`)); herr == nil {
			dump = html
		}
		t.Fatalf("%s: %v\npage:\n%s", what, err, dump)
	}
}

// until waits for a JavaScript predicate on the page to hold.
func until(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	within(t, ctx, waitLong, what,
		chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(waitLong)))
}

func TestDashboardBrowser(t *testing.T) {
	ctx := browser(t)
	e, g, base := dashboardSetup(t, "dash-browser", 2)
	clip := "file://" + testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	held := e.submitJob(clip, "h264-480p", job.PriorityHigh, map[string]string{"title": "held"})
	g.waitReached(t, held)

	within(t, ctx, 30*time.Second, "load the page", chromedp.Navigate(base+"/"))
	within(t, ctx, waitLong, "the worker, the running job with its progress bar, the queues",
		chromedp.WaitVisible(chromedp.CSS(`#workers tr[data-id="dash-browser"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#workers tr[data-id="dash-browser"] .bar.ring[role=progressbar]`)),
		chromedp.WaitVisible(chromedp.CSS(`#jobs tr[data-id="`+held+`"] .bar[role=progressbar]`)),
		chromedp.WaitVisible(chromedp.CSS(`#queues .queue[data-priority="low"] [data-field=pending]`)),
	)
	until(t, ctx, "live state and queue numbers", `document.getElementById('state').textContent === 'live' &&
		['high', 'normal', 'low'].every(p => /^\d+$/.test(document.querySelector('#queues [data-priority="' + p + '"] [data-field=pending]').textContent)) &&
		document.querySelector('#queues [data-priority="high"] [data-field=ack_pending]').textContent === '1' &&
		document.querySelector('#workers tr[data-id="dash-browser"]').textContent.includes('1 / 2') &&
		document.querySelector('#jobs tr[data-id="`+held+`"]').textContent.includes('title=held')`)

	// A bad job, submitted with the page open, shows up in the failures with its class.
	bad := e.submitJob(badInput(t, e.dir), "h264-480p", "", nil)
	until(t, ctx, "the failed job with its class", `(() => {
		const row = document.querySelector('#failures tr[data-id="`+bad+`"]');
		return row && row.querySelector('.failure-class').textContent === 'invalid_input' &&
			row.querySelector('.reason').textContent.length > 0;
	})()`)
	if err := chromedp.Do(ctx, chromedp.WaitNotVisible(chromedp.ID("errors"))); err != nil {
		t.Errorf("the page shows errors: %v", err)
	}
}

// TestDashboardEscapesHostileText: what jobs carry (metadata, inputs, failure reasons) is shown
// as text, never run as markup.
func TestDashboardEscapesHostileText(t *testing.T) {
	ctx := browser(t)
	e, g, base := dashboardSetup(t, "dash-hostile", 2)
	const (
		img    = `<img src=x onerror="window.__xss=1">`
		script = `<script>window.__xss=2</script>`
	)
	clip := "file://" + testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	held := e.submitJob(clip, "h264-480p", "", map[string]string{"note": img, script: "key"})
	g.waitReached(t, held)
	// An unknown preset is echoed in the failure's reason.
	bad := e.submitJob(clip, `<img src=x onerror=window.__xss=3>`, "", map[string]string{"note": img})
	if ev := e.events.terminal(t, bad); ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidJob {
		t.Fatalf("bad job ended %s %+v", ev.Type, ev.Error)
	}

	within(t, ctx, 30*time.Second, "load the page", chromedp.Navigate(base+"/"))
	until(t, ctx, "the hostile running job and failure, as text", `(() => {
		const job = document.querySelector('#jobs tr[data-id="`+held+`"]');
		const fail = document.querySelector('#failures tr[data-id="`+bad+`"]');
		return job && fail && job.textContent.includes('note=' + `+jsString(img)+`) &&
			job.textContent.includes(`+jsString(script)+` + '=key') &&
			fail.querySelector('.reason').textContent.includes('<img src=x onerror=window.__xss=3>') &&
			fail.textContent.includes('note=' + `+jsString(img)+`);
	})()`)
	// One more render of the same data, then: nothing ran, no element was made from data.
	until(t, ctx, "another snapshot rendered", `(() => {
		const now = document.getElementById('time').textContent;
		if (window.__seen === undefined) { window.__seen = now; }
		return now !== window.__seen;
	})()`)
	res, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({
		xss: window.__xss === undefined ? null : window.__xss,
		imgs: document.querySelectorAll('img').length,
		scripts: document.querySelectorAll('script').length,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if res != `{"xss":null,"imgs":0,"scripts":1}` {
		t.Errorf("hostile text became markup: %s", res)
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
