package worker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// natsNode is one real nats-server process of a test cluster.
type natsNode struct {
	name                      string
	client, route, monitoring string // loopback HOST:PORT
	dir                       string // store directory, kept across restarts
	cmd                       *exec.Cmd
	exited                    chan struct{} // closed when cmd has been waited for
}

func (n *natsNode) url() string { return "nats://" + n.client }

// natsCluster is a cluster of real nats-server processes with JetStream on loopback.
type natsCluster struct {
	t     *testing.T
	bin   string
	nodes []*natsNode
	http  *http.Client
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// startCluster starts an n-node cluster and waits until its JetStream has a meta leader that
// every node agrees on.
func startCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, bin: testenv.NATSServerBin(t), http: &http.Client{
		Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{name: fmt.Sprintf("n%d", i+1), client: freeAddr(t),
			route: freeAddr(t), monitoring: freeAddr(t), dir: t.TempDir()})
	}
	for i := range c.nodes {
		c.start(i)
	}
	c.waitMetaLeader(30 * time.Second)
	return c
}

// urls is every node's client URL, comma-separated.
func (c *natsCluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url())
	}
	return strings.Join(us, ",")
}

// start runs node i (again, on the same store after a kill) and waits until it serves.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	var routes []string
	for _, o := range c.nodes {
		routes = append(routes, "nats://"+o.route)
	}
	host, port, _ := net.SplitHostPort(n.client)
	_, mport, _ := net.SplitHostPort(n.monitoring) // served on the client host
	log, err := os.OpenFile(filepath.Join(n.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(c.bin, "-a", host, "-p", port, "-m", mport,
		"-js", "-sd", n.dir, "--name", n.name, "--cluster_name", "transcode-test",
		"--cluster", "nats://"+n.route, "--routes", strings.Join(routes, ","))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited
	c.t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	if err := c.poll(20*time.Second, func() error {
		select {
		case <-exited:
			return errors.New("exited")
		default:
		}
		_, err := c.get(n, "/varz")
		return err
	}); err != nil {
		c.t.Fatalf("nats-server %s did not start: %v\n%s", n.name, err, c.logTail(n))
	}
}

// kill SIGKILLs node i and waits for it to exit.
func (c *natsCluster) kill(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	<-n.exited
}

func (c *natsCluster) get(n *natsNode, path string) ([]byte, error) {
	resp, err := c.http.Get("http://" + n.monitoring + path) //nolint:noctx // a loopback test server, with a client timeout
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s %s: %s: %s", n.name, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// poll runs fn every 100 ms until it returns nil or d has passed; it returns fn's last error.
func (c *natsCluster) poll(d time.Duration, fn func() error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return err
		}
	}
}

// waitMetaLeader waits until every node names the same JetStream meta leader.
func (c *natsCluster) waitMetaLeader(d time.Duration) string {
	c.t.Helper()
	var leader string
	err := c.poll(d, func() error {
		leader = ""
		for _, n := range c.nodes {
			b, err := c.get(n, "/jsz")
			if err != nil {
				return err
			}
			var jsz struct {
				Meta struct {
					Leader string `json:"leader"`
				} `json:"meta_cluster"`
			}
			if err := json.Unmarshal(b, &jsz); err != nil {
				return err
			}
			if jsz.Meta.Leader == "" || (leader != "" && jsz.Meta.Leader != leader) {
				return fmt.Errorf("%s sees meta leader %q", n.name, jsz.Meta.Leader)
			}
			leader = jsz.Meta.Leader
		}
		return nil
	})
	if err != nil {
		c.t.Fatalf("no JetStream meta leader: %v", err)
	}
	return leader
}

// index is the position of the node named name.
func (c *natsCluster) index(name string) int {
	for i, n := range c.nodes {
		if n.name == name {
			return i
		}
	}
	c.t.Fatalf("no node %q", name)
	return -1
}

func (c *natsCluster) logTail(n *natsNode) string {
	return tail(filepath.Join(n.dir, "server.log"), 30)
}

// tail is the last lines of a log file.
func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// startWorkerAt runs a worker process (this test binary in helper mode) against url; its log
// goes to a file, whose tail a failing test prints.
func startWorkerAt(t *testing.T, url, id, logDir string, extraEnv ...string) string {
	t.Helper()
	logPath := filepath.Join(logDir, id+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+url, "TRANSCODER_TEST_WORKER_ID="+id), extraEnv...)
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-copied
		_ = cmd.Wait()
	})
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("worker process %s said %q:\n%s", id, line, tail(logPath, 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("worker process %s did not start:\n%s", id, tail(logPath, 30))
	}
	return logPath
}

// streamLog is every event in TRANSCODE_EVENTS, read from the stream message by message: a
// plain subscription misses what is published while the test's own connection fails over, and
// the client's ordered consumer was seen to stall for good when its node was killed. Reads
// that fail (a stream without a leader for a few seconds) are tried again at the next poll.
type streamLog struct {
	js   jetstream.JetStream
	all  []job.Event
	next uint64 // the next stream sequence to read
}

func newStreamLog(js jetstream.JetStream) *streamLog { return &streamLog{js: js, next: 1} }

// refresh reads the events stored since the last call.
func (l *streamLog) refresh() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := l.js.Stream(ctx, worker.EventsStream)
	if err != nil {
		return err
	}
	for last := s.CachedInfo().State.LastSeq; l.next <= last; l.next++ {
		m, err := s.GetMsg(ctx, l.next)
		if err != nil {
			return err
		}
		var ev job.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			return fmt.Errorf("event %d is not JSON: %q", l.next, m.Data)
		}
		l.all = append(l.all, ev)
	}
	return nil
}

// waitUntil polls the stream until cond holds over the events so far, for at most d.
func (l *streamLog) waitUntil(t *testing.T, d time.Duration, what string, cond func([]job.Event) bool) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	var err error
	for {
		if err = l.refresh(); err == nil && cond(l.all) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("not within %s: %s (%d events; last read error: %v)", d, what, len(l.all), err)
		}
	}
}

// count is how many events of type typ the jobs in ids have.
func count(evs []job.Event, typ job.EventType, ids map[string]bool) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ && ids[ev.JobID] {
			n++
		}
	}
	return n
}

// ended reports whether every job in ids has a terminal event.
func ended(evs []job.Event, ids map[string]bool) bool {
	done := map[string]bool{}
	for _, ev := range evs {
		if ev.Type.Terminal() && ids[ev.JobID] {
			done[ev.JobID] = true
		}
	}
	return len(done) == len(ids)
}

// TestClusterNodeKilled: three worker processes on a real three-node nats-server cluster.
//
// First a burst of short jobs on the healthy cluster: each worker takes a fair share. Then a
// second burst, during which the node that leads the job stream is SIGKILLed and later
// restarted on its store: every job succeeds exactly once (one succeeded event, one output,
// no failure); the worker that was connected to the killed node fails over by itself (it was
// given only that node's URL and learns the others from the cluster); and the restarted node
// catches up. Everything the workers create is replicated three times.
//
// Fairness is judged on the healthy burst only: while a failover is in progress (4-9 s), a
// worker whose slots hold jobs waiting on the cluster rightly takes no new one, so the split of
// the second burst depends on where the jobs were when the node died.
func TestClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("a three-node cluster, three worker processes and a failover: about 25 s")
	}
	t.Parallel()
	const workers, burst = 3, 24
	c := startCluster(t, 3)

	nc, err := nats.Connect(c.urls(), nats.Name("cluster test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if r := worker.Replicas(nc); r != 3 {
		t.Fatalf("Replicas = %d on a three-node cluster", r)
	}
	e := setupWith(t, nil, nc)
	events := newStreamLog(e.js)

	// Each worker is given one node's URL only and learns the others from the cluster. Their
	// ack wait must outlast a failover: the followers of a dead leader wait 4-9 s before they
	// elect a new one (nats-server's raft election timeout), and heartbeats sent meanwhile are
	// lost, so with the 3 s of the other tests every job in flight at the kill would be
	// delivered a second time while its first attempt still runs. 20 s is below the 30 s
	// default and above a failover.
	logs := map[string]string{}
	for i := range workers {
		id := fmt.Sprintf("cw%d", i+1)
		logs[id] = startWorkerAt(t, c.nodes[i].url(), id, e.dir, "TRANSCODER_TEST_ACK_WAIT=20s")
	}
	t.Cleanup(func() {
		if t.Failed() {
			for id, p := range logs {
				t.Logf("worker %s log:\n%s", id, tail(p, 20))
			}
			for _, n := range c.nodes {
				t.Logf("nats-server %s log:\n%s", n.name, c.logTail(n))
			}
		}
	})

	ctx := context.Background()
	for _, name := range []string{worker.JobsStream, worker.EventsStream, worker.DLQStream, "KV_" + worker.StateBucket, "KV_" + worker.WorkersBucket} {
		s, err := e.js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}
	for _, p := range []job.Priority{job.PriorityHigh, job.PriorityNormal, job.PriorityLow} {
		cons, err := e.js.Consumer(ctx, worker.JobsStream, worker.ConsumerFor(p))
		if err != nil {
			t.Fatal(err)
		}
		if r := cons.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("consumer %s has %d replicas, want 3", worker.ConsumerFor(p), r)
		}
	}

	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	// submit publishes a burst of jobs, each with an output of its own in a fresh directory.
	submit := func(name string) (dir string, ids map[string]bool, outs map[string]string) {
		dir = filepath.Join(e.dir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ids, outs = map[string]bool{}, map[string]string{}
		for i := range burst {
			out := filepath.Join(dir, fmt.Sprintf("%s-%02d.mp4", name, i))
			j := &job.Job{Input: "file://" + in, Preset: "h264-480p",
				Outputs: []job.Output{{URL: "file://" + out, Video: fastH264}}}
			id, err := e.client.Submit(ctx, j)
			if err != nil {
				t.Fatal(err)
			}
			ids[id], outs[id] = true, out
		}
		return dir, ids, outs
	}

	// The healthy burst: a fair share each.
	_, fair, _ := submit("fair")
	events.waitUntil(t, waitLong, "the healthy burst ended", func(evs []job.Event) bool { return ended(evs, fair) })
	share := map[string]int{}
	for _, ev := range events.all {
		if fair[ev.JobID] && ev.Type == job.EventSucceeded {
			share[ev.WorkerID]++
		}
	}
	t.Logf("healthy burst, jobs per worker: %v", share)
	for i := range workers {
		id := fmt.Sprintf("cw%d", i+1)
		if share[id]*5 < burst { // at least 20%
			t.Errorf("worker %s took %d of %d jobs: not a fair share", id, share[id], burst)
		}
	}

	// The burst with a node killed: the one that leads the job stream, once a quarter of the
	// jobs are done.
	outDir, ids, outs := submit("kill")
	events.waitUntil(t, waitLong, "a quarter of the jobs succeeded", func(evs []job.Event) bool {
		return count(evs, job.EventSucceeded, ids) >= burst/4
	})
	var victim int
	if err := c.poll(10*time.Second, func() error {
		s, err := e.js.Stream(ctx, worker.JobsStream)
		if err != nil {
			return err
		}
		info := s.CachedInfo()
		if info.Cluster == nil || info.Cluster.Leader == "" {
			return errors.New("job stream has no leader")
		}
		victim = c.index(info.Cluster.Leader)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	doneAtKill := count(events.all, job.EventSucceeded, ids)
	c.kill(victim)
	t.Logf("killed %s (job stream leader) with %d of %d jobs done", c.nodes[victim].name, doneAtKill, burst)

	// The two survivors serve on: more jobs finish, then the node comes back on its store.
	events.waitUntil(t, waitLong, "jobs succeeded on the two surviving nodes", func(evs []job.Event) bool {
		return count(evs, job.EventSucceeded, ids) >= min(doneAtKill+burst/6, burst)
	})
	c.start(victim)
	t.Logf("restarted %s after %s", c.nodes[victim].name, time.Since(killedAt).Round(time.Millisecond))

	events.waitUntil(t, waitLong, "every job ended", func(evs []job.Event) bool { return ended(evs, ids) })
	t.Logf("the burst ended %s after the kill", time.Since(killedAt).Round(time.Millisecond))
	// Requests may time out while the restarted node rejoins: poll through errors.
	if err := c.poll(waitLong, func() error {
		s, err := e.js.Stream(ctx, worker.JobsStream)
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n != 0 {
			return fmt.Errorf("%d jobs still in the work queue", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The restarted node has caught up: its health check covers every stream and consumer.
	if err := c.poll(waitLong, func() error { _, err := c.get(c.nodes[victim], "/healthz"); return err }); err != nil {
		t.Errorf("restarted node not healthy: %v", err)
	}

	perWorker := map[string]int{}
	for id := range ids {
		succeeded := 0
		for _, ev := range events.all {
			if ev.JobID != id {
				continue
			}
			switch ev.Type {
			case job.EventSucceeded:
				succeeded++
				perWorker[ev.WorkerID]++
				if got := sha(t, outs[id]); len(ev.Outputs) != 1 || got != ev.Outputs[0].SHA256 {
					t.Errorf("%s: output %s does not match its succeeded event", id, outs[id])
				}
			case job.EventFailed, job.EventCanceled:
				t.Errorf("%s ended %s: %+v", id, ev.Type, ev.Error)
			case job.EventRetrying:
				t.Logf("%s retried on %s: %+v", id, ev.WorkerID, ev.Error)
			}
		}
		if succeeded != 1 {
			t.Errorf("%s: %d succeeded events, want exactly 1", id, succeeded)
		}
	}
	files, _ := filepath.Glob(filepath.Join(outDir, "*"))
	if len(files) != burst {
		t.Errorf("%d files in the output directory, want %d: %v", len(files), burst, files)
	}
	noParts(t, outDir)
	t.Logf("burst with a node killed, jobs per worker: %v", perWorker)

	// Every worker writes to NATS again: the one that knew only the killed node has moved to
	// another by itself.
	if err := c.poll(30*time.Second, func() error {
		ws, err := e.client.Workers(ctx)
		if err != nil {
			return err
		}
		if len(ws) != workers {
			return fmt.Errorf("%d workers listed", len(ws))
		}
		for _, w := range ws {
			if !w.Updated.After(killedAt) {
				return fmt.Errorf("worker %s has not refreshed its registry entry since the kill", w.ID)
			}
		}
		return nil
	}); err != nil {
		t.Errorf("fleet after the kill: %v", err)
	}

	// The state bucket: every job's state is succeeded. The worker retries the outcome's state
	// write through the failover (a write made while the bucket had no leader used to be lost,
	// leaving the job "running" for good). Reads are direct gets that any replica answers, the
	// restarting one too: a short poll covers its lag.
	var stale []string
	_ = c.poll(10*time.Second, func() error {
		stale = stale[:0]
		for id := range ids {
			st, err := e.client.Status(ctx, id)
			switch {
			case err != nil:
				stale = append(stale, fmt.Sprintf("%s: %v", id, err))
			case st.State != job.StateSucceeded:
				stale = append(stale, fmt.Sprintf("%s: %s", id, st.State))
			}
		}
		if len(stale) > 0 {
			return errors.New("stale")
		}
		return nil
	})
	if len(stale) > 0 {
		msg := fmt.Sprintf("%d of %d succeeded jobs do not say so in %s (a state write lost in the failover): %v",
			len(stale), burst, worker.StateBucket, stale)
		t.Error(msg)
	}
}
