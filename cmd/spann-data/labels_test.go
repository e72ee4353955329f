package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
)

func TestGenerateLabels(t *testing.T) {
	dir := t.TempDir()
	if err := run("generate", "--out", dir, "--n", "5000", "--nq", "24", "--dim", "8", "--labels", "--label-vocab", "500", "--seed", "2"); err != nil {
		t.Fatal(err)
	}
	bl, err := datasets.ReadLabels(filepath.Join(dir, "base-labels.spmat"))
	if err != nil || bl.Rows() != 5000 || bl.Vocab != 500 {
		t.Fatalf("base labels: %v", err)
	}
	fl, err := datasets.ReadLabels(filepath.Join(dir, "query-labels.spmat"))
	if err != nil || fl.Rows() != 24 {
		t.Fatalf("query filters: %v", err)
	}
	for i := 0; i < fl.Rows(); i++ {
		if n := len(fl.Row(i)); n < 1 || n > 2 {
			t.Errorf("filter %d has %d labels", i, n)
		}
	}
	// The labels command on the same base gives the same bytes, as text too.
	dir2 := t.TempDir()
	if err := run("labels", "--base", filepath.Join(dir, "base.u8bin"), "--out", dir2, "--nq", "24", "--label-vocab", "500", "--seed", "2"); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "query-labels.spmat"))
	b, _ := os.ReadFile(filepath.Join(dir2, "query-labels.spmat"))
	if !bytes.Equal(a, b) || len(a) == 0 {
		t.Error("labels differ between generate --labels and labels")
	}
	if err := run("labels", "--base", filepath.Join(dir, "base.u8bin"), "--out", dir2, "--nq", "0", "--label-vocab", "500", "--seed", "2", "--label-format", "txt"); err != nil {
		t.Fatal(err)
	}
	tl, err := datasets.ReadLabels(filepath.Join(dir2, "base-labels.txt"))
	if err != nil || tl.Rows() != 5000 {
		t.Fatalf("text labels: %v", err)
	}
	for i := 0; i < 5000; i++ {
		if !equal(tl.Row(i), bl.Row(i)) {
			t.Fatalf("row %d: text %v, spmat %v", i, tl.Row(i), bl.Row(i))
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--label-format", "csv"}, `--label-format "csv"`},
		{[]string{"--label-corr", "1.5"}, "correlation 1.5"},
		{[]string{"--label-min", "9", "--label-max", "3"}, "9 to 3 labels per vector"},
		{[]string{"--label-vocab", "0"}, "must be positive"},
	} {
		err := run(append([]string{"labels", "--base", filepath.Join(dir, "base.u8bin"), "--out", dir2}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
