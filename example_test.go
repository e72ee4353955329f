package spann_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	spann "github.com/gospann/spann"
	"github.com/gospann/spann/datasets"
)

// Build a small index over generated data, open it and search it.
func Example() {
	dir, _ := os.MkdirTemp("", "spann-example")
	defer os.RemoveAll(dir)
	base := filepath.Join(dir, "base.u8bin")
	if err := datasets.Generate(base, datasets.GenParams{N: 5000, Dim: 32, Type: datasets.Uint8, Seed: 1}, 2, nil); err != nil {
		panic(err)
	}
	index := filepath.Join(dir, "index")
	if _, err := spann.Build(context.Background(), spann.BuildOptions{Base: base, Out: index, Threads: 2}); err != nil {
		panic(err)
	}
	ix, err := spann.Open(index, spann.Options{})
	if err != nil {
		panic(err)
	}
	defer ix.Close()
	// Query with base row 123: it is its own nearest neighbour. (Build
	// reports progress only when BuildOptions.Progress is set.)
	m, _ := datasets.LoadVectors(base, 0, 0)
	q := datasets.Rows[uint8](m.Row(123))
	res, err := spann.SearchVector(ix, q, 5, spann.DefaultSearchParams())
	if err != nil {
		panic(err)
	}
	fmt.Println(res[0].ID, res[0].Dist)
	// Output: 123 0
}
