package server

import (
	"context"
	"net/http"
	"path"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	spann "github.com/gospann/spann"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (so that several servers in one process, as in tests, do not collide).
// Names and meanings are listed in the README (spann-serve, Metrics).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec   // method, code
	latency     *prometheus.HistogramVec // method, code
	inFlight    prometheus.Gauge
	queueWait   prometheus.Histogram
	refused     prometheus.Counter
	postings    *prometheus.HistogramVec // index
	pages       *prometheus.HistogramVec // index
	bytes       *prometheus.HistogramVec // index
	readErrors  *prometheus.CounterVec   // index, kind
	inserted    *prometheus.CounterVec   // index
	deleted     *prometheus.CounterVec   // index
	checkpoints *prometheus.CounterVec   // index, result
	ckSeconds   *prometheus.HistogramVec // index
	reloads     *prometheus.CounterVec   // index, result
}

// arrivalKey keys the time a request reached the API in its context.
type arrivalKey struct{}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_requests_total",
		Help: "API requests answered, by method and status code (ok, invalid_argument, unauthenticated, resource_exhausted, ...)."}, []string{"method", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spann_request_duration_seconds",
		Help:    "Time from a request reaching the API to its answer, by method and status code (so that refusals' own latency shows).",
		Buckets: prometheus.ExponentialBuckets(10e-6, 2, 20)}, []string{"method", "code"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "spann_requests_in_flight", Help: "API requests being answered."})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "spann_queue_wait_seconds",
		Help:    "Time from a search request reaching the API to its search starting (checks and taking a search slot; requests are refused, never queued, when no slot is free).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "spann_refused_total", Help: "Searches refused because --max-concurrent were running."})
	perQuery := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{"index"})
	}
	m.postings = perQuery("spann_query_postings", "Postings read per query.", prometheus.ExponentialBuckets(1, 2, 11))
	m.pages = perQuery("spann_query_pages", "4 KiB pages read per query.", prometheus.ExponentialBuckets(1, 2, 14))
	m.bytes = perQuery("spann_query_read_bytes", "Bytes read per query.", prometheus.ExponentialBuckets(4096, 2, 14))
	m.readErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_read_errors_total",
		Help: "Searches failed reading postings: kind io (the read failed) or checksum (a posting did not match its checksum)."}, []string{"index", "kind"})
	m.inserted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_inserted_vectors_total", Help: "Vectors inserted through the API."}, []string{"index"})
	m.deleted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_deleted_ids_total", Help: "Ids deleted through the API."}, []string{"index"})
	m.checkpoints = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_checkpoints_total", Help: "Checkpoints of writable indexes, by result (ok, error)."}, []string{"index", "result"})
	m.ckSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "spann_checkpoint_duration_seconds", Help: "Time a checkpoint took.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}, []string{"index"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "spann_reloads_total", Help: "Reloads (SIGHUP or the Reload method), by result (ok, error)."}, []string{"index", "result"})
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.inFlight, m.queueWait, m.refused, m.postings, m.pages, m.bytes,
		m.readErrors, m.inserted, m.deleted, m.checkpoints, m.ckSeconds, m.reloads, indexCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observe is the outermost interceptor: it counts every request (those
// refused for want of a token too), times it and marks its arrival.
func (m *metrics) observe(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		method := path.Base(req.Spec().Procedure)
		m.inFlight.Inc()
		t0 := time.Now()
		resp, err := next(context.WithValue(ctx, arrivalKey{}, t0), req)
		m.inFlight.Dec()
		code := "ok"
		if err != nil {
			code = connect.CodeOf(err).String()
		}
		m.latency.WithLabelValues(method, code).Observe(time.Since(t0).Seconds())
		m.requests.WithLabelValues(method, code).Inc()
		return resp, err
	}
}

// waited records how long a query waited from its request's arrival to
// a search worker taking it, given the time since then.
func (m *metrics) waited(ctx context.Context, searching time.Duration) {
	if t0, ok := ctx.Value(arrivalKey{}).(time.Time); ok {
		m.queueWait.Observe(max(0, time.Since(t0)-searching).Seconds())
	}
}

// query records one query's reads.
func (m *metrics) query(index string, st *spann.SearchStats) {
	m.postings.WithLabelValues(index).Observe(float64(st.Postings))
	m.pages.WithLabelValues(index).Observe(float64(st.Pages))
	m.bytes.WithLabelValues(index).Observe(float64(st.Bytes))
}

func (m *metrics) checkpoint(index string, took time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.checkpoints.WithLabelValues(index, result).Inc()
	m.ckSeconds.WithLabelValues(index).Observe(took.Seconds())
}

// indexCollector reports each served index's current state at scrape
// time: after a reload, the new one's.
type indexCollector struct{ s *Server }

var (
	indexInfoDesc = prometheus.NewDesc("spann_index_info", "The served index: 1, labelled with its build id, element type, metric and dimension.",
		[]string{"index", "build_id", "type", "metric", "dim", "writable"}, nil)
	indexVectorsDesc = prometheus.NewDesc("spann_index_vectors", "Ids the index has given (deleted ones included).", []string{"index"}, nil)
	indexDeletedDesc = prometheus.NewDesc("spann_index_deleted", "Ids deleted.", []string{"index"}, nil)
	indexHeadsDesc   = prometheus.NewDesc("spann_index_heads", "Heads (postings) of the index.", []string{"index"}, nil)
	indexBytesDesc   = prometheus.NewDesc("spann_index_size_bytes", "Bytes of the index's files.", []string{"index"}, nil)
)

func (c indexCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{indexInfoDesc, indexVectorsDesc, indexDeletedDesc, indexHeadsDesc, indexBytesDesc} {
		ch <- d
	}
}

func (c indexCollector) Collect(ch chan<- prometheus.Metric) {
	for name, sv := range c.s.indexes {
		h, err := sv.acquire()
		if err != nil {
			continue // shutting down
		}
		in := h.ix.Info()
		ch <- prometheus.MustNewConstMetric(indexInfoDesc, prometheus.GaugeValue, 1, name, in.BuildID, in.Type, in.Metric,
			strconv.Itoa(in.Dim), strconv.FormatBool(sv.spec.Writable))
		ch <- prometheus.MustNewConstMetric(indexVectorsDesc, prometheus.GaugeValue, float64(in.N), name)
		ch <- prometheus.MustNewConstMetric(indexDeletedDesc, prometheus.GaugeValue, float64(h.ix.Deleted()), name)
		ch <- prometheus.MustNewConstMetric(indexHeadsDesc, prometheus.GaugeValue, float64(in.Heads), name)
		ch <- prometheus.MustNewConstMetric(indexBytesDesc, prometheus.GaugeValue, float64(dirBytes(in.Dir)), name)
		h.release()
	}
}
