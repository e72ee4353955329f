package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

// buildIndex builds an index of 2,000 generated 8-dimensional vectors in
// a temporary directory and returns the directory and the index.
func buildIndex(t *testing.T) (dir, index string) {
	t.Helper()
	dir = t.TempDir()
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 2000, Dim: 8, Type: datasets.Uint8, Seed: 2}, 2, nil); err != nil {
		t.Fatal(err)
	}
	index = filepath.Join(dir, "idx")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2, Seed: 1, MemoryBudget: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	return dir, index
}

func update(args ...string) error {
	return newApp().Run(append([]string{"spann-update"}, args...))
}

// Ids from an .ibin file are deleted and stay deleted after a checkpoint;
// bad input is refused with a one-line error.
func TestDeleteCommand(t *testing.T) {
	dir, index := buildIndex(t)
	ids := filepath.Join(dir, "ids.ibin")
	if err := datasets.WriteResults(ids, &datasets.Results{N: 5, K: 1, IDs: []int32{3, 9, 1500, 9, 42}}); err != nil {
		t.Fatal(err)
	}
	if err := update("--index", index, "--delete", ids, "--batch", "2", "--checkpoint"); err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Deleted() != 4 {
		t.Errorf("%d deleted, want 4", ix.Deleted())
	}
	ix.Close()
	// Inserts: the new ids follow, and may be deleted in the same run.
	more := filepath.Join(dir, "more.u8bin")
	if err := datasets.Generate(more, datasets.GenParams{N: 30, Dim: 8, Type: datasets.Uint8, Seed: 9}, 1, nil); err != nil {
		t.Fatal(err)
	}
	newIDs := filepath.Join(dir, "new.ibin")
	datasets.WriteResults(newIDs, &datasets.Results{N: 2, K: 1, IDs: []int32{2000, 2029}})
	if err := update("--index", index, "--insert", more, "--batch", "7", "--delete", newIDs); err != nil {
		t.Fatal(err)
	}
	ix, err = spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.N() != 2030 || ix.Deleted() != 6 {
		t.Errorf("after inserting 30 and deleting 2 of them: n %d, %d deleted", ix.N(), ix.Deleted())
	}
	ix.Close()
	wrong := filepath.Join(dir, "wrong.fbin")
	datasets.Generate(wrong, datasets.GenParams{N: 3, Dim: 8, Type: datasets.Float32, Seed: 9}, 1, nil)
	if err := update("--index", index, "--insert", wrong); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("float32 vectors into a uint8 index: %v", err)
	}
	bad := filepath.Join(dir, "bad.ibin")
	datasets.WriteResults(bad, &datasets.Results{N: 2, K: 1, IDs: []int32{5, 3000}})
	two := filepath.Join(dir, "two.ibin")
	datasets.WriteResults(two, &datasets.Results{N: 1, K: 2, IDs: []int32{5, 6}})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--index", index, "--delete", bad}, "delete 3000: no such id"},
		{[]string{"--index", index, "--delete", two}, "2 columns"},
		{[]string{"--index", index}, "nothing to do"},
		{[]string{"--index", index, "--delete", ids, "--batch", "0"}, "--batch 0"},
		{[]string{"--index", filepath.Join(dir, "none"), "--checkpoint"}, "none"},
		{[]string{"--index", index, "--ids", ids, "--checkpoint"}, "go with --insert"},
		{[]string{"--index", index, "--insert", more, "--upsert"}, "--upsert needs --ids"},
		{[]string{"--index", index, "--insert", more, "--ids", newIDs}, "30 vectors, but 2 ids"},
	} {
		if err := update(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want mention of %q", c.args, err, c.want)
		}
	}
}

// --ids inserts under the ids given; an id already there is refused
// unless --upsert replaces it.
func TestInsertIDsCommand(t *testing.T) {
	dir, index := buildIndex(t)
	more := filepath.Join(dir, "more.u8bin")
	if err := datasets.Generate(more, datasets.GenParams{N: 3, Dim: 8, Type: datasets.Uint8, Seed: 9}, 1, nil); err != nil {
		t.Fatal(err)
	}
	ids := filepath.Join(dir, "ids.ibin")
	datasets.WriteResults(ids, &datasets.Results{N: 3, K: 1, IDs: []int32{90000, 5, 90002}})
	if err := update("--index", index, "--insert", more, "--ids", ids); err == nil || !strings.Contains(err.Error(), "id 5 is already in the index") {
		t.Fatalf("present id without --upsert: %v", err)
	}
	if err := update("--index", index, "--insert", more, "--ids", ids, "--upsert", "--checkpoint"); err != nil {
		t.Fatal(err)
	}
	m, err := datasets.LoadVectors(more, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	ix, err := spann.Open(index, spann.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	for k, want := range []int32{90000, 5, 90002} {
		got, err := ix.Search(m.Row(k), 1, spann.SearchParams{NProbe: 64, Eps: -1})
		if err != nil || got[0].ID != want || got[0].Dist != 0 {
			t.Errorf("row %d: %v %v, want id %d", k, got, err, want)
		}
	}
}
