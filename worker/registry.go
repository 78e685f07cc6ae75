package worker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/sandbox"
)

// The fleet: every live worker keeps an entry in this bucket, refreshed every registryBeat;
// the bucket's TTL drops the entry of a worker that stopped refreshing it.
const (
	WorkersBucket = "TRANSCODE_WORKERS"
	registryBeat  = 5 * time.Second
	registryTTL   = 3 * registryBeat
)

// WorkerInfo is a worker's entry in TRANSCODE_WORKERS.
type WorkerInfo struct {
	ID           string   `json:"id"`
	Host         string   `json:"host"`
	PID          int      `json:"pid"`
	Version      string   `json:"version"` // ffmpeg's
	Capabilities []string `json:"capabilities"`
	Slots        int      `json:"slots"`
	Running      []string `json:"running"`
	RingCapacity int      `json:"ring_capacity"`
	RingInUse    int      `json:"ring_in_use"`
	RingReserved int      `json:"ring_reserved"`
	// Sandbox is the layers that confine this worker's ffmpeg (see package sandbox).
	Sandbox sandbox.Status `json:"sandbox"`
	Started time.Time      `json:"started"`
	Updated time.Time      `json:"updated"`
	// Warnings are what the worker found wrong with its setup at start (a spool_limit larger
	// than the spool's free space, ...): it runs, but some jobs may fail for it.
	Warnings []string `json:"warnings,omitempty"`
}

func ensureRegistry(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      WorkersBucket,
		Description: "live transcode workers; entries expire when a worker stops refreshing them",
		History:     1,
		TTL:         registryTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
	})
}

// Replicas is how many copies of the streams and buckets a deployment wants: 3 when the
// connection is to a cluster of at least three servers, else 1.
func Replicas(nc *nats.Conn) int {
	if nc.ConnectedClusterName() != "" && len(nc.Servers()) >= 3 {
		return 3
	}
	return 1
}

// advertise refreshes this worker's registry entry until ctx is done, then removes it.
// What ffmpeg is and can do is asked here, off the path of the first job.
func (w *Worker) advertise(ctx context.Context, kv jetstream.KeyValue) {
	host, _ := os.Hostname()
	info := WorkerInfo{ID: w.cfg.ID, Host: host, PID: os.Getpid(), Slots: w.cfg.Slots, Started: time.Now().UTC(), Warnings: w.warnings}
	info.Version = w.version(ctx)
	info.Capabilities = w.encoders(ctx)
	info.Sandbox = w.cfg.FFmpeg.SandboxStatus()
	t := time.NewTicker(registryBeat)
	defer t.Stop()
	for {
		running := []string{}
		for _, j := range w.Jobs() {
			running = append(running, j.ID)
		}
		sort.Strings(running)
		st := w.ring.Stats()
		info.Running, info.RingCapacity, info.RingInUse, info.RingReserved = running, st.Capacity, st.InUse, st.Reserved
		info.Updated = time.Now().UTC()
		if err := putJSON(ctx, kv, w.cfg.ID, info); err != nil && ctx.Err() == nil {
			w.log.Warn("registry heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = kv.Delete(dctx, w.cfg.ID)
			cancel()
			return
		case <-t.C:
		}
	}
}

// Workers lists the live fleet.
func (c *Client) Workers(ctx context.Context) ([]WorkerInfo, error) {
	var out []WorkerInfo
	// Workers create the registry: without it, none has started.
	kv, err := c.js.KeyValue(ctx, WorkersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var wi WorkerInfo
		if json.Unmarshal(e.Value(), &wi) == nil {
			out = append(out, wi)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Jobs lists the state of the most recently updated jobs, newest first, at most limit.
func (c *Client) Jobs(ctx context.Context, limit int) ([]job.Status, error) {
	lister, err := c.kv.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []job.Status
	for k := range lister.Keys() {
		st, err := getStatus(ctx, c.kv, k)
		if err == nil {
			out = append(out, *st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Updated.After(out[j].Updated) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// version is ffmpeg's version line, asked once.
func (w *Worker) version(ctx context.Context) string {
	if v := w.ffmpegVersion.Load(); v != nil {
		return *v
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := w.cfg.FFmpeg.Version(ctx)
	if err != nil {
		w.log.Warn("ffmpeg -version", "err", err)
		return ""
	}
	w.ffmpegVersion.Store(&v)
	return v
}
