package memindex

import (
	"slices"
	"testing"

	"github.com/gospann/spann/internal/vec"
)

// A graph extended by 20 % new nodes, in several steps, searches them as
// well as a graph built over all of them at once (recall against brute
// force within 0.01), every node reachable; the graph extended is left
// as it was.
func TestExtend(t *testing.T) {
	const n, extra, dim = 5000, 1000, 32
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](2, n+extra+200, dim, 40, 0, 255, 60)
	all, queries := data[:(n+extra)*dim], data[(n+extra)*dim:]
	g := mustBuild(t, sp, all[:n*dim], dim, Params{Threads: 2, Seed: 3})
	before := g.Neighbors(17)
	cur := g
	for _, upto := range []int{n + 10, n + 400, n + extra} {
		next, err := cur.Extend(all[:upto*dim], nil, nil, Params{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if next.Len() != upto || next.Reachable() != upto || next.Entry() != g.Entry() {
			t.Fatalf("extended to %d: len %d, reachable %d", upto, next.Len(), next.Reachable())
		}
		cur = next
	}
	if !slices.Equal(g.Neighbors(17), before) || g.Len() != n {
		t.Fatal("Extend changed the graph it extended")
	}
	fresh := mustBuild(t, sp, all, dim, Params{Threads: 2, Seed: 3})
	rExt := recall(t, cur, sp, all, queries, dim, 10, 14)
	rFresh := recall(t, fresh, sp, all, queries, dim, 10, 14)
	t.Logf("recall@10 (L=14): extended %.4f, built at once %.4f", rExt, rFresh)
	if rExt < rFresh-0.01 {
		t.Fatalf("extended graph recall %.4f, built %.4f", rExt, rFresh)
	}
	// The new nodes themselves are found: each searched for finds itself.
	s := cur.NewSearcher()
	for i := n; i < n+extra; i += 7 {
		if got := s.Search(all[i*dim:(i+1)*dim], 1, 40); len(got) == 0 || got[0].Dist != 0 {
			t.Fatalf("new node %d not found searching for itself: %v", i, got)
		}
	}
	if _, err := cur.Extend(all[:(n-1)*dim], nil, nil, Params{}); err == nil {
		t.Fatal("Extend to fewer vectors accepted")
	}
	// Moved nodes: 300 nodes get other vectors (new ones' rows) and are
	// found at their new places.
	moved := slices.Clone(all[:n*dim])
	var ids []int32
	for i := 0; i < 300; i++ {
		node := int32(i * 13)
		copy(moved[int(node)*dim:], all[(n+i)*dim:(n+i+1)*dim])
		ids = append(ids, node)
	}
	mg, err := g.Extend(moved, ids, nil, Params{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	s = mg.NewSearcher()
	found := 0
	for _, node := range ids {
		if got := s.Search(moved[int(node)*dim:int(node+1)*dim], 1, 40); len(got) > 0 && got[0].Dist == 0 {
			found++
		}
	}
	if found < 297 || mg.Reachable() != n {
		t.Fatalf("moved nodes: %d of 300 found at their new places, %d reachable", found, mg.Reachable())
	}
}

// Removed nodes become unreachable, every other node stays reachable and
// is still found, and a later Extend (given them again) keeps them out.
func TestExtendRemove(t *testing.T) {
	const n, dim = 4000, 32
	sp := mustSpace[uint8](t, vec.L2)
	data := clustered[uint8](4, n+100, dim, 40, 0, 255, 60)
	base := data[:n*dim]
	g := mustBuild(t, sp, base, dim, Params{Threads: 2, Seed: 3})
	var removed []int32
	gone := map[int32]bool{}
	for i := int32(1); i < n; i += 9 {
		if i != g.Entry() {
			removed = append(removed, i)
			gone[i] = true
		}
	}
	h, err := g.Extend(base, nil, removed, Params{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Reachable(); got != n-len(removed) {
		t.Fatalf("reachable %d, want %d", got, n-len(removed))
	}
	s := h.NewSearcher()
	for i := int32(0); i < n; i += 5 {
		got := s.Search(base[int(i)*dim:int(i+1)*dim], 5, 40)
		for _, r := range got {
			if gone[r.ID] {
				t.Fatalf("removed node %d returned", r.ID)
			}
		}
		if !gone[i] && (len(got) == 0 || got[0].Dist != 0) {
			t.Fatalf("node %d not found after removals: %v", i, got)
		}
	}
	more := append(slices.Clone(base), data[n*dim:]...)
	h2, err := h.Extend(more, nil, removed, Params{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := h2.Reachable(); got != n+100-len(removed) {
		t.Fatalf("after adding 100: reachable %d, want %d", got, n+100-len(removed))
	}
	if _, err := g.Extend(base, nil, []int32{g.Entry()}, Params{}); err == nil {
		t.Fatal("removing the entry point accepted")
	}
}
