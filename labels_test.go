package spann

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// AttachLabels stores every label's carriers and every vector's home: a
// posting holding it, the nearest-headed of those; heads have none.
func TestAttachLabels(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 3000, 5, 16, posting.DefaultCodec)
	bv, _ := datasets.OpenVectors(f.base, 0)
	defer bv.Close()
	labels, err := datasets.GenerateLabels(bv, datasets.LabelParams{Vocab: 300, Corr: 0.5, Seed: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	short, _ := datasets.NewLabels(make([][]int32, 2999), 300)
	if err := AttachLabels(f.index, short, nil); err == nil || !strings.Contains(err.Error(), "labels for 2999 vectors, the index has 3000") {
		t.Errorf("short labels: %v", err)
	}
	if err := AttachLabels(f.index, labels, nil); err != nil {
		t.Fatal(err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if ix.Labels() != 300 || ix.Info().Labels != 300 {
		t.Fatalf("Labels() = %d", ix.Labels())
	}
	want := labels.Bitmaps()
	for x := range want {
		if bm := ix.labels.Bitmap(x); !bm.Equals(want[x]) {
			t.Fatalf("label %d: %d carriers stored, %d given", x, bm.GetCardinality(), want[x].GetCardinality())
		}
	}
	// Recompute the homes from a decoded copy of every posting.
	view := ix.store.Snapshot()
	best := make([]float32, ix.N())
	holds := make([]map[int32]bool, ix.N())
	for i := range best {
		best[i], holds[i] = float32(math.Inf(1)), map[int32]bool{}
	}
	eachPosting(t, ix, view, func(h int32, ids []uint32, rows []byte) {
		_, head := ix.eng.head(h)
		for j, id := range ids {
			holds[id][h] = true
			best[id] = min(best[id], ix.eng.rowDist(head, rows[j*ix.rowBytes:(j+1)*ix.rowBytes]))
		}
	})
	isHead := map[uint32]bool{}
	for _, id := range ix.eng.headIDs() {
		isHead[id] = true
	}
	for id, home := range ix.labels.Homes {
		if home < 0 {
			if h := -2 - home; len(holds[id]) != 0 || home > -2 || ix.eng.headIDs()[h] != uint32(id) {
				t.Fatalf("vector %d: home %d, but in %d postings (head: %v)", id, home, len(holds[id]), isHead[uint32(id)])
			}
			continue
		}
		_, head := ix.eng.head(home)
		row, _ := bv.ReadRows(id, 1, nil)
		if !holds[id][home] || ix.eng.rowDist(head, row) != best[id] {
			t.Fatalf("vector %d: home %d (holds it: %v) at %v, nearest holding head at %v", id, home, holds[id][home], ix.eng.rowDist(head, row), best[id])
		}
	}
}

// An index with labels refuses a writable Open (updates do not keep
// labels yet) and a labels file of another build or damaged.
func TestLabelsRefused(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 2000, 5, 16, posting.DefaultCodec)
	labels, _ := datasets.NewLabels(make([][]int32, 2000), 4)
	if err := AttachLabels(f.index, labels, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.index, Options{Writable: true}); !errors.Is(err, ErrLabelsUpdate) {
		t.Errorf("writable Open: %v, want ErrLabelsUpdate", err)
	}
	path := filepath.Join(f.index, indexfile.LabelsFile)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 1
	os.WriteFile(path, data, 0o644)
	_, err := Open(f.index, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("damaged labels.bin: %v", err)
	}
	// Attaching again replaces the damaged file.
	if err := AttachLabels(f.index, labels, nil); err != nil {
		t.Fatalf("attach over a damaged labels.bin: %v", err)
	}
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
}
