package posting

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Space hands out room only in pages no entry touches (then past the
// end), never overlapping, each extent on its fewest pages.
func TestSpace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		// A directory with holes: extents packed, some pages skipped.
		var entries []Entry
		off := uint64(PageSize)
		for i := 0; i < 1+rng.IntN(40); i++ {
			if rng.IntN(3) == 0 {
				off += uint64(1+rng.IntN(5)) * PageSize
			}
			n := uint32(28 + rng.IntN(3*PageSize))
			off = Place(off, n)
			entries = append(entries, Entry{Offset: off, Bytes: n, Count: 1})
			off += uint64(n)
		}
		end := (off + PageSize - 1) &^ (PageSize - 1)
		rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		v := viewOf(entries)
		sp := NewSpace(v, end, true)
		used := slices.Clone(entries)
		for i := 0; i < 30; i++ {
			n := uint32(28 + rng.IntN(2*PageSize))
			used = append(used, Entry{Offset: sp.Alloc(n), Bytes: n})
		}
		if err := checkEntries(used, dirVersion4); err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		for _, e := range used[len(entries):] {
			for _, old := range entries {
				if e.ReadOffset() < old.ReadOffset()+uint64(old.ReadBytes()) && old.ReadOffset() < e.ReadOffset()+uint64(e.ReadBytes()) {
					t.Fatalf("trial %d: new extent at %d shares a page with a live one at %d", trial, e.Offset, old.Offset)
				}
			}
			if e.Offset+uint64(e.Bytes) > sp.End() {
				t.Fatalf("trial %d: extent ends past End %d", trial, sp.End())
			}
		}
		// Without reuse everything goes past the end.
		sp = NewSpace(v, end, false)
		if o := sp.Alloc(100); o != end || sp.Free() != 0 {
			t.Fatalf("append-only space allocated at %d (end %d)", o, end)
		}
	}
}

func viewOf(entries []Entry) *View {
	v := &View{n: len(entries)}
	for lo := 0; lo < len(entries); lo += viewChunk {
		c := new([viewChunk]Entry)
		copy(c[:], entries[lo:])
		v.chunks = append(v.chunks, c)
	}
	return v
}

// A View superseded by Replace is waited for while acquired; a View
// acquired after the Replace is the new one.
func TestWaitRetired(t *testing.T) {
	s, _, entries, _ := storeFixture(t)
	old := s.Acquire()
	if err := s.Replace(map[int]Entry{0: entries[0]}); err != nil {
		t.Fatal(err)
	}
	if s.WaitRetired(5 * time.Millisecond) {
		t.Fatal("WaitRetired returned true with the old View acquired")
	}
	cur := s.Acquire()
	if cur == old {
		t.Fatal("Acquire after Replace returned the superseded View")
	}
	done := make(chan bool)
	go func() { done <- s.WaitRetired(10 * time.Second) }()
	time.Sleep(time.Millisecond)
	old.Release()
	if !<-done {
		t.Fatal("WaitRetired timed out after the Release")
	}
	cur.Release()
	if !s.WaitRetired(0) {
		t.Fatal("nothing retired, yet WaitRetired false")
	}
}
