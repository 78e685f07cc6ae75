package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// rolesServer runs the real nats-server with deploy/nats/server.conf, as an operator would, and
// returns each user's URL.
func rolesServer(t *testing.T) map[string]string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	urls := map[string]string{}
	var env []string
	for _, role := range []string{"worker", "submitter", "viewer"} {
		pw := fmt.Sprintf("%s-%d", role, time.Now().UnixNano())
		env = append(env, "TRANSCODER_"+strings.ToUpper(role)+"_PASSWORD="+pw)
		urls[role] = fmt.Sprintf("nats://%s:%s@%s:%s", role, pw, host, port)
	}
	testenv.StartNATSServer(t, env, "-c", filepath.Join("..", "..", "deploy", "nats", "server.conf"),
		"-a", host, "-p", port, "-sd", t.TempDir())
	return urls
}

// cliWithin is cli with a deadline: a refused action must end the command, not a timeout.
func cliWithin(t *testing.T, d time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out, errb lockedBuffer
	err := run(ctx, args, &out, &errb)
	if ctx.Err() != nil {
		t.Errorf("%v: still running after %s (%v)", args[:2], d, err)
	}
	return out.String(), errb.String(), err
}

// wantRefused checks that err is the server's refusal of subject for user, as the CLI says it.
func wantRefused(t *testing.T, what string, err error, stderr, subject, user string) {
	t.Helper()
	var pe *worker.PermissionError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Subject, subject) || pe.User != user {
		t.Errorf("%s: err %v; want permission denied to %s for %s", what, err, subject, user)
		return
	}
	if !strings.Contains(stderr, "permission denied: ") || !strings.Contains(stderr, fmt.Sprintf("(NATS user %q)", user)) {
		t.Errorf("%s: stderr %q does not say which permission is missing", what, stderr)
	}
}

// TestNATSRoles runs the worker, the submitter and the viewer of deploy/nats/server.conf
// against a real nats-server: each does its work with its role, and each action outside its
// role is refused, on the CLI with the missing permission named.
func TestNATSRoles(t *testing.T) {
	urls := rolesServer(t)
	asWorker, asSubmitter, asViewer := urls["worker"], urls["submitter"], urls["viewer"]
	dir := t.TempDir()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3})

	// Before any worker: a submitter may not create the streams, and says so.
	_, stderr, err := cliWithin(t, 40*time.Second, "submit", "--nats", asSubmitter, in, "--preset", "h264-480p", "-o", filepath.Join(dir, "early.mp4"))
	wantRefused(t, "submit before any worker", err, stderr, "$JS.API.STREAM.CREATE.", "submitter")

	cfg := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfg, []byte("allow_private_networks: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, wlog := startWorkerLog(t, "--nats", asWorker, "--slots", "1", "--log-level", "warn", "--id", "role-worker", "--config", cfg)

	t.Run("submitter", func(t *testing.T) { submitterWorks(t, asSubmitter, in, dir) })
	t.Run("cancel", func(t *testing.T) { submitterCancels(t, asSubmitter, asViewer, in, dir) })
	t.Run("viewer", func(t *testing.T) { viewerReads(t, asViewer, dir) })
	t.Run("refused", func(t *testing.T) { refusedOnCLI(t, asWorker, asSubmitter, asViewer, in, dir) })
	t.Run("subjects", func(t *testing.T) { refusedSubjects(t, asSubmitter, asViewer) })
	if strings.Contains(strings.ToLower(wlog.String()), "permission") {
		t.Errorf("the worker was refused something with its role:\n%s", wlog.String())
	}
}

// submitterWorks: a submitter submits and waits, uploads, splits, reads states, events, the
// fleet and dead letters, and downloads results.
func submitterWorks(t *testing.T, asSubmitter, in, dir string) {
	out := filepath.Join(dir, "role-1.mp4")
	stdout, stderr, err := cliWithin(t, 2*time.Minute, "submit", "--nats", asSubmitter, in, "--preset", "h264-480p", "-o", out, "--wait", "--id", "role-1")
	if err != nil || !strings.Contains(stdout, out) {
		t.Fatalf("submit --wait as submitter: %v\n%s\n%s", err, stdout, stderr)
	}
	stdout, stderr, err = cliWithin(t, 2*time.Minute, "submit", "--nats", asSubmitter, "--upload", in, "--preset", "h264-480p",
		"-o", "nats://results/role/out.mp4", "--split", "on", "--chunk", "1s", "--wait", "--id", "role-up")
	if err != nil || !strings.Contains(stdout, "nats://results/role/out.mp4") {
		t.Fatalf("submit --upload --split on as submitter: %v\n%s\n%s", err, stdout, stderr)
	}
	for _, args := range [][]string{
		{"status", "role-1"}, {"watch", "role-up"}, {"jobs"}, {"workers"}, {"dlq", "list"},
		{"get", "nats://results/role/out.mp4", "-o", filepath.Join(dir, "got-s.mp4")},
	} {
		stdout, stderr, err := cliWithin(t, time.Minute, append(args[:len(args):len(args)], "--nats", asSubmitter)...)
		if err != nil {
			t.Errorf("%v as submitter: %v\n%s\n%s", args, err, stdout, stderr)
		}
	}
	stdout, _, _ = cli(t, "status", "--nats", asSubmitter, "role-up")
	var st job.Status
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.State != job.StateSucceeded || st.ChunksTotal < 2 {
		t.Errorf("split job's state %q: want succeeded in chunks", stdout)
	}
}

// submitterCancels: a submitter cancels a running job and a queued one (which has no state
// until a worker records the cancel: a submitter writes none).
func submitterCancels(t *testing.T, asSubmitter, asViewer, in, dir string) {
	// An input that stalls after its first bytes keeps the worker's one slot busy.
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(data[:len(data)/4])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(l) }()
	defer func() { close(release); _ = srv.Close(); <-served }()

	nc, err := nats.Connect(asViewer)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	evs, err := nc.SubscribeSync(worker.EventSubject(">"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string][]job.EventType{}
	next := func(id string, want ...job.EventType) {
		t.Helper()
		for {
			m, err := evs.NextMsg(time.Minute)
			if err != nil {
				t.Fatalf("waiting for %s %v: %v", id, want, err)
			}
			var ev job.Event
			if json.Unmarshal(m.Data, &ev) != nil {
				continue
			}
			seen[ev.JobID] = append(seen[ev.JobID], ev.Type)
			if ev.JobID != id {
				continue
			}
			for _, w := range want {
				if ev.Type == w {
					return
				}
			}
			if ev.Type.Terminal() {
				t.Fatalf("%s ended %s (%+v), want %v", id, ev.Type, ev.Error, want)
			}
		}
	}
	url := "http://" + l.Addr().String() + "/stall.mp4"
	if _, stderr, err := cliWithin(t, time.Minute, "submit", "--nats", asSubmitter, url, "--preset", "h264-480p", "-o", filepath.Join(dir, "long.mp4"), "--id", "role-long"); err != nil {
		t.Fatalf("submit: %v %s", err, stderr)
	}
	next("role-long", job.EventStarted)
	if _, stderr, err := cliWithin(t, time.Minute, "submit", "--nats", asSubmitter, in, "--preset", "h264-480p", "-o", filepath.Join(dir, "queued.mp4"), "--id", "role-queued"); err != nil {
		t.Fatalf("submit: %v %s", err, stderr)
	}
	if out, stderr, err := cliWithin(t, time.Minute, "cancel", "--nats", asSubmitter, "role-queued"); err != nil || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel of a queued job as submitter: %v %q %s", err, out, stderr)
	}
	waitState(t, asViewer, "role-queued", func(st job.Status) bool { return st.CancelRequested })
	if out, stderr, err := cliWithin(t, time.Minute, "cancel", "--nats", asSubmitter, "role-long"); err != nil || !strings.Contains(out, "cancel requested") {
		t.Fatalf("cancel of a running job as submitter: %v %q %s", err, out, stderr)
	}
	next("role-long", job.EventCanceled)
	next("role-queued", job.EventCanceled)
	if slices.Contains(seen["role-queued"], job.EventStarted) {
		t.Errorf("the queued job started after its cancel: events %v", seen["role-queued"])
	}
	for _, id := range []string{"role-long", "role-queued"} {
		out, _, err := cli(t, "status", "--nats", asSubmitter, id)
		var st job.Status
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.State != job.StateCanceled {
			t.Errorf("%s: %v %s; want canceled", id, err, out)
		}
	}
}

// waitState watches the job's state as user url until cond holds.
func waitState(t *testing.T, url, id string, cond func(job.Status) bool) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, worker.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := kv.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = wt.Stop() }()
	for {
		select {
		case e := <-wt.Updates():
			var st job.Status
			if e != nil && json.Unmarshal(e.Value(), &st) == nil && cond(st) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("state of %s: %v", id, ctx.Err())
		}
	}
}

// viewerReads: a viewer reads states, events, the fleet, dead letters and results.
func viewerReads(t *testing.T, asViewer, dir string) {
	for _, args := range [][]string{
		{"status", "role-1"}, {"watch", "role-1"}, {"jobs"}, {"workers"}, {"dlq", "list"},
		{"get", "nats://results/role/out.mp4", "-o", filepath.Join(dir, "got-v.mp4")},
	} {
		stdout, stderr, err := cliWithin(t, time.Minute, append(args[:len(args):len(args)], "--nats", asViewer)...)
		if err != nil {
			t.Errorf("%v as viewer: %v\n%s\n%s", args, err, stdout, stderr)
		}
	}
	if out, _, err := cli(t, "workers", "--nats", asViewer); err != nil || !strings.Contains(out, "role-worker") {
		t.Errorf("workers as viewer: %v %q", err, out)
	}
}

// refusedOnCLI: what a role may not do fails at once and names the permission; the worker's
// role does what the others may not (an operator's dlq retry).
func refusedOnCLI(t *testing.T, asWorker, asSubmitter, asViewer, in, dir string) {
	if _, _, err := cliWithin(t, 2*time.Minute, "submit", "--nats", asSubmitter, filepath.Join(dir, "missing.mp4"), "--preset", "h264-480p",
		"-o", filepath.Join(dir, "dead.mp4"), "--id", "role-dead", "--wait"); err == nil {
		t.Fatal("a job with a missing input succeeded")
	}
	cases := []struct {
		user, subject string
		args          []string
	}{
		{"viewer", "transcode.jobs.normal", []string{"submit", "--nats", asViewer, in, "--preset", "h264-480p", "-o", filepath.Join(dir, "v.mp4")}},
		{"viewer", "$O.uploads.", []string{"submit", "--nats", asViewer, "--upload", in, "--preset", "h264-480p", "-o", filepath.Join(dir, "v.mp4")}},
		{"viewer", "transcode.cancel.role-1", []string{"cancel", "--nats", asViewer, "role-1"}},
		{"viewer", "$KV.TRANSCODE_STATE.role-dead", []string{"dlq", "retry", "--nats", asViewer, "role-dead"}},
		{"submitter", "$KV.TRANSCODE_STATE.role-dead", []string{"dlq", "retry", "--nats", asSubmitter, "role-dead"}},
		{"submitter", "$JS.API.STREAM.CREATE.OBJ_elsewhere", []string{"submit", "--nats", asSubmitter, "--upload", in, "--upload-bucket", "elsewhere", "--preset", "h264-480p", "-o", filepath.Join(dir, "e.mp4")}},
	}
	for _, c := range cases {
		_, stderr, err := cliWithin(t, 30*time.Second, c.args...)
		wantRefused(t, c.user+" "+strings.Join(c.args[:2], " "), err, stderr, c.subject, c.user)
	}
	if out, stderr, err := cliWithin(t, time.Minute, "dlq", "retry", "--nats", asWorker, "role-dead"); err != nil || !strings.Contains(out, "queued again") {
		t.Errorf("dlq retry as worker (the operator's role): %v %q %s", err, out, stderr)
	}
}

// refusedSubjects: every write outside a role, straight on the wire, is refused by the server.
func refusedSubjects(t *testing.T, asSubmitter, asViewer string) {
	both := []string{
		"$KV.TRANSCODE_STATE.role-1", "transcode.events.role-1", "transcode.dlq.role-1", "$KV.TRANSCODE_WORKERS.fake",
		"$KV.TRANSCODE_SPLIT.role-1.0", "transcode.chunks.normal", "$O.results.M.x", "$O.TRANSCODE_CHUNKS.C.x",
		"$JS.ACK.TRANSCODE_JOBS.transcoders-normal.1.1.1.1.1",
		"$JS.API.STREAM.CREATE.X", "$JS.API.STREAM.UPDATE.TRANSCODE_JOBS", "$JS.API.STREAM.DELETE.TRANSCODE_EVENTS",
		"$JS.API.STREAM.PURGE.TRANSCODE_DLQ", "$JS.API.STREAM.MSG.DELETE.KV_TRANSCODE_STATE",
		"$JS.API.CONSUMER.MSG.NEXT.TRANSCODE_JOBS.transcoders-normal", "$JS.API.CONSUMER.CREATE.TRANSCODE_JOBS.x.transcode.jobs.normal",
		"$JS.API.CONSUMER.DELETE.TRANSCODE_JOBS.transcoders-normal", "$JS.API.CONSUMER.DURABLE.CREATE.TRANSCODE_EVENTS.x",
		"$JS.API.STREAM.MSG.GET.TRANSCODE_JOBS", "$JS.API.DIRECT.GET.TRANSCODE_JOBS",
	}
	refused := map[string][]string{
		"submitter": both,
		"viewer":    append([]string{"transcode.jobs.normal", "transcode.cancel.role-1", "$O.uploads.C.x", "$JS.API.STREAM.PURGE.OBJ_uploads"}, both...),
	}
	for user, subjects := range refused {
		url := map[string]string{"submitter": asSubmitter, "viewer": asViewer}[user]
		got := make(chan *worker.PermissionError, 64)
		nc, err := nats.Connect(url, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if pe := worker.AsPermissionError(err, user); pe != nil {
				got <- pe
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		for _, subj := range subjects {
			if err := nc.Publish(subj, []byte(`{"state":"succeeded"}`)); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case pe := <-got:
				if pe.Op != "publish" || pe.Subject != subj {
					t.Errorf("%s: publish to %s: refusal %v", user, subj, pe)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("%s may publish to %s", user, subj)
			}
		}
		for _, subj := range []string{"transcode.jobs.>", "transcode.chunks.>", "transcode.cancel.*"} {
			sub, err := nc.Subscribe(subj, func(*nats.Msg) {})
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case pe := <-got:
				if pe.Op != "subscribe" || pe.Subject != subj {
					t.Errorf("%s: subscribe to %s: refusal %v", user, subj, pe)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("%s may subscribe to %s", user, subj)
			}
			_ = sub.Unsubscribe()
		}
		nc.Close()
	}
}
