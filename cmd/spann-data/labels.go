package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/cmdutil"
)

// labelFlags are the label generator's knobs, shared by generate --labels
// and labels.
func labelFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "label-vocab", Value: 50000, Usage: "labels in the vocabulary (0..N-1)"},
		&cli.Float64Flag{Name: "label-zipf", Value: 1, Usage: "Zipf exponent s of label frequencies: the label of rank r is drawn ∝ 1/r^s"},
		&cli.IntFlag{Name: "label-min", Value: 2, Usage: "fewest labels drawn per vector"},
		&cli.IntFlag{Name: "label-max", Value: 20, Usage: "most labels drawn per vector (repeats merge)"},
		&cli.Float64Flag{Name: "label-corr", Value: 0.5, Usage: "0..1: share of a vector's labels drawn from its neighbourhood's own ranking (0 = labels independent of the vectors)"},
		&cli.IntFlag{Name: "label-groups", Value: 64, Usage: "neighbourhoods for --label-corr: vectors nearest each of N sampled base vectors"},
		&cli.StringFlag{Name: "label-format", Value: "spmat", Usage: "spmat (big-ann-benchmarks' sparse matrix) or txt (one line of labels per vector)"},
	}
}

// writeLabels generates labels for the base file and nq query filters,
// writes DIR/base-labels.EXT and DIR/query-labels.EXT, and prints what the
// filters' selectivities came to.
func writeLabels(c *cli.Context, basePath, dir string, nq, threads int) error {
	ext := c.String("label-format")
	if ext != "spmat" && ext != "txt" {
		return fmt.Errorf("--label-format %q: want spmat or txt", ext)
	}
	base, err := datasets.OpenVectors(basePath, 0)
	if err != nil {
		return err
	}
	defer base.Close()
	p := datasets.LabelParams{Vocab: c.Int("label-vocab"), Zipf: c.Float64("label-zipf"), MinPerRow: c.Int("label-min"),
		MaxPerRow: c.Int("label-max"), Corr: c.Float64("label-corr"), Groups: c.Int("label-groups"), Seed: c.Uint64("seed")}
	if p.Vocab <= 0 || p.Zipf <= 0 || p.Groups <= 0 || p.MinPerRow <= 0 {
		return fmt.Errorf("--label-vocab, --label-zipf, --label-min and --label-groups must be positive")
	}
	labels, err := datasets.GenerateLabels(base, p, threads)
	if err != nil {
		return err
	}
	basePath = filepath.Join(dir, "base-labels."+ext)
	if err := datasets.WriteLabels(basePath, labels); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d vectors, %.1f labels each on average, vocabulary %d\n",
		basePath, labels.Rows(), float64(len(labels.Indices))/float64(max(1, labels.Rows())), labels.Vocab)
	if nq == 0 {
		return nil
	}
	filters, matches, err := datasets.GenerateFilters(labels, labels.Bitmaps(), nq, c.Uint64("seed")+1)
	if err != nil {
		return err
	}
	qPath := filepath.Join(dir, "query-labels."+ext)
	if err := datasets.WriteLabels(qPath, filters); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d filters; median share of the base each matches:\n", qPath, nq)
	for b, aim := range datasets.FilterSelectivities {
		for arity := 1; arity <= 2; arity++ {
			var got []int
			for i := 2*b + arity - 1; i < nq; i += 2 * len(datasets.FilterSelectivities) {
				got = append(got, matches[i])
			}
			if len(got) == 0 {
				continue
			}
			slices.Sort(got)
			fmt.Printf("  aim %-7g %d label(s): %d filters, median %.4g%% (%d vectors)\n",
				aim, arity, len(got), 100*float64(got[len(got)/2])/float64(labels.Rows()), got[len(got)/2])
		}
	}
	return nil
}

func labelsCommand() *cli.Command {
	return &cli.Command{
		Name:  "labels",
		Usage: "write seeded YFCC-like labels for a base file, and query filters spanning selectivities 50% to 0.001%",
		Description: "Each base vector gets a few to a few tens of labels from a Zipf-distributed vocabulary; with " +
			"--label-corr above 0 part of them come from the vector's neighbourhood's own ranking, so a label's " +
			"carriers cluster in space. Query filters have one or two labels (a result must carry all), aiming in turn " +
			"at 50%, 10%, 1%, 0.1%, 0.01% and 0.001% of the base. Writes DIR/base-labels.EXT and DIR/query-labels.EXT " +
			"(EXT from --label-format). The same flags always give the same bytes.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "base", Required: true, Usage: "base vector file (.fbin/.u8bin/.i8bin)"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "directory to write the label files into (created)"},
			&cli.IntFlag{Name: "nq", Value: 10000, Usage: "query filters to write (0 = none)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
			&cli.IntFlag{Name: "threads", Usage: "worker threads (0 = all cores)"},
		}, labelFlags()...),
		Action: func(c *cli.Context) error {
			threads, err := cmdutil.Threads(c.Int("threads"))
			if err != nil {
				return err
			}
			if c.Int("nq") < 0 {
				return fmt.Errorf("--nq %d: must not be negative", c.Int("nq"))
			}
			if err := os.MkdirAll(c.String("out"), 0o755); err != nil {
				return err
			}
			return writeLabels(c, c.String("base"), c.String("out"), c.Int("nq"), threads)
		},
	}
}
