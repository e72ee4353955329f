package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
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

// The whole filtered pipeline from the command line: generated labels,
// filtered ground truth, an index with labels, and a filtered search with
// its bucket table; bad filters are one-line errors.
func TestFilteredSearchCommand(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 4000, 48, 16)
	vf, _ := datasets.OpenVectors(base, 0)
	labels, err := datasets.GenerateLabels(vf, datasets.LabelParams{Vocab: 1000, Corr: 0.5, Seed: 2}, 2)
	vf.Close()
	if err != nil {
		t.Fatal(err)
	}
	filters, _, err := datasets.GenerateFilters(labels, labels.Bitmaps(), 48, 3)
	if err != nil {
		t.Fatal(err)
	}
	bl, fl := filepath.Join(dir, "base-labels.spmat"), filepath.Join(dir, "query-labels.spmat")
	datasets.WriteLabels(bl, labels)
	datasets.WriteLabels(fl, filters)
	gt := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "10", "--out", gt, "--json", "--base-labels", bl, "--query-labels", fl); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "index")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := run("--index", index, "--queries", q, "--gt", gt, "--query-labels", fl, "--nprobe", "32"); !errors.Is(err, spann.ErrNoLabels) {
		t.Errorf("filters on an index without labels: %v", err)
	}
	if err := spann.AttachLabels(index, labels, spann.LabelOptions{}); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() error {
		return run("--index", index, "--queries", q, "--gt", gt, "--query-labels", fl, "--nprobe", "32", "--json")
	})
	var r row
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.RecallK < 0.9 || len(r.Buckets) < 6 {
		t.Errorf("recall %.3f, %d buckets: %s", r.RecallK, len(r.Buckets), out)
	}
	total := 0
	for _, b := range r.Buckets {
		total += b.Queries
		if b.QPS <= 0 || b.Pages <= 0 {
			t.Errorf("bucket %+v", b)
		}
	}
	if total != 48 {
		t.Errorf("buckets hold %d queries, want 48", total)
	}
	// The same filtered search through spann-serve gives the same ids.
	url := serveIndex(t, index, "")
	local, remote := filepath.Join(dir, "local.ibin"), filepath.Join(dir, "remote.ibin")
	if err := run("--index", index, "--queries", q, "--query-labels", fl, "--nprobe", "32", "--out", local, "--json"); err != nil {
		t.Fatal(err)
	}
	for _, batch := range []string{"1", "5"} {
		if err := run("--server", url, "--queries", q, "--query-labels", fl, "--nprobe", "32",
			"--threads", "3", "--server-batch", batch, "--out", remote, "--json"); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(local)
		b, _ := os.ReadFile(remote)
		if !bytes.Equal(a, b) {
			t.Errorf("--server-batch %s: the server's filtered answers differ from the local ones", batch)
		}
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte(strings.Repeat("3\n", 10)+"\n"+strings.Repeat("3\n", 40)), 0o644)
	if err := run("--index", index, "--queries", q, "--query-labels", bad); err == nil || !strings.Contains(err.Error(), "bad.txt: query 10: the filter names no label") {
		t.Errorf("empty filter: %v", err)
	}
	os.WriteFile(bad, []byte(strings.Repeat("3 5000\n", 48)), 0o644)
	if err := run("--index", index, "--queries", q, "--query-labels", bad); err == nil || !strings.Contains(err.Error(), "label 5000, but the index's labels are 0..999") {
		t.Errorf("label out of range: %v", err)
	}
}

// captureStdout runs fn with os.Stdout redirected and returns what it
// printed.
func captureStdout(t *testing.T, fn func() error) []byte {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	err = fn()
	os.Stdout = saved
	w.Close()
	out := <-got
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Range search from the command line: range ground truth, search scored
// by average precision, the range file written; bad radii are one-line
// errors.
func TestRangeSearchCommand(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 3000, 20, 16)
	index := filepath.Join(dir, "index")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	knn := filepath.Join(dir, "knn.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "10", "--out", knn, "--json"); err != nil {
		t.Fatal(err)
	}
	g, _ := datasets.ReadGroundTruth(knn)
	_, d := g.Row(0)
	radius := fmt.Sprint(d[9])
	gt := filepath.Join(dir, "range.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--radius", radius, "--out", gt, "--json"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "res.bin")
	js := captureStdout(t, func() error {
		return run("--index", index, "--queries", q, "--radius", radius, "--gt", gt, "--nprobe", "16", "--range-slack", "0.5", "--out", out, "--json")
	})
	var r rangeRow
	if err := json.Unmarshal(js, &r); err != nil || r.AP < 0.9 || r.Results <= 0 {
		t.Fatalf("range search: %+v %v: %s", r, err, js)
	}
	res, err := datasets.ReadRangeResults(out)
	if err != nil || res.NQ() != 20 || float64(len(res.IDs)) != r.Results*20 {
		t.Fatalf("range results file: %v", err)
	}
	// Through spann-serve: the same answers.
	url := serveIndex(t, index, "")
	remote := filepath.Join(dir, "remote.bin")
	if err := run("--server", url, "--queries", q, "--radius", radius, "--nprobe", "16", "--range-slack", "0.5",
		"--threads", "2", "--server-batch", "3", "--out", remote, "--json"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(remote)
	if !bytes.Equal(a, b) {
		t.Error("range answers through the server differ from the local ones")
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--index", index, "--queries", q, "--radius", "-2"}, "--radius -2: must be ≥ 0"},
		{[]string{"groundtruth", "--base", base, "--queries", q, "--radius", "-1", "--out", gt}, "--radius -1: must be ≥ 0"},
		{[]string{"--index", index, "--queries", q, "--radius", radius, "--gt", knn}, "range ground truth"},
	} {
		if err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
