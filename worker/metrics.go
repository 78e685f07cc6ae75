package worker

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/transcoder/transcoder/job"
)

// metrics are the worker's Prometheus series, on a registry of its own (a process may run
// more than one worker, as tests do).
type metrics struct {
	reg         *prometheus.Registry
	jobs        *prometheus.CounterVec   // by outcome and class
	duration    *prometheus.HistogramVec // by outcome
	running     prometheus.Gauge
	redelivered prometheus.Counter
	bytesIn     prometheus.Counter
	bytesOut    prometheus.Counter
	speed       prometheus.Gauge
}

func newMetrics(w *Worker) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "transcoder_jobs_total", Help: "Deliveries settled, by outcome (succeeded, failed, canceled, retried) and failure class.",
		}, []string{"outcome", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "transcoder_job_duration_seconds", Help: "Wall time of a delivery, from pull to settle.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16),
		}, []string{"outcome"}),
		running:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "transcoder_jobs_running", Help: "Jobs running on this worker."}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "transcoder_redeliveries_total", Help: "Deliveries that were not a job's first."}),
		bytesIn:     prometheus.NewCounter(prometheus.CounterOpts{Name: "transcoder_input_bytes_total", Help: "Input bytes read."}),
		bytesOut:    prometheus.NewCounter(prometheus.CounterOpts{Name: "transcoder_output_bytes_total", Help: "Output bytes written."}),
		speed:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "transcoder_ffmpeg_speed", Help: "ffmpeg's speed (x real time) in the latest progress report."}),
	}
	ring := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "transcoder_ring_" + name, Help: help}, f)
	}
	m.reg.MustRegister(m.jobs, m.duration, m.running, m.redelivered, m.bytesIn, m.bytesOut, m.speed,
		ring("buffers_capacity", "Buffers in the ring.", func() float64 { return float64(w.ring.Stats().Capacity) }),
		ring("buffers_in_use", "Buffers held by stages now.", func() float64 { return float64(w.ring.Stats().InUse) }),
		ring("buffers_reserved", "Buffers promised to admitted jobs.", func() float64 { return float64(w.ring.Stats().Reserved) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "transcoder_ring_acquires_total", Help: "Buffer acquires."},
			func() float64 { return float64(w.ring.Stats().Acquires) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "transcoder_ring_acquire_waits_total", Help: "Acquires that had to wait for a buffer (backpressure)."},
			func() float64 { return float64(w.ring.Stats().Waits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "transcoder_ring_acquire_wait_seconds_total", Help: "Time spent waiting for buffers."},
			func() float64 { return w.ring.Stats().TotalWait.Seconds() }),
		ring("acquire_wait_max_seconds", "Longest single wait for a buffer.", func() float64 { return w.ring.Stats().MaxWait.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "transcoder_slots", Help: "Jobs this worker runs at once."},
			func() float64 { return float64(w.cfg.Slots) }),
	)
	return m
}

// settled records a delivery's outcome.
func (m *metrics) settled(r *run, outcome string, class job.Class) {
	m.jobs.WithLabelValues(outcome, string(class)).Inc()
	m.duration.WithLabelValues(outcome).Observe(time.Since(r.started).Seconds())
	m.bytesIn.Add(float64(r.task.Meter.BytesIn.Load()))
	m.bytesOut.Add(float64(r.task.Meter.BytesOut.Load()))
}

// Handler serves /metrics (Prometheus), /healthz (the process answers), /readyz (started,
// connected to NATS, streams in place; its body's second line is the sandbox's layers), and the read-only dashboard: the page at / and its
// JSON snapshot of the fleet at /api/dashboard (see Dashboard).
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	d := newDashboard(w)
	mux.HandleFunc("GET /{$}", d.servePage)
	mux.HandleFunc("GET /api/dashboard", d.serveAPI)
	mux.Handle("/metrics", promhttp.HandlerFor(w.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, _ *http.Request) {
		w.mu.Lock()
		ready := w.started && !w.stopped && w.cfg.Conn.IsConnected()
		w.mu.Unlock()
		if !ready {
			http.Error(rw, "not ready", http.StatusServiceUnavailable)
			return
		}
		// The detail: which sandbox layers confine ffmpeg here, and which are missing.
		_, _ = rw.Write([]byte("ready\n" + w.cfg.FFmpeg.SandboxStatus().String() + "\n"))
	})
	return mux
}
