package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// soakEnv turns TestSoak on; its value is how long jobs are submitted and workers killed
// ("10m"). scripts/soak.sh sets it.
const soakEnv = "TRANSCODER_SOAK"

// TestSoak runs two worker processes against one embedded NATS for TRANSCODER_SOAK, feeding
// them a stream of mixed jobs (good clips of a few seconds, random bytes, a truncated mp4, a
// text file, a missing file) while SIGKILLing one of them every few seconds and restarting it.
// Then it stops killing, lets every job finish, prints the figures and fails if a job was lost
// (no terminal event), ran to success twice, or left an ffmpeg behind.
//
// Orphans are caught precisely: the test process makes itself a child subreaper, so an ffmpeg
// or ffprobe that outlives its killed worker is re-parented to the test process instead of
// init, where it can be told apart from every other ffmpeg on the machine.
func TestSoak(t *testing.T) {
	spec := os.Getenv(soakEnv)
	if spec == "" {
		t.Skip("set " + soakEnv + "=DURATION (e.g. 10m) to run the soak; see scripts/soak.sh")
	}
	dur, err := time.ParseDuration(spec)
	if err != nil || dur <= 0 {
		t.Fatalf("%s=%q: want a duration like 10m", soakEnv, spec)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })

	ns, nc := testenv.NATS(t)
	ctx := context.Background()
	client, err := worker.NewClient(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inputs := soakInputs(t, dir)
	track := newSoakTracker(t, nc)

	procs := &soakProcs{t: t, url: ns.URL(), slots: map[string]*soakProc{}}
	for _, slot := range []string{"a", "b"} {
		if err := procs.start(slot); err != nil {
			t.Fatal(err)
		}
	}
	monitorDone := make(chan struct{})
	monitorStop := make(chan struct{})
	go func() { defer close(monitorDone); procs.monitor(monitorStop) }()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	end := time.Now().Add(dur)
	t.Logf("soak: %s of jobs and kills (two worker processes)", dur)

	// Killer: every 2-6 s, SIGKILL one worker process, check its ffmpeg died with it, restart it.
	killerDone := make(chan struct{})
	killerStop := make(chan struct{})
	go func() {
		defer close(killerDone)
		killRng := rand.New(rand.NewPCG(rng.Uint64(), 2))
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		for {
			timer.Reset(2*time.Second + time.Duration(killRng.Int64N(int64(4*time.Second))))
			select {
			case <-killerStop:
				return
			case <-timer.C:
			}
			if err := procs.killAndRestart([]string{"a", "b"}[killRng.IntN(2)]); err != nil {
				t.Errorf("soak: %v; no more kills", err)
				return
			}
		}
	}()

	// Submitter: keep a few jobs outstanding until the end.
	const outstandingMax = 6
	outDir := filepath.Join(dir, "out")
	for n := 0; time.Now().Before(end); {
		if track.outstanding() >= outstandingMax {
			select {
			case <-track.terminalSignal():
			case <-time.After(time.Until(end)):
			}
			continue
		}
		kind := soakPick(rng)
		in := inputs[kind]
		j := &job.Job{Input: "file://" + in, Preset: "h264-480p",
			Outputs: []job.Output{{URL: "file://" + filepath.Join(outDir, fmt.Sprintf("%05d.mp4", n))}}, Metadata: map[string]string{"kind": kind}}
		n++
		id, err := client.Submit(ctx, j)
		if err != nil {
			t.Errorf("submit: %v", err)
			continue
		}
		track.submitted(id, kind)
	}
	close(killerStop)
	<-killerDone
	t.Logf("soak: submitting and killing stopped; waiting for every job to finish")

	// Drain: every job gets a terminal event or is lost.
	lost := track.waitAll(3 * time.Minute)
	for _, l := range lost {
		// What the state bucket says tells a job that never ran from one whose terminal event
		// went missing (its state says succeeded or failed).
		id, _, _ := strings.Cut(l, "(")
		st, err := client.Status(ctx, id)
		if err != nil {
			t.Logf("lost job %s: state: %v", l, err)
			continue
		}
		t.Logf("lost job %s: state %s, attempt %d, worker %s, updated %s", l, st.State, st.Attempt, st.WorkerID, st.Updated.Format(time.RFC3339Nano))
	}
	// Last orphan sweep: nothing of ours may be left running.
	procs.sweepOrphans(5 * time.Second)

	close(monitorStop)
	<-monitorDone
	procs.stopAll()

	f := track.figures()
	var b strings.Builder
	fmt.Fprintf(&b, "soak figures (%s):\n", dur)
	fmt.Fprintf(&b, "  jobs submitted   %d (%s)\n", f.submitted, soakCounts(f.byKind))
	fmt.Fprintf(&b, "  succeeded        %d\n", f.succeeded)
	fmt.Fprintf(&b, "  failed           %d (%s)\n", f.failed, soakCounts(f.failedByClass))
	fmt.Fprintf(&b, "  canceled         %d\n", f.canceled)
	fmt.Fprintf(&b, "  good clips failed %d, bad inputs succeeded %d\n", f.goodFailed, f.badSucceeded)
	fmt.Fprintf(&b, "  redelivered      %d (ended on attempt 2 or later), retrying events %d\n", f.redelivered, f.retrying)
	fmt.Fprintf(&b, "  kills            %d (ffmpeg/ffprobe running in the killed worker: %d)\n", procs.kills, procs.childrenAtKill)
	fmt.Fprintf(&b, "  lost             %d %v\n", len(lost), lost)
	fmt.Fprintf(&b, "  duplicated       %d %v (more than one succeeded event)\n", len(f.duplicated), f.duplicated)
	fmt.Fprintf(&b, "  orphan ffmpeg    %d %v (reaped after their worker died: %d)\n", len(procs.orphans), procs.orphans, procs.reaped)
	for _, slot := range []string{"a", "b"} {
		s := procs.stats[slot]
		fmt.Fprintf(&b, "  worker %s          fds last %d max %d, RSS last %.1f MiB max %.1f MiB (over %d processes)\n",
			slot, s.lastFDs, s.maxFDs, float64(s.lastRSS)/1024, float64(s.maxRSS)/1024, s.generations)
	}
	t.Log(b.String())

	if len(lost) > 0 || len(f.duplicated) > 0 || len(procs.orphans) > 0 {
		t.Errorf("soak failed: lost %d, duplicated %d, orphans %d", len(lost), len(f.duplicated), len(procs.orphans))
	}
}

// soakKinds and their weights: most jobs are good clips.
var soakKinds = []struct {
	kind   string
	weight int
}{{"good-3s", 40}, {"good-2s-360p", 20}, {"random", 10}, {"truncated", 10}, {"text", 10}, {"missing", 10}}

func soakPick(rng *rand.Rand) string {
	n := rng.IntN(100)
	for _, k := range soakKinds {
		if n < k.weight {
			return k.kind
		}
		n -= k.weight
	}
	return soakKinds[0].kind
}

func soakGood(kind string) bool { return strings.HasPrefix(kind, "good") }

func soakInputs(t *testing.T, dir string) map[string]string {
	t.Helper()
	in := map[string]string{
		"good-3s":      testenv.MakeClip(t, testenv.Clip{Seconds: 3}),
		"good-2s-360p": testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "640x360"}),
		"missing":      filepath.Join(dir, "missing.mp4"),
	}
	rnd := make([]byte, 300_000)
	for i := range rnd {
		rnd[i] = byte(i*7919 + i/13)
	}
	in["random"] = filepath.Join(dir, "random.mp4")
	writeFile(t, in["random"], rnd)
	full, err := os.ReadFile(testenv.MakeClip(t, testenv.Clip{Seconds: 6}))
	if err != nil {
		t.Fatal(err)
	}
	in["truncated"] = filepath.Join(dir, "truncated.mp4")
	writeFile(t, in["truncated"], full[:len(full)/3])
	in["text"] = filepath.Join(dir, "notes.mp4")
	writeFile(t, in["text"], []byte(strings.Repeat("this is not a video\n", 100)))
	return in
}

func soakCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// soakTracker follows every job through its events (only the few fields it needs, so a long
// soak does not hold every progress event).
type soakTracker struct {
	mu       sync.Mutex
	jobs     map[string]*soakJob
	order    []string
	done     int // submitted jobs with a terminal event
	retrying int
	signal   chan struct{} // closed and replaced on every terminal event
}

type soakJob struct {
	submitted bool
	kind      string
	succeeded int
	terminal  []job.Event
}

func newSoakTracker(t *testing.T, nc *nats.Conn) *soakTracker {
	tr := &soakTracker{jobs: map[string]*soakJob{}, signal: make(chan struct{})}
	sub, err := nc.Subscribe(worker.EventsSubjects, tr.onEvent)
	if err != nil {
		t.Fatal(err)
	}
	// A long soak must not lose events to the slow-consumer limit.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return tr
}

func (tr *soakTracker) onEvent(m *nats.Msg) {
	var ev job.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if ev.Type == job.EventRetrying {
		tr.retrying++
	}
	if !ev.Type.Terminal() {
		return
	}
	j := tr.jobs[ev.JobID]
	if j == nil {
		// The terminal event can come before Submit returns to record the job.
		j = &soakJob{}
		tr.jobs[ev.JobID] = j
	}
	ev.Progress, ev.Metadata = nil, nil
	if ev.Error != nil {
		ev.Error = &job.Failure{Class: ev.Error.Class, Reason: ev.Error.Reason}
	}
	j.terminal = append(j.terminal, ev)
	if ev.Type == job.EventSucceeded {
		j.succeeded++
	}
	if len(j.terminal) == 1 && j.submitted {
		tr.done++
	}
	close(tr.signal)
	tr.signal = make(chan struct{})
}

func (tr *soakTracker) submitted(id, kind string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	j := tr.jobs[id]
	if j == nil {
		j = &soakJob{}
		tr.jobs[id] = j
	}
	j.submitted, j.kind = true, kind
	tr.order = append(tr.order, id)
	if len(j.terminal) > 0 {
		tr.done++
	}
}

func (tr *soakTracker) outstanding() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.order) - tr.done
}

func (tr *soakTracker) terminalSignal() <-chan struct{} {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.signal
}

// first is the first terminal event of job id (zero if none).
func (tr *soakTracker) first(id string) job.Event {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if j := tr.jobs[id]; j != nil && len(j.terminal) > 0 {
		return j.terminal[0]
	}
	return job.Event{}
}

// waitAll waits until every submitted job has a terminal event, at most d, and returns the
// ids of those that have none.
func (tr *soakTracker) waitAll(d time.Duration) []string {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		tr.mu.Lock()
		all := tr.done == len(tr.order)
		ch := tr.signal
		tr.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			tr.mu.Lock()
			defer tr.mu.Unlock()
			var lost []string
			for _, id := range tr.order {
				if len(tr.jobs[id].terminal) == 0 {
					lost = append(lost, id+"("+tr.jobs[id].kind+")")
				}
			}
			return lost
		}
	}
}

type soakFigures struct {
	submitted, succeeded, failed, canceled, retrying int
	redelivered                                      int // jobs that ended on attempt 2 or later
	goodFailed, badSucceeded                         int
	byKind, failedByClass                            map[string]int
	duplicated                                       []string
}

// figures sums up each job by its first terminal event.
func (tr *soakTracker) figures() soakFigures {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	f := soakFigures{submitted: len(tr.order), retrying: tr.retrying, byKind: map[string]int{}, failedByClass: map[string]int{}}
	for _, id := range tr.order {
		j := tr.jobs[id]
		f.byKind[j.kind]++
		if j.succeeded > 1 {
			f.duplicated = append(f.duplicated, fmt.Sprintf("%s(%d succeeded)", id, j.succeeded))
		}
		if len(j.terminal) == 0 {
			continue
		}
		if j.terminal[0].Attempt > 1 {
			f.redelivered++
		}
		switch ev := j.terminal[0]; ev.Type {
		case job.EventSucceeded:
			f.succeeded++
			if !soakGood(j.kind) {
				f.badSucceeded++
			}
		case job.EventFailed:
			f.failed++
			class := "?"
			if ev.Error != nil {
				class = string(ev.Error.Class)
			}
			f.failedByClass[class]++
			if soakGood(j.kind) {
				f.goodFailed++
			}
		case job.EventCanceled:
			f.canceled++
		}
	}
	return f
}

// soakProcs owns the worker processes: one per slot, restarted after each kill.
type soakProcs struct {
	t   *testing.T
	url string

	mu             sync.Mutex
	slots          map[string]*soakProc
	stats          map[string]*soakStats
	kills          int
	childrenAtKill int
	orphans        []string
	reaped         int
}

type soakProc struct {
	id     string
	cmd    *exec.Cmd
	exited chan struct{}
}

type soakStats struct {
	lastFDs, maxFDs int
	lastRSS, maxRSS int64
	generations     int
}

// start starts the worker process of slot and waits until it is serving.
func (p *soakProcs) start(slot string) error {
	p.mu.Lock()
	if p.stats == nil {
		p.stats = map[string]*soakStats{}
	}
	if p.stats[slot] == nil {
		p.stats[slot] = &soakStats{}
	}
	p.stats[slot].generations++
	id := fmt.Sprintf("soak-%s-%d", slot, p.stats[slot].generations)
	p.mu.Unlock()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+p.url, "TRANSCODER_TEST_WORKER_ID="+id)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start worker %s: %w", id, err)
	}
	proc := &soakProc{id: id, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(proc.exited)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			<-proc.exited
			return fmt.Errorf("worker process %s said %q", id, line)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-proc.exited
		return fmt.Errorf("worker process %s did not start", id)
	}
	p.mu.Lock()
	p.slots[slot] = proc
	p.mu.Unlock()
	return nil
}

// killAndRestart SIGKILLs the worker of slot, checks that its ffmpeg and ffprobe children die
// with it (the parent-death signal), and starts a new one.
func (p *soakProcs) killAndRestart(slot string) error {
	p.mu.Lock()
	proc := p.slots[slot]
	p.mu.Unlock()
	pid := proc.cmd.Process.Pid
	p.sample(slot, pid)
	children := soakFFChildren(pid)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Errorf("kill %s: %v", proc.id, err)
	}
	<-proc.exited
	p.mu.Lock()
	p.kills++
	p.childrenAtKill += len(children)
	p.mu.Unlock()
	p.sweepOrphans(5 * time.Second)
	return p.start(slot)
}

// sweepOrphans waits up to d for every ffmpeg or ffprobe re-parented to the test process (the
// subreaper) to die; those still running then are orphans. Dead ones are reaped.
func (p *soakProcs) sweepOrphans(d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		running := p.reapOrphans()
		if len(running) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			p.mu.Lock()
			for _, pr := range running {
				p.orphans = append(p.orphans, pr.String())
				// Do not leave it running: it is a finding, not a fixture.
				_ = unix.Kill(pr.pid, unix.SIGKILL)
			}
			p.mu.Unlock()
			p.sweepReap(running)
			return
		}
	}
}

// reapOrphans reaps dead ffmpeg/ffprobe orphans and returns the running ones.
func (p *soakProcs) reapOrphans() []soakPS {
	var running []soakPS
	for _, pr := range soakFFChildren(os.Getpid()) {
		if pr.state == 'Z' || pr.state == 'X' {
			var ws unix.WaitStatus
			if n, err := unix.Wait4(pr.pid, &ws, unix.WNOHANG, nil); err == nil && n == pr.pid {
				p.mu.Lock()
				p.reaped++
				p.mu.Unlock()
			}
			continue
		}
		running = append(running, pr)
	}
	return running
}

func (p *soakProcs) sweepReap(killed []soakPS) {
	for _, pr := range killed {
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pr.pid, &ws, 0, nil)
	}
}

// monitor samples the workers' fds and RSS every second.
func (p *soakProcs) monitor(stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		pids := map[string]int{}
		for slot, proc := range p.slots {
			pids[slot] = proc.cmd.Process.Pid
		}
		p.mu.Unlock()
		for slot, pid := range pids {
			p.sample(slot, pid)
		}
		p.reapOrphans()
	}
}

func (p *soakProcs) sample(slot string, pid int) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return
	}
	rss, ok := soakRSS(pid)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats[slot]
	s.lastFDs, s.lastRSS = len(ents), rss
	s.maxFDs, s.maxRSS = max(s.maxFDs, len(ents)), max(s.maxRSS, rss)
}

// stopAll takes a last sample of each worker, then stops it with SIGTERM (as in production).
func (p *soakProcs) stopAll() {
	p.mu.Lock()
	slots := make(map[string]*soakProc, len(p.slots))
	for k, v := range p.slots {
		slots[k] = v
	}
	p.mu.Unlock()
	for slot, proc := range slots {
		p.sample(slot, proc.cmd.Process.Pid)
		_ = proc.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, proc := range slots {
		select {
		case <-proc.exited:
		case <-time.After(20 * time.Second):
			p.t.Errorf("worker %s did not stop after SIGTERM", proc.id)
			_ = proc.cmd.Process.Kill()
			<-proc.exited
		}
	}
}

// soakPS is a process as /proc/<pid>/stat shows it.
type soakPS struct {
	pid   int
	comm  string
	state byte
}

func (s soakPS) String() string { return fmt.Sprintf("%s[%d]%c", s.comm, s.pid, s.state) }

// soakFFChildren lists the ffmpeg and ffprobe processes whose parent is ppid.
func soakFFChildren(ppid int) []soakPS {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []soakPS
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || closing+2 >= len(s) {
			continue
		}
		comm := s[open+1 : closing]
		if comm != "ffmpeg" && comm != "ffprobe" {
			continue
		}
		f := strings.Fields(s[closing+2:])
		if len(f) < 2 || f[1] != strconv.Itoa(ppid) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
		if err != nil {
			continue
		}
		out = append(out, soakPS{pid: pid, comm: comm, state: f[0][0]})
	}
	return out
}

// soakRSS is VmRSS of a process in kB.
func soakRSS(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
