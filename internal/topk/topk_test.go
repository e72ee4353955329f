package topk

import (
	"math/rand/v2"
	"sort"
	"testing"
)

func TestHeapMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := rng.IntN(300)
		k := 1 + rng.IntN(40)
		ids := make([]int32, n)
		dists := make([]float32, n)
		h := New(k)
		for i := range ids {
			ids[i] = int32(rng.IntN(1000))
			dists[i] = float32(rng.IntN(20)) // many ties
			h.Push(ids[i], dists[i])
		}
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.Slice(idx, func(a, b int) bool {
			if dists[idx[a]] != dists[idx[b]] {
				return dists[idx[a]] < dists[idx[b]]
			}
			return ids[idx[a]] < ids[idx[b]]
		})
		want := min(n, k)
		gi := make([]int32, k)
		gd := make([]float32, k)
		if got := h.Sorted(gi, gd); got != want {
			t.Fatalf("Sorted returned %d pairs, want %d", got, want)
		}
		for r := 0; r < want; r++ {
			j := idx[r]
			if gi[r] != ids[j] || gd[r] != dists[j] {
				t.Fatalf("trial %d rank %d: got (%d,%v) want (%d,%v)", trial, r, gi[r], gd[r], ids[j], dists[j])
			}
		}
		for r := want; r < k; r++ {
			if gi[r] != -1 {
				t.Fatalf("padding id %d", gi[r])
			}
		}
		if h.Len() != 0 {
			t.Fatal("Sorted left pairs in the heap")
		}
	}
}

func TestHeapNoAlloc(t *testing.T) {
	h := New(10)
	ids := make([]int32, 10)
	dists := make([]float32, 10)
	allocs := testing.AllocsPerRun(100, func() {
		h.Reset(10)
		for i := 0; i < 100; i++ {
			h.Push(int32(i), float32(100-i))
		}
		h.Sorted(ids, dists)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
	if ids[0] != 99 || dists[0] != 1 {
		t.Fatalf("got (%d,%v)", ids[0], dists[0])
	}
}
