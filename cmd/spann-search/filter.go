package main

import (
	"context"
	"fmt"
	"math"
	"slices"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

// readFilters reads --query-labels: one filter per query searched, each
// checked against the index's labels.
func readFilters(path string, ix target, nq int) ([][]int32, error) {
	if path == "" {
		return nil, nil
	}
	l, err := datasets.ReadLabels(path)
	if err != nil {
		return nil, err
	}
	if l.Rows() < nq {
		return nil, fmt.Errorf("%s: %d filters for %d queries", path, l.Rows(), nq)
	}
	filters := make([][]int32, nq)
	for i := range filters {
		filters[i] = l.Row(i)
		if err := ix.CheckFilter(filters[i]); err != nil {
			return nil, fmt.Errorf("%s: query %d: %w", path, i, err)
		}
	}
	return filters, nil
}

// searchAll runs one setting: filtered when filters are given.
func searchAll(ix target, queries []byte, filters [][]int32, k int, p spann.SearchParams, threads int) (*spann.BatchResult, error) {
	if filters == nil {
		return ix.SearchBatch(queries, k, p, threads)
	}
	return ix.SearchBatchFiltered(context.Background(), queries, filters, k, p, threads)
}

// bucketRow is the figures of the queries whose filters fall in one
// selectivity bucket, searched as a batch of their own.
type bucketRow struct {
	Aim         float64 `json:"selectivity_aim"`    // the bucket: nearest of datasets.FilterSelectivities
	Labels      int     `json:"labels"`             // labels per filter
	Queries     int     `json:"queries"`            //
	MedianShare float64 `json:"selectivity_median"` // share of the index the median filter matches
	RecallK     float64 `json:"recall_at_k,omitempty"`
	QPS         float64 `json:"qps"`
	Postings    float64 `json:"postings_per_query"`
	Pages       float64 `json:"pages_per_query"`
	MeanUS      float64 `json:"latency_mean_us"`
	HomesPlan   float64 `json:"homes_plan_share"` // queries answered by the homes plan
	ListsPlan   float64 `json:"lists_plan_share"` // ... and from label lists
}

// filterBuckets searches each selectivity bucket's queries on their own
// (so that each gets its own QPS) and returns a row per bucket.
func filterBuckets(ix target, qm *datasets.Matrix, filters [][]int32, gt *datasets.GroundTruth, k int, p spann.SearchParams, threads int) ([]bucketRow, error) {
	local := ix.(*spann.Index)
	type key struct {
		aim    int
		labels int
	}
	groups := map[key][]int{}
	shares := map[key][]float64{}
	for q, f := range filters {
		n, err := local.MatchCount(f)
		if err != nil {
			return nil, err
		}
		share := float64(n) / float64(ix.N())
		aim := 0
		for i, a := range datasets.FilterSelectivities {
			if math.Abs(math.Log(share/a)) < math.Abs(math.Log(share/datasets.FilterSelectivities[aim])) {
				aim = i
			}
		}
		kk := key{aim, len(f)}
		groups[kk] = append(groups[kk], q)
		shares[kk] = append(shares[kk], share)
	}
	keys := make([]key, 0, len(groups))
	for kk := range groups {
		keys = append(keys, kk)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.aim != b.aim {
			return a.aim - b.aim
		}
		return a.labels - b.labels
	})
	var out []bucketRow
	for _, kk := range keys {
		idx := groups[kk]
		queries := make([]byte, 0, len(idx)*len(qm.Row(0)))
		sub := make([][]int32, len(idx))
		var subGT *datasets.GroundTruth
		if gt != nil {
			subGT = &datasets.GroundTruth{NQ: len(idx), K: gt.K}
		}
		for j, q := range idx {
			queries = append(queries, qm.Row(q)...)
			sub[j] = filters[q]
			if gt != nil {
				ids, dists := gt.Row(q)
				subGT.IDs = append(subGT.IDs, ids...)
				subGT.Dists = append(subGT.Dists, dists...)
			}
		}
		res, err := searchAll(ix, queries, sub, k, p, threads)
		if err != nil {
			return nil, err
		}
		r, err := summarize(res, subGT, p, threads, len(idx), "")
		if err != nil {
			return nil, err
		}
		slices.Sort(shares[kk])
		out = append(out, bucketRow{Aim: datasets.FilterSelectivities[kk.aim], Labels: kk.labels, Queries: len(idx),
			MedianShare: shares[kk][len(idx)/2], RecallK: r.RecallK, QPS: r.QPS, Postings: r.Postings, Pages: r.Pages,
			MeanUS: r.MeanUS, HomesPlan: float64(res.Stats.HomesPlan) / float64(len(idx)), ListsPlan: float64(res.Stats.ListsPlan) / float64(len(idx))})
	}
	return out, nil
}

func printBuckets(rows []bucketRow, k int) {
	fmt.Printf("%10s %6s %7s %10s %9s %7s %8s %7s %9s %6s %6s\n", "aim", "labels", "queries", "median", fmt.Sprintf("recall@%d", k), "QPS", "postings", "pages", "mean_us", "lists", "homes")
	for _, b := range rows {
		fmt.Printf("%9g%% %6d %7d %9.4f%% %9.4f %7.0f %8.1f %7.1f %9.0f %5.0f%% %5.0f%%\n", 100*b.Aim, b.Labels, b.Queries, 100*b.MedianShare,
			b.RecallK, b.QPS, b.Postings, b.Pages, b.MeanUS, 100*b.ListsPlan, 100*b.HomesPlan)
	}
}
