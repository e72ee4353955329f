package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/build"
)

// TestMain builds spann-plot for the plot tests: spann-search runs it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "spann-plot-bin")
	if err != nil {
		panic(err)
	}
	bin := filepath.Join(dir, "spann-plot")
	if out, err := exec.Command("go", "build", "-o", bin, "../spann-plot").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building spann-plot: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Setenv("SPANN_PLOT", bin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func run(args ...string) error {
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

func TestSearchCommand(t *testing.T) {
	dir := t.TempDir()
	base, q := gen(t, dir, datasets.Uint8, 3000, 40, 16)
	gt := filepath.Join(dir, "gt.bin")
	if err := run("groundtruth", "--base", base, "--queries", q, "--k", "20", "--out", gt, "--json"); err != nil {
		t.Fatal(err)
	}
	index := filepath.Join(dir, "index")
	if _, err := build.Run(context.Background(), build.Options{Base: base, Out: index, Threads: 2, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "res.ibin")
	csvOut := filepath.Join(dir, "sweep.csv")
	png := filepath.Join(dir, "sweep.png")
	if err := run("--index", index, "--queries", q, "--gt", gt, "--k", "10", "--out", res, "--json", "--io", "pread"); err != nil {
		t.Fatal(err)
	}
	r, err := datasets.ReadResults(res)
	if err != nil || r.N != 40 || r.K != 10 {
		t.Fatalf("results: %v", err)
	}
	g, _ := datasets.ReadGroundTruth(gt)
	rs, err := recalls(g, r, 10)
	if err != nil || rs["recall@10"] < 0.8 {
		t.Fatalf("recall %v %v", rs, err)
	}
	if err := run("--index", index, "--queries", q, "--gt", gt, "--sweep", "nprobe=2,8", "--sweep-out", csvOut, "--plot", png, "--json"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(csvOut); err != nil || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("sweep csv: %v %q", err, b)
	}
	if _, err := os.Stat(png); err != nil {
		t.Fatal(err)
	}

	if err := run("check", "--index", index, "--json"); err != nil {
		t.Fatalf("check of a sound index: %v", err)
	}

	// Damaged copies of the index.
	damaged := func(name string, remove bool) string {
		d := filepath.Join(t.TempDir(), "ix")
		os.Mkdir(d, 0o755)
		ents, _ := os.ReadDir(index)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(index, e.Name()))
			if e.Name() == name {
				if remove {
					continue
				}
				b[len(b)/2] ^= 0x10
			}
			os.WriteFile(filepath.Join(d, e.Name()), b, 0o644)
		}
		return d
	}
	sub := filepath.Join(dir, "d32")
	os.Mkdir(sub, 0o755)
	_, q32 := gen(t, sub, datasets.Uint8, 100, 5, 32)
	fsub := filepath.Join(dir, "f")
	os.Mkdir(fsub, 0o755)
	_, qf := gen(t, fsub, datasets.Float32, 100, 5, 16)
	// Ground truth naming ids past the index's 3,000 vectors.
	foreignGT := filepath.Join(dir, "foreign.bin")
	{
		g, _ := datasets.ReadGroundTruth(gt)
		g.IDs[5*g.K+2] = 3000
		if err := datasets.WriteGroundTruth(foreignGT, g); err != nil {
			t.Fatal(err)
		}
	}
	badGT := filepath.Join(dir, "bad.bin")
	os.WriteFile(badGT, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0o644)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--index", filepath.Join(dir, "none"), "--queries", q}, []string{"none", "not an index directory"}},
		{[]string{"--index", damaged("heads.bin", true), "--queries", q}, []string{"heads.bin", "missing"}},
		{[]string{"--index", damaged("postings.bin", true), "--queries", q}, []string{"postings.bin"}},
		{[]string{"--index", damaged("graph.bin", false), "--queries", q}, []string{"graph.bin"}},
		{[]string{"--index", damaged("manifest.json", false), "--queries", q}, []string{"manifest.json"}},
		{[]string{"--index", index, "--queries", q32}, []string{"dimension 32", "16"}},
		{[]string{"--index", index, "--queries", qf}, []string{"float32", "uint8"}},
		{[]string{"--index", index, "--queries", q, "--k", "0"}, []string{"--k 0"}},
		{[]string{"--index", index, "--queries", q, "--k", "3001"}, []string{"--k 3001", "3000"}},
		{[]string{"--index", index, "--queries", q, "--gt", badGT}, []string{"bad.bin"}},
		{[]string{"--index", index, "--queries", q, "--gt", foreignGT}, []string{"foreign.bin", "query 5, rank 2", "id 3000"}},
		{[]string{"--index", index, "--queries", q, "--nprobe", "0"}, []string{"--nprobe"}},
		{[]string{"--index", index, "--queries", q, "--io", "floppy"}, []string{"floppy"}},
		{[]string{"--index", index, "--queries", q, "--nq", "-1"}, []string{"--nq -1"}},
		{[]string{"--index", index, "--queries", q, "--head-list", "-1"}, []string{"--head-list -1"}},
		{[]string{"--index", index, "--queries", q, "--max-postings", "-1"}, []string{"--max-postings -1"}},
		{[]string{"--index", index, "--queries", q, "--in-flight", "-2"}, []string{"--in-flight -2"}},
		{[]string{"--index", index, "--queries", q, "--first-round", "-3"}, []string{"--first-round -3"}},
		{[]string{"--index", index, "--queries", q, "--eps", "Inf", "--json"}, []string{"--eps +Inf", "finite"}},
		{[]string{"--index", index, "--queries", q, "--sweep", "colour=1,2"}, []string{"colour"}},
		{[]string{"--index", index}, []string{"--queries"}},
		{[]string{"check", "--index", damaged("postings.bin", false)}, []string{"problem", "postings.bin"}},
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
}

// The plot subcommand runs spann-plot (built by TestMain) and passes its
// errors on.
func TestPlotCommand(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.csv")
	os.WriteFile(ours, []byte("nprobe,eps,threads,recall,qps\n8,-1,1,0.85,4000\n16,-1,1,0.91,3000\n"), 0o644)
	out := filepath.Join(dir, "cmp.png")
	if err := run("plot", "--out", out, "spann="+ours); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("plot wrote no PNG: %v", err)
	}
	if err := run("plot", "--out", out); err == nil || !strings.Contains(err.Error(), "spann-plot") {
		t.Errorf("no files: %v, want spann-plot's failure", err)
	}
	t.Setenv("SPANN_PLOT", "")
	t.Setenv("PATH", dir)
	if _, err := plotProgram(); err == nil || !strings.Contains(err.Error(), "spann-plot not found") {
		t.Errorf("plotProgram with no spann-plot anywhere: %v", err)
	}
}
