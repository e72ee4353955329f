package main

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/progress"
)

func run(args ...string) error {
	progress.Quiet = true
	return newApp().Run(append([]string{"spann-search"}, args...))
}

func gen(t *testing.T, dir string, typ datasets.ElemType, n, nq, dim int) (string, string) {
	t.Helper()
	p := datasets.GenParams{N: n, Dim: dim, Type: typ, Seed: 5, Clusters: 4}
	base := filepath.Join(dir, "base"+typ.Ext())
	if err := datasets.Generate(base, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	p.N, p.Stream = nq, 1
	q := filepath.Join(dir, "query"+typ.Ext())
	if err := datasets.Generate(q, p, 2, nil); err != nil {
		t.Fatal(err)
	}
	return base, q
}

func TestGroundtruthAndRecall(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 3000, 50, 16)
	gt := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "20", "--out", gt, "--threads", "2", "--json"); err != nil {
		t.Fatal(err)
	}
	// Recomputing and comparing against itself agrees.
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "20", "--compare", gt, "--json"); err != nil {
		t.Fatal(err)
	}
	// The ground truth's own ids, as results, have recall 1.
	g, err := datasets.ReadGroundTruth(gt)
	if err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "r.ibin")
	datasets.WriteResults(res, &datasets.Results{N: g.NQ, K: g.K, IDs: g.IDs})
	r, err := datasets.ReadResults(res)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := recalls(g, r, 10)
	if err != nil || rs["recall@10"] != 1 || rs["recall@1"] != 1 {
		t.Fatalf("recall of the truth itself: %v %v", rs, err)
	}
	if _, ok := rs["recall@100"]; ok {
		t.Error("recall@100 reported for 20-column files")
	}
	// A different crop of the base disagrees with the reference.
	err = run("groundtruth", "--base", base, "--queries", q, "--k", "20", "--crop", "1000", "--compare", gt, "--json")
	if err == nil || !strings.Contains(err.Error(), "differ from") {
		t.Fatalf("mismatch not reported: %v", err)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 200, 5, 16)
	sub := filepath.Join(dir, "d32")
	os.Mkdir(sub, 0o755)
	_, q32 := gen(t, sub, datasets.Uint8, 200, 5, 32)
	fsub := filepath.Join(dir, "f")
	os.Mkdir(fsub, 0o755)
	fbase, fq := gen(t, fsub, datasets.Float32, 100, 5, 16)
	// A NaN in row 7 of a float base.
	raw, _ := os.ReadFile(fbase)
	binary.LittleEndian.PutUint32(raw[8+(7*16+3)*4:], math.Float32bits(float32(math.NaN())))
	nanBase := filepath.Join(fsub, "nan.fbin")
	os.WriteFile(nanBase, raw, 0o644)
	trunc := filepath.Join(dir, "trunc.u8bin")
	braw, _ := os.ReadFile(base)
	os.WriteFile(trunc, braw[:len(braw)-5], 0o644)
	gt := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "10", "--out", gt, "--json"); err != nil {
		t.Fatal(err)
	}
	badGT := filepath.Join(dir, "bad.bin")
	os.WriteFile(badGT, []byte{1, 0, 0}, 0o644)
	out := filepath.Join(dir, "o.bin")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"groundtruth", "--base", filepath.Join(dir, "none.u8bin"), "--queries", q, "--out", out}, []string{"none.u8bin", "no such file"}},
		{[]string{"groundtruth", "--base", trunc, "--queries", q, "--out", out}, []string{"trunc.u8bin", "truncated", "n=200", "dim=16"}},
		{[]string{"groundtruth", "--base", base, "--queries", q32, "--out", out}, []string{"dimension 32", "16"}},
		{[]string{"groundtruth", "--base", base, "--queries", q, "--k", "201", "--out", out}, []string{"k=201", "200 base vectors"}},
		{[]string{"groundtruth", "--base", nanBase, "--queries", fq, "--out", out}, []string{"nan.fbin", "row 7", "NaN"}},
		{[]string{"groundtruth", "--base", base, "--queries", fq, "--out", out}, []string{"queries are float32"}},
		{[]string{"groundtruth", "--base", base, "--queries", q, "--metric", "hamming", "--out", out}, []string{"unknown metric"}},
		{[]string{"groundtruth", "--base", base, "--queries", q, "--threads", "-1", "--out", out}, []string{"--threads"}},
		{[]string{"groundtruth", "--base", base, "--queries", q}, []string{"--out"}},
		{[]string{"recall", "--gt", badGT, "--results", out}, []string{"bad.bin", "truncated"}},
		{[]string{"recall", "--gt", gt, "--results", gt, "--k", "10"}, []string{"gt.bin"}},
	} {
		err := run(c.args...)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", c.args, err, w)
			}
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed run left an output file")
	}
}
