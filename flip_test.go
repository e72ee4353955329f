package spann

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
)

// TestByteFlips is the byte-flip audit behind docs/benchmarks.md (issue
// 8): it flips one bit at a time in a copy of the index SPANN_FLIP_INDEX
// (scripts/flip-bytes.sh builds realsift-100k's), opens it and searches
// SPANN_FLIP_QUERIES (the first 50 rows), and counts for each file how
// often the damage was refused at Open, reported by a search, harmless
// (every answer identical to the undamaged index's) or — the failures —
// silently wrong or a panic. Every byte of manifest.json and of the
// postings header page is flipped; of heads.bin, graph.bin and
// directory.bin the first 4 KiB (every header field and the first records)
// and 300 random bytes further in; 1,000 random bytes of postings.bin's
// body. Skipped unless SPANN_FLIP_INDEX is set.
func TestByteFlips(t *testing.T) {
	src := os.Getenv("SPANN_FLIP_INDEX")
	if src == "" {
		t.Skip("set SPANN_FLIP_INDEX (and SPANN_FLIP_QUERIES) to run the byte-flip audit; see scripts/flip-bytes.sh")
	}
	qm, err := datasets.LoadVectors(os.Getenv("SPANN_FLIP_QUERIES"), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	files := []string{indexfile.ManifestName, indexfile.HeadsFile, indexfile.GraphFile, indexfile.DirectoryFile, indexfile.PostingsFile}
	for _, name := range files {
		if err := copyFile(filepath.Join(src, name), filepath.Join(work, name)); err != nil {
			t.Fatal(err)
		}
	}
	p := SearchParams{NProbe: 32}
	want, err := answers(work, qm, p)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 8))
	total := map[string]int{}
	for _, name := range files {
		path := filepath.Join(work, name)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, off := range flipOffsets(name, st.Size(), rng) {
			outcome := flipAndTry(t, path, off, work, qm, p, want)
			counts[outcome]++
			total[outcome]++
		}
		t.Logf("| %s | %d | %d | %d | %d | %d | %d |", name, sum(counts), counts["refused at open"], counts["search error"],
			counts["harmless"], counts["WRONG"], counts["PANIC"])
		if counts["WRONG"]+counts["PANIC"] > 0 {
			t.Errorf("%s: %d silently wrong answers, %d panics", name, counts["WRONG"], counts["PANIC"])
		}
	}
	t.Logf("| all | %d | %d | %d | %d | %d | %d |", sum(total), total["refused at open"], total["search error"],
		total["harmless"], total["WRONG"], total["PANIC"])
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// flipOffsets chooses the bytes of one file to damage (see TestByteFlips).
func flipOffsets(name string, size int64, rng *rand.Rand) []int64 {
	var offs []int64
	every := func(n int64) {
		for o := int64(0); o < min(n, size); o++ {
			offs = append(offs, o)
		}
	}
	random := func(from int64, n int) {
		for i := 0; i < n && size > from; i++ {
			offs = append(offs, from+rng.Int64N(size-from))
		}
	}
	switch name {
	case indexfile.ManifestName:
		every(size)
	case indexfile.PostingsFile:
		every(4096)
		random(4096, 1000)
	default:
		every(4096)
		random(4096, 300)
	}
	return offs
}

// flipAndTry flips bit 0 of path's byte at off, opens and searches the
// index, restores the byte and says what happened.
func flipAndTry(t *testing.T, path string, off int64, dir string, qm *datasets.Matrix, p SearchParams, want [][]Neighbor) (outcome string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	orig := b[0]
	b[0] ^= 1
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := f.WriteAt([]byte{orig}, off); err != nil {
			t.Fatal(err)
		}
		if r := recover(); r != nil {
			t.Logf("%s byte %d: panic %v", filepath.Base(path), off, r)
			outcome = "PANIC"
		}
	}()
	got, err := answers(dir, qm, p)
	switch {
	case err == errOpen:
		return "refused at open"
	case err != nil:
		return "search error"
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Logf("%s byte %d: query %d answered %v, undamaged %v", filepath.Base(path), off, i, got[i][:3], want[i][:3])
			return "WRONG"
		}
	}
	return "harmless"
}

var errOpen = fmt.Errorf("open failed")

// answers opens dir and searches every query in the calling goroutine (so
// that a panic reaches flipAndTry's recover).
func answers(dir string, qm *datasets.Matrix, p SearchParams) ([][]Neighbor, error) {
	ix, err := Open(dir, Options{})
	if err != nil {
		return nil, errOpen
	}
	defer ix.Close()
	out := make([][]Neighbor, qm.N)
	for i := range out {
		if out[i], err = ix.Search(qm.Row(i), 10, p); err != nil {
			return nil, fmt.Errorf("query %s: %w", strconv.Itoa(i), err)
		}
	}
	return out, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
