package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/cmdutil"
)

// rangeRow is a range search's summary.
type rangeRow struct {
	Radius    float64 `json:"radius"`
	NProbe    int     `json:"nprobe"`
	Slack     float64 `json:"range_slack"`
	Threads   int     `json:"threads"`
	Queries   int     `json:"queries"`
	AP        float64 `json:"average_precision,omitempty"`
	Results   float64 `json:"results_per_query"`
	MedianRes int     `json:"results_median"`
	QPS       float64 `json:"qps"`
	MeanUS    float64 `json:"latency_mean_us"`
	Postings  float64 `json:"postings_per_query"`
	Pages     float64 `json:"pages_per_query"`
	PeakRSS   float64 `json:"peak_rss_mib"`
}

// runRangeSearch is spann-search --radius: every indexed vector within
// the radius of each query, scored by average precision against a range
// ground truth (--gt), written in the range format (--out).
func runRangeSearch(c *cli.Context, ix target, qm *datasets.Matrix, threads int, p spann.SearchParams) error {
	radius := c.Float64("radius")
	if err := ix.CheckRadius(float32(radius)); err != nil {
		return fmt.Errorf("--%w", err) // "--radius -2: must be …"
	}
	if c.String("query-labels") != "" || c.String("sweep") != "" {
		return fmt.Errorf("--radius goes without --query-labels and --sweep")
	}
	var gt *datasets.RangeResults
	if path := c.String("gt"); path != "" {
		var err error
		if gt, err = datasets.ReadRangeResults(path); err != nil {
			return fmt.Errorf("%w (with --radius, --gt is a range ground truth: spann-search groundtruth --radius)", err)
		}
		if gt.NQ() < qm.N {
			return fmt.Errorf("%s: range ground truth for %d queries, but %d queries are searched", path, gt.NQ(), qm.N)
		}
		gt.Offsets = gt.Offsets[:qm.N+1]
		gt.IDs, gt.Dists = gt.IDs[:gt.Offsets[qm.N]], gt.Dists[:gt.Offsets[qm.N]]
	}
	res, err := ix.SearchRangeBatch(context.Background(), qm.Data, float32(radius), p, threads)
	if err != nil {
		return err
	}
	got := &datasets.RangeResults{Offsets: res.Offsets}
	for _, n := range res.Neighbors {
		got.IDs = append(got.IDs, n.ID)
		got.Dists = append(got.Dists, n.Dist)
	}
	counts := make([]int, qm.N)
	var lat float64
	for q := range counts {
		counts[q] = res.Offsets[q+1] - res.Offsets[q]
		lat += float64(res.Latency[q].Microseconds())
	}
	slices.Sort(counts)
	n := float64(qm.N)
	r := rangeRow{Radius: radius, NProbe: p.NProbe, Slack: p.RangeSlack, Threads: threads, Queries: qm.N,
		Results: float64(len(got.IDs)) / n, MedianRes: counts[qm.N/2], QPS: n / res.Wall.Seconds(), MeanUS: lat / n,
		Postings: float64(res.Stats.Postings) / n, Pages: float64(res.Stats.Pages) / n, PeakRSS: float64(cmdutil.PeakRSS()) / (1 << 20)}
	if gt != nil {
		if r.AP, err = eval.AveragePrecision(gt, got); err != nil {
			return err
		}
	}
	if out := c.String("out"); out != "" {
		if err := datasets.WriteRangeResults(out, got); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return cmdutil.PrintJSON(os.Stdout, r)
	}
	if gt != nil {
		fmt.Printf("average precision: %.4f\n", r.AP)
	}
	fmt.Printf("queries: %d within %v, threads: %d, QPS: %.0f, latency mean %.0f µs\n", r.Queries, radius, threads, r.QPS, r.MeanUS)
	fmt.Printf("per query: %.1f results (median %d), %.1f postings, %.1f pages\n", r.Results, r.MedianRes, r.Postings, r.Pages)
	return nil
}
