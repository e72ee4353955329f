package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/eval"
	"github.com/gospann/spann/internal/cmdutil"
)

func recallCommand() *cli.Command {
	return &cli.Command{
		Name:  "recall",
		Usage: "score a result file (.ibin) against ground truth with tie-aware recall",
		Description: "recall@k as big-ann-benchmarks computes it: a returned id counts if it is among the true k " +
			"nearest, or tied with the k-th true distance. Also prints recall@1, and recall@100 when both files " +
			"have 100 columns.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "gt", Required: true, Usage: "ground-truth file"},
			&cli.StringFlag{Name: "results", Required: true, Usage: "result file (.ibin: uint32 n, uint32 k, int32 ids[n*k])"},
			&cli.IntFlag{Name: "k", Value: 10, Usage: "k of recall@k"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object on stdout"},
		},
		Action: func(c *cli.Context) error {
			gt, err := datasets.ReadGroundTruth(c.String("gt"))
			if err != nil {
				return err
			}
			res, err := datasets.ReadResults(c.String("results"))
			if err != nil {
				return err
			}
			rs, err := recalls(gt, res, c.Int("k"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return cmdutil.PrintJSON(os.Stdout, rs)
			}
			for _, k := range []int{1, c.Int("k"), 100} {
				if v, ok := rs[fmt.Sprintf("recall@%d", k)]; ok {
					fmt.Printf("recall@%d: %.4f\n", k, v)
				}
			}
			return nil
		},
	}
}

// recalls returns recall@k, plus recall@1 and recall@100 when the files allow.
func recalls(gt *datasets.GroundTruth, res *datasets.Results, k int) (map[string]float64, error) {
	r, err := eval.RecallAt(gt, res, k)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{fmt.Sprintf("recall@%d", k): r.Mean}
	for _, extra := range []int{1, 100} {
		if extra != k && extra <= gt.K && extra <= res.K {
			r, err := eval.RecallAt(gt, res, extra)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprintf("recall@%d", extra)] = r.Mean
		}
	}
	return out, nil
}
