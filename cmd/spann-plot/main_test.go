package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) error {
	return newApp().Run(append([]string{"spann-plot"}, args...))
}

func TestPlotCommand(t *testing.T) {
	dir := t.TempDir()
	ours := filepath.Join(dir, "ours.csv")
	os.WriteFile(ours, []byte("nprobe,eps,threads,recall,qps\n8,-1,1,0.85,4000\n16,-1,1,0.91,3000\n32,-1,1,0.96,2000\n"), 0o644)
	ref := filepath.Join(dir, "sptag.csv")
	os.WriteFile(ref, []byte("label,recall,qps\n16,0.903,1422\n32,0.960,1132\n"), 0o644)
	out := filepath.Join(dir, "cmp.png")
	if err := run("--out", out, "spann="+ours, ref); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || len(b) < 1000 || string(b[1:4]) != "PNG" {
		t.Fatalf("plot wrote no PNG: %v", err)
	}
	pts, err := readSweepCSV(ours)
	if err != nil || len(pts) != 3 || pts[1].Label != "16" || pts[2].QPS != 2000 || pts[0].Recall != 0.85 {
		t.Fatalf("readSweepCSV: %+v, %v", pts, err)
	}
	bad := filepath.Join(dir, "bad.csv")
	for _, c := range []struct{ body, want string }{
		{"nprobe,qps\n8,100\n", "no recall or no qps column"},
		{"recall,qps\n0.9,fast\n", `row 2: column "qps": "fast" is not a number`},
		{"recall,qps\n", "at least one data row"},
	} {
		os.WriteFile(bad, []byte(c.body), 0o644)
		if err := run("--out", out, bad); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.csv") {
			t.Errorf("%q: error %v, want %q naming the file", c.body, err, c.want)
		}
	}
	if err := run("--out", out); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("no files: %v", err)
	}
}
