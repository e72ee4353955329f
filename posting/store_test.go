package posting

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/gospann/spann/iouring"
)

// storeFixture writes postings to a real file and opens it as a Store.
func storeFixture(t *testing.T) (*Store, []posting, []Entry, *iouring.File) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	const rowBytes = 16
	var ps []posting
	for _, count := range []int{3, 0, 40, 1, 200, 7} {
		ps = append(ps, posting{distinctIDs(rng, count), clusteredRows(rng, count, rowBytes)})
	}
	file, entries := writeFile(t, ps, rowBytes, DefaultCodec)
	path := filepath.Join(t.TempDir(), "postings.bin")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := iouring.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	s, err := OpenStore(f, slices.Clone(entries), rowBytes)
	if err != nil {
		t.Fatal(err)
	}
	return s, ps, entries, f
}

// A round planned, read and decoded through a View gives back every
// posting, empty ones skipped.
func TestStoreRoundTrip(t *testing.T) {
	s, ps, entries, _ := storeFixture(t)
	v := s.Snapshot()
	if v.Len() != len(entries) || v.Entry(4) != entries[4] {
		t.Fatalf("view of %d entries, entry 4 %+v", v.Len(), v.Entry(4))
	}
	planned, total := v.Plan([]int32{5, 1, 0, 4, 2, 3})
	if !slices.Equal(planned, []int32{5, 0, 4, 2, 3}) {
		t.Fatalf("planned %v, the empty posting 1 kept or order lost", planned)
	}
	buf, err := iouring.AlignedBuffer(total)
	if err != nil {
		t.Fatal(err)
	}
	defer iouring.FreeBuffer(buf)
	reqs := v.Requests(planned, buf, nil)
	r, _, err := s.NewReader("pread", 8)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Read(reqs); err != nil {
		t.Fatal(err)
	}
	dec, err := s.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for i, h := range planned {
		ids, rows, err := s.Decode(dec, v, h, &reqs[i])
		want := sortedCopy(ps[h], 16)
		if err != nil || !slices.Equal(ids, want.ids) || !bytes.Equal(rows, want.rows) {
			t.Fatalf("posting %d: %v, or its data differs", h, err)
		}
	}
	// A short read and a damaged extent are ErrCorrupt, naming the posting.
	short := reqs[0]
	short.N = len(short.Buf) - 1
	if _, _, err := s.Decode(dec, v, planned[0], &short); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short read: %v", err)
	}
	reqs[2].Buf[entries[4].Offset-entries[4].ReadOffset()+30] ^= 1
	if _, _, err := s.Decode(dec, v, 4, &reqs[2]); !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("posting 4 of")) {
		t.Errorf("damaged extent: %v", err)
	}
	failed := reqs[1]
	failed.Err = os.ErrDeadlineExceeded
	if _, _, err := s.Decode(dec, v, 0, &failed); !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrCorrupt) {
		t.Errorf("failed read: %v", err)
	}
}

// OpenStore refuses another row size and an entry whose pages end past
// the file.
func TestOpenStoreChecks(t *testing.T) {
	_, _, entries, f := storeFixture(t)
	if _, err := OpenStore(f, slices.Clone(entries), 32); !errors.Is(err, ErrCorrupt) {
		t.Errorf("row size 32 for a file of 16: %v", err)
	}
	bad := slices.Clone(entries)
	bad[2].Offset += 1 << 20
	if _, err := OpenStore(f, bad, 16); !errors.Is(err, ErrBounds) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("entry past the end: %v", err)
	}
}

// Replace publishes a new directory atomically: views taken before keep
// their entries, later ones see the new; untouched chunks are shared; a
// bad entry is refused and changes nothing. Snapshots race with Replace
// under -race.
func TestStoreReplace(t *testing.T) {
	s, _, entries, _ := storeFixture(t)
	before := s.Snapshot()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			v := s.Snapshot()
			if e := v.Entry(4); e != entries[4] && e != entries[2] {
				t.Errorf("entry 4 is %+v: neither version", e)
				return
			}
		}
	}()
	for i := 0; i < 100; i++ {
		if err := s.Replace(map[int]Entry{4: entries[2+2*(i%2)]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Replace(map[int]Entry{4: entries[2]}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	after := s.Snapshot()
	if after.Entry(4) != entries[2] || before.Entry(4) != entries[4] || after.Entry(0) != entries[0] {
		t.Errorf("after %+v, before %+v", after.Entry(4), before.Entry(4))
	}
	past := entries[4]
	past.Offset = 1 << 30
	if err := s.Replace(map[int]Entry{0: entries[5], 4: past}); !errors.Is(err, ErrBounds) {
		t.Errorf("replace with an entry past the end: %v", err)
	}
	if err := s.Replace(map[int]Entry{99: entries[0]}); err == nil {
		t.Error("replace of entry 99 of 6 accepted")
	}
	if s.Snapshot() != after {
		t.Error("a refused Replace published a new view")
	}
}

// Publish grows the directory, attaches its aux, and refuses new postings
// without entries; older Views keep their length and aux.
func TestStorePublishGrows(t *testing.T) {
	s, _, entries, _ := storeFixture(t)
	old := s.Snapshot()
	if err := s.Publish(map[int]Entry{6: entries[2]}, 8, "set 1"); err == nil {
		t.Fatal("a new posting without an entry was published")
	}
	if err := s.Publish(map[int]Entry{6: entries[2], 7: entries[0], 1: entries[4]}, 8, "set 1"); err != nil {
		t.Fatal(err)
	}
	v := s.Snapshot()
	if v.Len() != 8 || v.Entry(7) != entries[0] || v.Entry(6) != entries[2] || v.Entry(1) != entries[4] || v.Entry(5) != entries[5] || v.Aux() != "set 1" {
		t.Fatalf("grown view: len %d aux %v", v.Len(), v.Aux())
	}
	if old.Len() != len(entries) || old.Entry(1) != entries[1] || old.Aux() != nil {
		t.Fatal("the older view changed")
	}
	if err := s.Replace(map[int]Entry{0: entries[3]}); err != nil || s.Snapshot().Aux() != "set 1" || s.Snapshot().Len() != 8 {
		t.Fatalf("Replace after Publish: %v", err)
	}
	if err := s.Publish(nil, 3, nil); err == nil {
		t.Fatal("shrinking publish accepted")
	}
	// Growth across a chunk boundary.
	big := map[int]Entry{}
	for h := 8; h < viewChunk+10; h++ {
		big[h] = entries[h%len(entries)]
	}
	if err := s.Publish(big, viewChunk+10, nil); err != nil {
		t.Fatal(err)
	}
	if v := s.Snapshot(); v.Len() != viewChunk+10 || v.Entry(viewChunk+9) != entries[(viewChunk+9)%len(entries)] || v.Aux() != "set 1" {
		t.Fatal("growth past a chunk")
	}
}
