// Command spann-plot draws sweep CSV files (spann-search --sweep-out, or
// other systems' figures) as labelled recall/QPS curves on one figure.
//
// It is a program of its own so that spann-search stays small: the plotting
// library parses a dozen embedded fonts when it is loaded, and every page
// it touches would count in the search process's resident set.
package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gospann/spann/internal/cmdutil"
	"github.com/gospann/spann/internal/plot"
)

func main() { cmdutil.Main(newApp()) }

func newApp() *cli.App {
	return &cli.App{
		Name:      "spann-plot",
		Usage:     "draw several sweep CSV files as labelled recall/QPS curves on one figure",
		UsageText: "spann-plot --out F.png [--title T] [--k 10] [NAME=]SWEEP.csv ...",
		ArgsUsage: "[NAME=]SWEEP.csv ...",
		Description: "Each file is one curve, named NAME (or the file name without .csv). A file needs a header row " +
			"with a recall column (\"recall\" or \"recall@K\") and a \"qps\" column, as --sweep-out writes; " +
			"other systems' figures (SPTAG, faiss) can be given in the same two columns. Points are labelled " +
			"with a \"label\" column if there is one, else with the first of nprobe, eps, max_postings, " +
			"in_flight, first_round, kth_slack whose value changes along the file.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "image to write (.png, .svg or .pdf)", Required: true},
			&cli.StringFlag{Name: "title", Usage: "figure title", Value: "recall against queries per second"},
			&cli.IntFlag{Name: "k", Value: 10, Usage: "k of recall@k, for the axis label"},
		},
		Action: runPlot,
	}
}

func runPlot(c *cli.Context) error {
	if c.NArg() == 0 {
		return fmt.Errorf("give at least one sweep CSV file")
	}
	var series []plot.Series
	for _, arg := range c.Args().Slice() {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			path = arg
			name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
		pts, err := readSweepCSV(path)
		if err != nil {
			return err
		}
		series = append(series, plot.Series{Name: name, Points: pts})
	}
	return plot.RecallQPS(c.String("out"), c.String("title"), c.Int("k"), series)
}

// labelColumns are the swept parameters a point can be labelled with, in
// order of preference.
var labelColumns = []string{"label", "nprobe", "eps", "max_postings", "in_flight", "first_round", "kth_slack"}

// readSweepCSV reads one curve: recall and qps columns, and a label.
func readSweepCSV(path string) ([]plot.Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("%s: want a header row and at least one data row", path)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		h = strings.ToLower(strings.TrimSpace(h))
		if strings.HasPrefix(h, "recall") && col["recall"] == 0 {
			col["recall"] = i + 1
		}
		col[h] = i + 1
	}
	if col["recall"] == 0 || col["qps"] == 0 {
		return nil, fmt.Errorf("%s: header %q has no recall or no qps column", path, strings.Join(rows[0], ","))
	}
	label := 0
	for _, name := range labelColumns {
		if i := col[name]; i > 0 && (name == "label" || varies(rows[1:], i-1)) {
			label = i
			break
		}
	}
	var pts []plot.Point
	for n, r := range rows[1:] {
		num := func(i int) (float64, error) {
			v, err := strconv.ParseFloat(strings.TrimSpace(r[i-1]), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: row %d: column %q: %q is not a number", path, n+2, rows[0][i-1], r[i-1])
			}
			return v, nil
		}
		rec, err := num(col["recall"])
		if err != nil {
			return nil, err
		}
		qps, err := num(col["qps"])
		if err != nil {
			return nil, err
		}
		pt := plot.Point{Recall: rec, QPS: qps}
		if label > 0 {
			pt.Label = strings.TrimSpace(r[label-1])
		}
		pts = append(pts, pt)
	}
	return pts, nil
}

func varies(rows [][]string, i int) bool {
	for _, r := range rows[1:] {
		if r[i] != rows[0][i] {
			return true
		}
	}
	return false
}
