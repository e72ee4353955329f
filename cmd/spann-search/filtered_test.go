package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
)

// groundtruth with labels keeps to each query's matching vectors; bad
// label input is a one-line error naming the file.
func TestGroundtruthFiltered(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 2000, 24, 16)
	rows := make([][]int32, 2000)
	for i := range rows {
		rows[i] = []int32{int32(i % 3), int32(3 + i%7)} // labels 0..2 and 3..9
	}
	bl, _ := datasets.NewLabels(rows, 10)
	baseLabels := filepath.Join(dir, "base-labels.spmat")
	if err := datasets.WriteLabels(baseLabels, bl); err != nil {
		t.Fatal(err)
	}
	filters := make([][]int32, 24)
	for i := range filters {
		filters[i] = []int32{int32(i % 3)}
		if i%2 == 1 {
			filters[i] = append(filters[i], int32(3+i%7))
		}
	}
	fl, _ := datasets.NewLabels(filters, 10)
	queryLabels := filepath.Join(dir, "query-labels.txt")
	if err := datasets.WriteLabels(queryLabels, fl); err != nil {
		t.Fatal(err)
	}
	gtPath := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "10", "--out", gtPath, "--json",
		"--base-labels", baseLabels, "--query-labels", queryLabels); err != nil {
		t.Fatal(err)
	}
	gt, err := datasets.ReadGroundTruth(gtPath)
	if err != nil {
		t.Fatal(err)
	}
	// Every neighbour carries its query's labels, and the distances are
	// those of an unfiltered ground truth restricted to the matches: the
	// first match of the unfiltered top 200 is the filtered first.
	full := filepath.Join(dir, "full.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "2000", "--out", full, "--json"); err != nil {
		t.Fatal(err)
	}
	all, _ := datasets.ReadGroundTruth(full)
	for qi := 0; qi < gt.NQ; qi++ {
		ids, _ := gt.Row(qi)
		var want []int32
		fullIDs, _ := all.Row(qi)
		for _, id := range fullIDs {
			if carries(bl.Row(int(id)), fl.Row(qi)) {
				want = append(want, id)
			}
		}
		for r := 0; r < 10; r++ {
			if ids[r] != want[r] {
				t.Fatalf("query %d (filter %v) rank %d: %d, want %d", qi, fl.Row(qi), r, ids[r], want[r])
			}
		}
	}
	empty := filepath.Join(dir, "empty.txt")
	os.WriteFile(empty, []byte(strings.Repeat("1\n", 5)+"\n"+strings.Repeat("2\n", 30)), 0o644)
	far := filepath.Join(dir, "far.txt")
	os.WriteFile(far, []byte(strings.Repeat("1 12\n", 30)), 0o644)
	short := filepath.Join(dir, "short.txt")
	os.WriteFile(short, []byte("1\n2\n"), 0o644)
	out := filepath.Join(dir, "x.bin")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--base-labels", baseLabels}, []string{"needs both --base-labels and --query-labels"}},
		{[]string{"--base-labels", baseLabels, "--query-labels", empty}, []string{"empty.txt", "query 5", "names no label"}},
		{[]string{"--base-labels", baseLabels, "--query-labels", far}, []string{"far.txt", "query 0", "label 12", "0..9"}},
		{[]string{"--base-labels", baseLabels, "--query-labels", short}, []string{"short.txt", "2 filters for 24 queries"}},
		{[]string{"--base-labels", queryLabels, "--query-labels", queryLabels}, []string{"query-labels.txt", "labels for 24 vectors, the base has 2000"}},
	} {
		err := run(append([]string{"groundtruth", "--base", base, "--queries", q, "--k", "10", "--out", out, "--json"}, c.args...)...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q lacks %q", c.args, err, w)
			}
		}
	}
}

func carries(labels, filter []int32) bool {
	for _, f := range filter {
		found := false
		for _, x := range labels {
			found = found || x == f
		}
		if !found {
			return false
		}
	}
	return true
}
