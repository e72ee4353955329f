package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

// --labels attaches labels, which later updates and checkpoints keep; a
// file of the wrong length is a one-line error.
func TestLabelsCommand(t *testing.T) {
	dir, index := buildIndex(t)
	labels := filepath.Join(dir, "labels.txt")
	os.WriteFile(labels, []byte(strings.Repeat("0 3\n", 2000)), 0o644)
	if err := update("--index", index, "--labels", labels, "--json"); err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(index, spann.Options{})
	if err != nil || ix.Labels() != 4 {
		t.Fatalf("Open: %v, %d labels", err, ix.Labels())
	}
	ix.Close()
	ids := filepath.Join(dir, "ids.ibin")
	os.WriteFile(ids, []byte{1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0}, 0o644)
	if err := update("--index", index, "--delete", ids, "--checkpoint"); err != nil {
		t.Fatalf("delete from a labelled index: %v", err)
	}
	ix, err = spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ix.MatchCount([]int32{3}); err != nil || n != 1999 {
		t.Errorf("label 3 after deleting one of its 2000 carriers: %d, %v", n, err)
	}
	ix.Close()
	if err := update("--index", index, "--labels", labels, "--checkpoint"); err == nil || !strings.Contains(err.Error(), "--labels goes alone") {
		t.Errorf("--labels with --checkpoint: %v", err)
	}
	// --insert with --insert-labels: the new vectors carry them.
	more := filepath.Join(dir, "more.u8bin")
	if err := datasets.Generate(more, datasets.GenParams{N: 5, Dim: 8, Type: datasets.Uint8, Seed: 9}, 1, nil); err != nil {
		t.Fatal(err)
	}
	moreLabels := filepath.Join(dir, "more-labels.txt")
	os.WriteFile(moreLabels, []byte("2\n2 1\n\n2\n3\n"), 0o644)
	if err := update("--index", index, "--insert", more, "--insert-labels", moreLabels); err != nil {
		t.Fatal(err)
	}
	ix, err = spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ix.MatchCount([]int32{2}); err != nil || n != 3 {
		t.Errorf("label 2 after inserting 3 carriers: %d, %v", n, err)
	}
	ix.Close()
	os.WriteFile(moreLabels, []byte("2\n9\n\n2\n3\n"), 0o644)
	if err := update("--index", index, "--insert", more, "--insert-labels", moreLabels); err == nil || !strings.Contains(err.Error(), "vector 1 has label 9, but the index's labels are 0..3") {
		t.Errorf("an inserted label out of range: %v", err)
	}
	os.WriteFile(moreLabels, []byte("2\n"), 0o644)
	if err := update("--index", index, "--insert", more, "--insert-labels", moreLabels); err == nil || !strings.Contains(err.Error(), "5 vectors, but labels for 1") {
		t.Errorf("too few insert labels: %v", err)
	}
	os.WriteFile(labels, []byte(strings.Repeat("1\n", 10)), 0o644)
	if err := update("--index", index, "--labels", labels); err == nil || !strings.Contains(err.Error(), "has inserts not yet checkpointed") {
		t.Errorf("attach with inserts in the log: %v", err)
	}
	if err := update("--index", index, "--checkpoint"); err != nil {
		t.Fatal(err)
	}
	if err := update("--index", index, "--labels", labels); err == nil || !strings.Contains(err.Error(), "labels for 10 vectors, the index has 2005") {
		t.Errorf("short labels: %v", err)
	}
}
