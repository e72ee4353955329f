package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

func TestBuildWithLabels(t *testing.T) {
	base := genBase(t, 2000, 8)
	dir := t.TempDir()
	rows := make([][]int32, 2000)
	for i := range rows {
		rows[i] = []int32{int32(i % 5)}
	}
	l, _ := datasets.NewLabels(rows, 5)
	labels := filepath.Join(dir, "labels.txt")
	if err := datasets.WriteLabels(labels, l); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "idx")
	if err := run("--base", base, "--out", out, "--quiet", "--labels", labels); err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(out, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Labels() != 5 {
		t.Errorf("index has %d labels, want 5", ix.Labels())
	}
	ix.Close()
	if r, err := spann.Check(out); err != nil || !r.OK() {
		t.Errorf("check: %v %v", r, err)
	}
	// A labels file of the wrong length fails before the build starts.
	os.WriteFile(labels, []byte(strings.Repeat("1\n", 1999)), 0o644)
	out2 := filepath.Join(dir, "idx2")
	err = run("--base", base, "--out", out2, "--quiet", "--labels", labels)
	if err == nil || !strings.Contains(err.Error(), "labels.txt: labels for 1999 vectors, the base") || !strings.Contains(err.Error(), "has 2000") {
		t.Errorf("short labels: %v", err)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("a build with bad labels left its output")
	}
	// --crop uses the first rows of a longer labels file.
	os.WriteFile(labels, []byte(strings.Repeat("1 2\n", 2000)), 0o644)
	if err := run("--base", base, "--out", out2, "--quiet", "--labels", labels, "--crop", "1500"); err != nil {
		t.Fatal(err)
	}
	ix, err = spann.Open(out2, spann.Options{})
	if err != nil || ix.Labels() != 3 || ix.N() != 1500 {
		t.Fatalf("cropped: %v", err)
	}
	ix.Close()
}
