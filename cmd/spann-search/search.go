package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/cmdutil"
)

func searchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "index", Usage: "index directory made by spann-build (with --server: the served index's name; default its only one)"},
		&cli.StringFlag{Name: "server", Usage: "search an index served by spann-serve at this URL (http://HOST:PORT or https://...) instead of opening one: same evaluation, latency as the client sees it, --threads requests in flight"},
		&cli.StringFlag{Name: "token-file", Usage: "with --server: file holding the bearer token"},
		&cli.IntFlag{Name: "server-batch", Value: 1, Usage: "with --server: queries per request (1 = Search requests; more = SearchBatch requests, each query's latency being its request's)"},
		&cli.StringFlag{Name: "tls-ca", Usage: "with an https --server: PEM certificate(s) to trust (default: the system's roots)"},
		&cli.StringFlag{Name: "queries", Usage: "query vector file, same type and dimension as the index"},
		&cli.IntFlag{Name: "k", Value: 10, Usage: "neighbours per query"},
		&cli.StringFlag{Name: "gt", Usage: "ground-truth file: report tie-aware recall@k (and @1, @100 when possible)"},
		&cli.StringFlag{Name: "out", Usage: "write the result ids as .ibin"},
		&cli.Float64Flag{Name: "radius", Usage: "range search: every indexed vector within this distance (SQUARED for l2) instead of the k nearest; reads the --nprobe nearest heads' postings and those of every head within radius·(1+range-slack); --gt is then a range ground truth (groundtruth --radius), scored by average precision, and --out writes the range format"},
		&cli.Float64Flag{Name: "range-slack", Usage: "with --radius: read the postings of heads within radius·(1+slack) of the query, beyond the --nprobe nearest; above -1 (negative reads fewer)"},
		&cli.StringFlag{Name: "query-labels", Usage: "filtered search: one filter per query (.spmat, or text: a line of labels per query); a result must carry every label of its query's filter (the index needs labels: spann-build --labels). Adds a table by selectivity bucket, each bucket searched on its own"},
		&cli.IntFlag{Name: "threads", Value: 1, Usage: "concurrent query workers (0 = all cores); with --server, requests in flight, one query each"},
		&cli.IntFlag{Name: "nprobe", Value: 64, Usage: "nearest heads whose postings are candidates"},
		&cli.Float64Flag{Name: "eps", Value: -1, Usage: "prune heads with d(q,c) > d1 + eps·|d1|, d1 the nearest head's distance; " +
			"distances are SQUARED for l2 (eps 0.21 ≈ 1.1× the Euclidean distance); 0 or negative = no pruning"},
		&cli.IntFlag{Name: "head-list", Usage: "head-graph search list (0 = nprobe + max(8, nprobe/2))"},
		&cli.IntFlag{Name: "max-postings", Usage: "read at most this many postings per query after pruning (0 = no cap)"},
		&cli.IntFlag{Name: "first-round", Usage: "two-round stopping rule: read the postings of this many nearest heads first, then only those of the other nprobe candidates whose head distance is within --kth-slack of the k-th distance found (0 = one round: every candidate)"},
		&cli.Float64Flag{Name: "kth-slack", Value: 0.25, Usage: "second-round bound of --first-round: read a candidate if d(q,c) <= τ + slack·|τ|, τ the k-th distance after the first round; distances are SQUARED for l2 (0.21 ≈ 1.1× the Euclidean distance)"},
		&cli.IntFlag{Name: "in-flight", Usage: fmt.Sprintf("queries each worker keeps in flight: while one query's postings are read it searches the next one's heads (0 = %d, twice that with --first-round)", spann.DefaultInFlight)},
		&cli.StringFlag{Name: "io", Value: "auto", Usage: "posting reads: auto (io_uring, else Linux AIO, else pread), uring, aio or pread; SPANN_IO overrides"},
		&cli.IntFlag{Name: "nq", Usage: "use only the first N queries (0 = all)"},
		&cli.StringFlag{Name: "sweep", Usage: "run several settings, e.g. nprobe=8,16,32,64, eps=0.1,0.3, max-postings=8,16, in-flight=1,2,4, first-round=4,6 or kth-slack=0.2,0.3 (one parameter)"},
		&cli.StringFlag{Name: "sweep-out", Usage: "write the sweep table as CSV (.csv) or JSON (.json)"},
		&cli.StringFlag{Name: "plot", Usage: "draw recall@k against QPS of the sweep into this .png, .svg or .pdf (needs --gt; runs spann-plot, found next to spann-search, at $SPANN_PLOT or on the PATH)"},
		&cli.BoolFlag{Name: "json", Usage: "print the summary (or the sweep rows) as JSON on stdout"},
		&cli.StringFlag{Name: "cpuprofile", Usage: "write a pprof CPU profile of the searches to this file"},
		&cli.StringFlag{Name: "memprofile", Usage: "write a pprof heap profile (live and allocated memory, open included) to this file after the searches"},
	}
}

// row is one measured setting.
type row struct {
	NProbe      int         `json:"nprobe"`
	Eps         float64     `json:"eps"`
	MaxPostings int         `json:"max_postings"`
	InFlight    int         `json:"in_flight"`
	FirstRound  int         `json:"first_round"`
	KthSlack    float64     `json:"kth_slack"`
	Threads     int         `json:"threads"`
	Queries     int         `json:"queries"`
	K           int         `json:"k"`
	RecallK     float64     `json:"recall_at_k,omitempty"`
	Recall1     float64     `json:"recall_at_1,omitempty"`
	Recall100   float64     `json:"recall_at_100,omitempty"`
	QPS         float64     `json:"qps"`
	MeanUS      float64     `json:"latency_mean_us"`
	P50US       float64     `json:"latency_p50_us"`
	P90US       float64     `json:"latency_p90_us"`
	P99US       float64     `json:"latency_p99_us"`
	P999US      float64     `json:"latency_p999_us"`
	Postings    float64     `json:"postings_per_query"`
	Pages       float64     `json:"pages_per_query"`
	KiB         float64     `json:"kib_per_query"`
	Vectors     float64     `json:"vectors_per_query"`
	HeadUS      float64     `json:"head_search_us"`
	IOUS        float64     `json:"io_us"`
	ScanUS      float64     `json:"scan_us"`
	CPUUS       float64     `json:"cpu_us_per_query"` // user+system CPU of the process over the batch, per query
	IOPS        float64     `json:"read_iops"`
	MiBs        float64     `json:"read_mib_per_s"`
	Backend     string      `json:"io_backend"`
	PeakRSSMiB  float64     `json:"peak_rss_mib"`
	Buckets     []bucketRow `json:"filter_buckets,omitempty"`
}

func runSearch(c *cli.Context) error {
	if (c.String("index") == "" && c.String("server") == "") || c.String("queries") == "" {
		return fmt.Errorf("search needs --index DIR (or --server URL) and --queries FILE (or a subcommand; see --help)")
	}
	threads, err := cmdutil.Threads(c.Int("threads"))
	if err != nil {
		return err
	}
	switch c.String("io") {
	case "auto", "uring", "aio", "pread":
	default:
		return fmt.Errorf("--io %q: want auto, uring, aio or pread", c.String("io"))
	}
	// Searching allocates nothing per query, so the collector has almost no
	// work; a low GOGC keeps the heap (the index's big arrays are off it:
	// internal/offheap) near its live set instead of letting per-batch
	// result arrays pile up between collections.
	debug.SetGCPercent(10)
	ix, err := openTarget(c)
	if err != nil {
		return err
	}
	defer ix.Close()
	if c.Int("nq") < 0 {
		return fmt.Errorf("--nq %d: must not be negative (0 = all queries)", c.Int("nq"))
	}
	qm, err := datasets.LoadVectors(c.String("queries"), 0, c.Int("nq"))
	if err != nil {
		return err
	}
	if qm.Type != ix.Type() {
		return fmt.Errorf("%s: queries are %s but the index holds %s vectors", c.String("queries"), qm.Type, ix.Type())
	}
	if qm.Dim != ix.Dim() {
		return fmt.Errorf("%s: queries have dimension %d but the index has %d", c.String("queries"), qm.Dim, ix.Dim())
	}
	k := c.Int("k")
	if k <= 0 || k > ix.N() {
		return fmt.Errorf("--k %d: must be between 1 and the %d indexed vectors", k, ix.N())
	}
	var gt *datasets.GroundTruth
	if p := c.String("gt"); p != "" && !c.IsSet("radius") { // (a range ground truth is read by runRangeSearch)
		// Results have k columns, so recall needs the first k of the
		// ground truth (recall@100 only when k >= 100): the rest would
		// only weigh on the resident set being measured.
		if gt, err = datasets.ReadGroundTruthCols(p, k); err != nil {
			return err
		}
		if gt.NQ < qm.N {
			return fmt.Errorf("%s: ground truth for %d queries, but %d queries are searched", p, gt.NQ, qm.N)
		}
		if gt.K < k {
			return fmt.Errorf("%s: ground truth has %d neighbours per query, fewer than --k %d", p, gt.K, k)
		}
		gt.NQ = qm.N
		// Ground truth of another base (ids the index does not have) would
		// be scored as misses, silently: refuse it.
		for i, id := range gt.IDs[:gt.NQ*gt.K] {
			if id == -1 && math.IsInf(float64(gt.Dists[i]), 1) {
				continue // padding: fewer than k matched the query's filter
			}
			if id < 0 || int(id) >= ix.N() {
				return fmt.Errorf("%s: query %d, rank %d: id %d is not one of the index's %d vectors (ground truth of another base?)", p, i/gt.K, i%gt.K, id, ix.N())
			}
		}
	}
	filters, err := readFilters(c.String("query-labels"), ix, qm.N)
	if err != nil {
		return err
	}
	for _, name := range []string{"in-flight", "head-list", "max-postings", "first-round"} {
		if v := c.Int(name); v < 0 {
			return fmt.Errorf("--%s %d: must not be negative (0 = the default)", name, v)
		}
	}
	if e := c.Float64("eps"); math.IsNaN(e) || math.IsInf(e, 0) {
		return fmt.Errorf("--eps %v: must be a finite number (0 or negative = no pruning)", e)
	}
	base := spann.SearchParams{NProbe: c.Int("nprobe"), Eps: c.Float64("eps"), HeadList: c.Int("head-list"),
		MaxPostings: c.Int("max-postings"), InFlight: c.Int("in-flight"), FirstRound: c.Int("first-round"), KthSlack: c.Float64("kth-slack"),
		RangeSlack: c.Float64("range-slack")}
	settings := []spann.SearchParams{base}
	if s := c.String("sweep"); s != "" {
		if settings, err = parseSweep(s, base); err != nil {
			return err
		}
	}
	stopProfile, err := cmdutil.StartCPUProfile(c.String("cpuprofile"))
	if err != nil {
		return err
	}
	defer stopProfile()
	if c.IsSet("radius") {
		return runRangeSearch(c, ix, qm, threads, base)
	}
	var rows []row
	var last *spann.BatchResult
	for _, p := range settings {
		if p.NProbe < 1 {
			return fmt.Errorf("--nprobe %d: must be at least 1", p.NProbe)
		}
		cpu0 := cpuTime()
		res, err := searchAll(ix, qm.Data, filters, k, p, threads)
		if err != nil {
			return err
		}
		cpu := cpuTime() - cpu0
		r, err := summarize(res, gt, p, threads, qm.N, ix.Info().Backend)
		if err != nil {
			return err
		}
		r.CPUUS = float64(cpu.Nanoseconds()) / 1e3 / float64(qm.N)
		if _, local := ix.(*spann.Index); local && filters != nil { // (a server does not tell selectivities)
			if r.Buckets, err = filterBuckets(ix, qm, filters, gt, k, p, threads); err != nil {
				return err
			}
		}
		rows = append(rows, r)
		if c.String("out") != "" {
			last = res // kept for --out; otherwise let it go before the next setting runs
		}
		if !c.Bool("json") && len(settings) > 1 {
			printRowLine(r, len(rows) == 1, gt != nil)
		}
	}
	if mp := c.String("memprofile"); mp != "" {
		if err := writeHeapProfile(mp); err != nil {
			return err
		}
	}
	if out := c.String("out"); out != "" {
		if err := datasets.WriteResults(out, &datasets.Results{N: qm.N, K: k, IDs: last.IDs}); err != nil {
			return err
		}
	}
	if so := c.String("sweep-out"); so != "" {
		if err := writeRows(so, rows); err != nil {
			return err
		}
	}
	if pp := c.String("plot"); pp != "" {
		if gt == nil {
			return fmt.Errorf("--plot needs --gt: recall is on its x axis")
		}
		if err := plotRows(pp, c.String("sweep-out"), rows, ix.Info().Dir, threads, k); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		if len(rows) == 1 {
			return cmdutil.PrintJSON(os.Stdout, rows[0])
		}
		return cmdutil.PrintJSON(os.Stdout, rows)
	}
	if len(rows) == 1 {
		printRow(rows[0], gt != nil, ix.Info())
		if rows[0].Buckets != nil {
			printBuckets(rows[0].Buckets, k)
		}
	}
	return nil
}

// plotRows draws the sweep's rows into png through spann-plot, from the
// sweep CSV if one was written, else from a temporary copy.
func plotRows(png, sweepCSV string, rows []row, index string, threads, k int) error {
	if sweepCSV == "" {
		tmp, err := os.CreateTemp("", "spann-sweep-*.csv")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if err := writeRows(tmp.Name(), rows); err != nil {
			return err
		}
		sweepCSV = tmp.Name()
	}
	title := fmt.Sprintf("%s, %s", index, plural(threads, "thread"))
	return plotSweep(png, sweepCSV, "spann "+rows[0].Backend, title, k)
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // the profile shows the heap as of the last collection
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

func parseSweep(s string, base spann.SearchParams) ([]spann.SearchParams, error) {
	name, list, ok := strings.Cut(s, "=")
	if !ok || list == "" {
		return nil, fmt.Errorf("--sweep %q: want NAME=V1,V2,... (nprobe, eps, max-postings, in-flight, first-round or kth-slack)", s)
	}
	var out []spann.SearchParams
	for _, v := range strings.Split(list, ",") {
		p := base
		var err error
		switch strings.TrimSpace(name) {
		case "nprobe":
			p.NProbe, err = strconv.Atoi(strings.TrimSpace(v))
		case "eps":
			p.Eps, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		case "max-postings":
			p.MaxPostings, err = strconv.Atoi(strings.TrimSpace(v))
		case "in-flight":
			p.InFlight, err = strconv.Atoi(strings.TrimSpace(v))
		case "first-round":
			p.FirstRound, err = strconv.Atoi(strings.TrimSpace(v))
		case "kth-slack":
			p.KthSlack, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		default:
			return nil, fmt.Errorf("--sweep: unknown parameter %q (want nprobe, eps, max-postings, in-flight, first-round or kth-slack)", name)
		}
		if err != nil {
			return nil, fmt.Errorf("--sweep %s: bad value %q", name, v)
		}
		out = append(out, p)
	}
	return out, nil
}

func summarize(res *spann.BatchResult, gt *datasets.GroundTruth, p spann.SearchParams, threads, nq int, backend string) (row, error) {
	lat := slices.Clone(res.Latency)
	slices.Sort(lat)
	pct := func(f float64) float64 {
		i := min(len(lat)-1, int(f*float64(len(lat))))
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	n := float64(nq)
	st := res.Stats
	wall := res.Wall.Seconds()
	inFlight := p.InFlightDepth()
	r := row{NProbe: p.NProbe, Eps: p.Eps, MaxPostings: p.MaxPostings, InFlight: inFlight, FirstRound: p.FirstRound, KthSlack: p.KthSlack, Threads: threads, Queries: nq, K: res.K,
		QPS: n / wall, MeanUS: float64(sum.Nanoseconds()) / 1e3 / n,
		P50US: pct(0.5), P90US: pct(0.9), P99US: pct(0.99), P999US: pct(0.999),
		Postings: float64(st.Postings) / n, Pages: float64(st.Pages) / n, KiB: float64(st.Bytes) / 1024 / n,
		Vectors: float64(st.Vectors) / n, HeadUS: float64(st.HeadTime.Nanoseconds()) / 1e3 / n,
		IOUS: float64(st.IOTime.Nanoseconds()) / 1e3 / n, ScanUS: float64(st.ScanTime.Nanoseconds()) / 1e3 / n,
		IOPS: float64(st.Postings) / wall, MiBs: float64(st.Bytes) / (1 << 20) / wall,
		Backend: backend, PeakRSSMiB: float64(cmdutil.PeakRSS()) / (1 << 20)}
	if gt != nil {
		results := &datasets.Results{N: nq, K: res.K, IDs: res.IDs}
		rs, err := recalls(gt, results, res.K)
		if err != nil {
			return r, err
		}
		r.RecallK = rs[fmt.Sprintf("recall@%d", res.K)]
		r.Recall1 = rs["recall@1"]
		r.Recall100 = rs["recall@100"]
	}
	return r, nil
}

func printRow(r row, withRecall bool, info spann.Info) {
	if withRecall {
		fmt.Printf("recall@%d: %.4f", r.K, r.RecallK)
		if r.K != 1 {
			fmt.Printf("  recall@1: %.4f", r.Recall1)
		}
		if r.Recall100 > 0 && r.K != 100 {
			fmt.Printf("  recall@100: %.4f", r.Recall100)
		}
		fmt.Println()
	}
	fmt.Printf("queries: %d, threads: %d, QPS: %.0f\n", r.Queries, r.Threads, r.QPS)
	fmt.Printf("latency µs: mean %.0f, p50 %.0f, p90 %.0f, p99 %.0f, p99.9 %.0f\n", r.MeanUS, r.P50US, r.P90US, r.P99US, r.P999US)
	fmt.Printf("per query: %.1f postings, %.1f pages (%.1f KiB), %.0f vectors scanned; head search %.0f µs, I/O %.0f µs, scan %.0f µs\n",
		r.Postings, r.Pages, r.KiB, r.Vectors, r.HeadUS, r.IOUS, r.ScanUS)
	fmt.Printf("CPU: %.0f µs per query (user+system, whole process)\n", r.CPUUS)
	fmt.Printf("reads: %.0f IOPS, %.1f MiB/s, backend %s", r.IOPS, r.MiBs, r.Backend)
	if info.Fallback != "" {
		fmt.Printf(" (%s)", info.Fallback)
	}
	fmt.Printf("\npeak RSS: %.1f MiB\n", r.PeakRSSMiB)
}

func printRowLine(r row, header, withRecall bool) {
	if header {
		fmt.Printf("%7s %6s %8s %8s %8s %8s %9s %9s %8s %8s %9s %8s\n", "nprobe", "eps", "maxpost", "recall", "QPS", "mean_us", "p99_us", "postings", "pages", "KiB", "vectors", "RSS_MiB")
	}
	rec := "-"
	if withRecall {
		rec = fmt.Sprintf("%.4f", r.RecallK)
	}
	fmt.Printf("%7d %6.2f %8d %8s %8.0f %8.0f %9.0f %9.1f %8.1f %8.1f %9.0f %8.1f\n", r.NProbe, r.Eps, r.MaxPostings, rec, r.QPS, r.MeanUS, r.P99US, r.Postings, r.Pages, r.KiB, r.Vectors, r.PeakRSSMiB)
}

func writeRows(path string, rows []row) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := csv.NewWriter(f)
	w.Write([]string{"nprobe", "eps", "max_postings", "in_flight", "first_round", "kth_slack", "threads", "recall", "qps", "mean_us", "p50_us", "p99_us", "postings", "pages", "kib", "vectors", "cpu_us", "peak_rss_mib", "backend"})
	for _, r := range rows {
		w.Write([]string{strconv.Itoa(r.NProbe), fmt.Sprint(r.Eps), strconv.Itoa(r.MaxPostings), strconv.Itoa(r.InFlight),
			strconv.Itoa(r.FirstRound), fmt.Sprint(r.KthSlack), strconv.Itoa(r.Threads),
			fmt.Sprintf("%.4f", r.RecallK), fmt.Sprintf("%.1f", r.QPS), fmt.Sprintf("%.1f", r.MeanUS), fmt.Sprintf("%.1f", r.P50US),
			fmt.Sprintf("%.1f", r.P99US), fmt.Sprintf("%.2f", r.Postings), fmt.Sprintf("%.2f", r.Pages), fmt.Sprintf("%.2f", r.KiB),
			fmt.Sprintf("%.1f", r.Vectors), fmt.Sprintf("%.1f", r.CPUUS), fmt.Sprintf("%.1f", r.PeakRSSMiB), r.Backend})
	}
	w.Flush()
	return w.Error()
}

// plural returns "1 thread" or "2 threads".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
