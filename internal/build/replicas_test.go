package build

import (
	"slices"
	"testing"

	"github.com/gospann/spann/memindex"
)

// Heads on a line: h0 at 0, h1 at 1, h2 at 3, h3 at -2 (1-D, squared L2).
var linePos = []float32{0, 1, 3, -2}

func lineDist(a, b int32) float32 {
	d := linePos[a] - linePos[b]
	return d * d
}

func candsFor(x float32) []memindex.Neighbor {
	var c []memindex.Neighbor
	for i, p := range linePos {
		c = append(c, memindex.Neighbor{ID: int32(i), Dist: (x - p) * (x - p)})
	}
	slices.SortFunc(c, func(a, b memindex.Neighbor) int {
		if a.Dist < b.Dist {
			return -1
		}
		if a.Dist > b.Dist {
			return 1
		}
		return int(a.ID - b.ID)
	})
	return c
}

func TestRNGRuleHandMade(t *testing.T) {
	// x = 0.4: candidates h0 (0.16), h1 (0.36), h3 (5.76), h2 (6.76).
	// h1: d(h1,h0)=1 ≥ 0.36, kept (x sits between them).
	// h3: d(h3,h0)=4 < 5.76, skipped (h3 lies behind h0).
	// h2: d(h2,h1)=4 < 6.76, skipped (behind h1).
	got := ChooseReplicas(candsFor(0.4), 8, 1, -1, lineDist, nil)
	if !slices.Equal(got, []int32{0, 1}) {
		t.Fatalf("got %v, want [0 1]", got)
	}
	// A larger factor makes heads count as "far" from each other: with
	// factor 2, h3 is kept (2·4 = 8 ≥ 5.76), h2 too (2·d(h2,h1)=8 ≥ 6.76 and
	// 2·d(h2,h0)=18, 2·d(h2,h3)=50).
	got = ChooseReplicas(candsFor(0.4), 8, 2, -1, lineDist, nil)
	if !slices.Equal(got, []int32{0, 1, 3, 2}) {
		t.Fatalf("factor 2: got %v", got)
	}
	// The replica cap holds.
	got = ChooseReplicas(candsFor(0.4), 3, 2, -1, lineDist, nil)
	if !slices.Equal(got, []int32{0, 1, 3}) {
		t.Fatalf("cap 3: got %v", got)
	}
	// eps = 1: only heads within 2·0.16 = 0.32 of x qualify, so h1 (0.36) is out.
	got = ChooseReplicas(candsFor(0.4), 8, 2, 1, lineDist, nil)
	if !slices.Equal(got, []int32{0}) {
		t.Fatalf("eps 1: got %v", got)
	}
	// Output is appended after existing entries, which are not consulted.
	got = ChooseReplicas(candsFor(0.4), 8, 1, -1, lineDist, []int32{7})
	if !slices.Equal(got, []int32{7, 0, 1}) {
		t.Fatalf("append: got %v", got)
	}
	if got := ChooseReplicas(nil, 8, 1, -1, lineDist, nil); len(got) != 0 {
		t.Fatalf("no candidates: %v", got)
	}
}
