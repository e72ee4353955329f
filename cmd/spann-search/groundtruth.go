package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/progress"
	"github.com/gospann/spann/internal/vec"
)

func groundtruthCommand() *cli.Command {
	return &cli.Command{
		Name:  "groundtruth",
		Usage: "compute the exact k nearest neighbours of every query by brute force",
		Description: "Streams the base file in blocks (so a base larger than RAM works) and scores every query " +
			"against every base vector with the SIMD kernels. Writes a big-ann-benchmarks ground-truth file: " +
			"uint32 nq, uint32 k, int32 ids[nq*k], float32 distances[nq*k], each row sorted by (distance, id). " +
			"With --compare, checks the result against a reference ground-truth file (ids may differ only " +
			"among distances tied with the k-th).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "base", Required: true, Usage: "base vector file (.fbin/.u8bin/.i8bin)"},
			&cli.StringFlag{Name: "queries", Required: true, Usage: "query vector file, same type and dimension as the base"},
			&cli.IntFlag{Name: "k", Value: 100, Usage: "neighbours per query"},
			&cli.StringFlag{Name: "out", Usage: "ground-truth file to write (optional with --compare)"},
			&cli.StringFlag{Name: "metric", Value: "l2", Usage: "l2 (squared Euclidean), ip (inner product) or cosine (float32 only)"},
			&cli.IntFlag{Name: "threads", Value: 0, Usage: "worker threads (0 = all cores)"},
			&cli.StringFlag{Name: "type", Usage: "element type of both files, overriding their extensions: float32, uint8 or int8"},
			&cli.IntFlag{Name: "crop", Usage: "use only the first N base vectors (0 = all)"},
			&cli.IntFlag{Name: "nq", Usage: "use only the first N queries (0 = all)"},
			&cli.StringFlag{Name: "compare", Usage: "reference ground-truth file to check the result against"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object on stdout (no progress output)"},
			&cli.StringFlag{Name: "base-labels", Usage: "labels of the base vectors (.spmat, or text: one line per vector); with --query-labels, the filtered top k"},
			&cli.StringFlag{Name: "query-labels", Usage: "one filter per query (same formats): a neighbour must carry every label of its query's filter"},
			&cli.Float64Flag{Name: "radius", Usage: "range ground truth instead: every base vector within this distance of each query (the metric's own distance: SQUARED for l2), written in big-ann-benchmarks' range format (int32 nq, int32 total, int32 counts[nq], int32 ids[total], float32 distances[total]); --k is then unused"},
		},
		Action: runGroundtruth,
	}
}

func runGroundtruth(c *cli.Context) error {
	if c.String("out") == "" && c.String("compare") == "" {
		return fmt.Errorf("groundtruth: give --out FILE to write, --compare FILE to check, or both")
	}
	var typ datasets.ElemType
	if s := c.String("type"); s != "" {
		var err error
		if typ, err = datasets.ParseType(s); err != nil {
			return err
		}
	}
	metric, err := vec.ParseMetric(c.String("metric"))
	if err != nil {
		return err
	}
	threads, err := cmdutil.Threads(c.Int("threads"))
	if err != nil {
		return err
	}
	base, err := datasets.OpenVectors(c.String("base"), typ)
	if err != nil {
		return err
	}
	defer base.Close()
	if n := c.Int("crop"); n != 0 {
		if err := base.Crop(n); err != nil {
			return err
		}
	}
	queries, err := datasets.LoadVectors(c.String("queries"), typ, c.Int("nq"))
	if err != nil {
		return err
	}
	if c.IsSet("radius") {
		return runRangeGroundtruth(c, base, queries, metric, threads)
	}
	allowed, err := filterSets(c.String("base-labels"), c.String("query-labels"), base.N, queries.N)
	if err != nil {
		return err
	}
	start := time.Now()
	bar := progress.New(cmdutil.Progress(c.Bool("json")), "groundtruth", int64(base.N))
	gt, err := eval.ExactKNN(base, queries, eval.GTOptions{K: c.Int("k"), Metric: metric, Threads: threads, Progress: bar.Func(), Allowed: allowed})
	bar.Done()
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	if out := c.String("out"); out != "" {
		if err := datasets.WriteGroundTruth(out, gt); err != nil {
			return err
		}
	}
	summary := map[string]any{
		"base": base.Path, "n": base.N, "dim": base.Dim, "type": base.Type.String(), "metric": metric.String(),
		"queries": queries.N, "k": gt.K, "threads": threads, "seconds": secs, "out": c.String("out"),
	}
	var mismatches int
	if ref := c.String("compare"); ref != "" {
		want, err := datasets.ReadGroundTruth(ref)
		if err != nil {
			return err
		}
		if want.NQ < gt.NQ {
			return fmt.Errorf("%s: has %d queries, fewer than the %d computed", ref, want.NQ, gt.NQ)
		}
		if want.K < gt.K {
			return fmt.Errorf("%s: has k=%d, less than --k %d", ref, want.K, gt.K)
		}
		want.NQ = gt.NQ
		var examples []eval.Mismatch
		mismatches, examples, err = eval.CompareGroundTruth(gt, want, gt.K, base.Type != datasets.Float32, 1e-5, 5)
		if err != nil {
			return err
		}
		summary["compare"] = ref
		summary["mismatching_queries"] = mismatches
		if !c.Bool("json") {
			for _, m := range examples {
				fmt.Fprintf(os.Stderr, "query %d: %s\n", m.Query, m.Reason)
			}
		}
	}
	if c.Bool("json") {
		if err := cmdutil.PrintJSON(os.Stdout, summary); err != nil {
			return err
		}
	} else {
		fmt.Printf("ground truth: %d queries × top %d over %d %s vectors of dim %d (%s), %d threads, %.1f s\n",
			queries.N, gt.K, base.N, base.Type, base.Dim, metric, threads, secs)
		if c.String("compare") != "" {
			fmt.Printf("compared with %s: %d of %d queries differ beyond ties\n", c.String("compare"), mismatches, gt.NQ)
		}
	}
	if mismatches > 0 {
		return fmt.Errorf("%d of %d queries differ from %s", mismatches, gt.NQ, c.String("compare"))
	}
	return nil
}

// filterSets reads the base labels and query filters (both or neither) and
// returns each query's matching base rows, for a filtered ground truth.
// The base labels must cover the n base rows in use, the filters the nq
// queries; a filter naming no label, or a label the base vocabulary lacks,
// is an error naming the file and the query.
func filterSets(basePath, queryPath string, n, nq int) ([]*roaring.Bitmap, error) {
	if basePath == "" && queryPath == "" {
		return nil, nil
	}
	if basePath == "" || queryPath == "" {
		return nil, fmt.Errorf("a filtered ground truth needs both --base-labels and --query-labels")
	}
	baseLabels, err := datasets.ReadLabels(basePath)
	if err != nil {
		return nil, err
	}
	if baseLabels.Rows() < n {
		return nil, fmt.Errorf("%s: labels for %d vectors, the base has %d", basePath, baseLabels.Rows(), n)
	}
	filters, err := datasets.ReadLabels(queryPath)
	if err != nil {
		return nil, err
	}
	if filters.Rows() < nq {
		return nil, fmt.Errorf("%s: %d filters for %d queries", queryPath, filters.Rows(), nq)
	}
	if baseLabels.Rows() > n { // a cropped base: only its rows may match
		baseLabels.Indptr = baseLabels.Indptr[:n+1]
		baseLabels.Indices = baseLabels.Indices[:baseLabels.Indptr[n]]
	}
	bitmaps := baseLabels.Bitmaps()
	allowed := make([]*roaring.Bitmap, nq)
	for q := range allowed {
		if allowed[q], err = datasets.Matching(bitmaps, filters.Row(q)); err != nil {
			return nil, fmt.Errorf("%s: query %d: %w", queryPath, q, err)
		}
	}
	return allowed, nil
}

// runRangeGroundtruth is groundtruth --radius: every base vector within
// the radius of each query, by brute force.
func runRangeGroundtruth(c *cli.Context, base *datasets.VectorFile, queries *datasets.Matrix, metric vec.Metric, threads int) error {
	radius := c.Float64("radius")
	if err := vec.CheckRadius(metric, radius); err != nil {
		return fmt.Errorf("--%w", err) // "--radius -2: must be …"
	}
	if c.String("out") == "" || c.String("compare") != "" || c.String("base-labels") != "" {
		return fmt.Errorf("groundtruth --radius: give --out FILE (--compare and labels do not apply to ranges)")
	}
	start := time.Now()
	bar := progress.New(cmdutil.Progress(c.Bool("json")), "range groundtruth", int64(base.N))
	gt, err := eval.ExactRange(base, queries, float32(radius), eval.GTOptions{Metric: metric, Threads: threads, Progress: bar.Func()})
	bar.Done()
	if err != nil {
		return err
	}
	if err := datasets.WriteRangeResults(c.String("out"), gt); err != nil {
		return err
	}
	counts := make([]int, gt.NQ())
	for q := range counts {
		counts[q] = gt.Offsets[q+1] - gt.Offsets[q]
	}
	slices.Sort(counts)
	summary := map[string]any{"base": base.Path, "n": base.N, "queries": queries.N, "radius": radius, "metric": metric.String(),
		"results": len(gt.IDs), "median_results": counts[len(counts)/2], "seconds": time.Since(start).Seconds(), "out": c.String("out")}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, summary)
	}
	fmt.Printf("range ground truth: %d queries within %v over %d vectors: %d results (median %d per query), %.1f s\n",
		queries.N, radius, base.N, len(gt.IDs), counts[len(counts)/2], time.Since(start).Seconds())
	return nil
}
