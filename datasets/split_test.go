package datasets

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// SplitVectors sends row i to file i mod S, each row whole and in order.
func TestSplitVectors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "base.u8bin")
	if err := Generate(src, GenParams{N: 1001, Dim: 8, Type: Uint8, Seed: 3}, 2, nil); err != nil {
		t.Fatal(err)
	}
	dsts := []string{filepath.Join(dir, "a.u8bin"), filepath.Join(dir, "b.u8bin"), filepath.Join(dir, "c.u8bin")}
	counts, err := SplitVectors(src, 0, 1000, dsts)
	if err != nil {
		t.Fatal(err)
	}
	if counts[0] != 334 || counts[1] != 333 || counts[2] != 333 {
		t.Fatalf("counts %v", counts)
	}
	base, _ := LoadVectors(src, 0, 0)
	for s, d := range dsts {
		m, err := LoadVectors(d, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < m.N; j++ {
			if !bytes.Equal(m.Row(j), base.Row(j*3+s)) {
				t.Fatalf("shard %d row %d is not base row %d", s, j, j*3+s)
			}
		}
	}
	if _, err := SplitVectors(src, 0, 2, dsts); err == nil || !strings.Contains(err.Error(), "2 vectors for 3 shards") {
		t.Errorf("too few vectors: %v", err)
	}
}
