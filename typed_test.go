package spann

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
	"github.com/gospann/spann/internal/indexfile"
	"github.com/gospann/spann/internal/testutil"
	"github.com/gospann/spann/internal/vec"
	"github.com/gospann/spann/posting"
)

// The typed forms answer exactly as the raw-bytes ones, and refuse a query
// of another element type (issue 8, finding 7: an int8 query used to be
// accepted by a uint8 index of the same dimension).
func TestTypedSearch(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1500, 20, 8, posting.DefaultCodec)
	ix, err := Open(f.index, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	p := DefaultSearchParams()
	qs := datasets.Rows[uint8](f.q.Data)
	for i := 0; i < f.q.N; i++ {
		want, err := ix.Search(f.q.Row(i), 10, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SearchVector(ix, qs[i*8:(i+1)*8], 10, p)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("query %d: typed %v (%v), raw %v", i, got, err, want)
		}
	}
	batch, err := SearchVectors(ix, qs, 10, p, 2)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ix.SearchBatch(f.q.Data, 10, p, 2)
	if err != nil || !slices.Equal(batch.IDs, raw.IDs) || !slices.Equal(batch.Dists, raw.Dists) {
		t.Fatalf("typed batch differs from the raw one: %v", err)
	}
	if _, err := SearchVector(ix, make([]int8, 8), 10, p); !errors.Is(err, ErrType) || !strings.Contains(err.Error(), "int8 query on a uint8 index") {
		t.Errorf("int8 query on a uint8 index: %v", err)
	}
	if _, err := SearchVectors(ix, make([]float32, 16), 10, p, 1); !errors.Is(err, ErrType) {
		t.Errorf("float32 queries on a uint8 index: %v", err)
	}
	if _, err := SearchVectors(ix, qs[:12], 10, p, 1); err == nil || !strings.Contains(err.Error(), "whole number of 8-element") {
		t.Errorf("ragged queries: %v", err)
	}
	if m, err := ParseMetric("cosine"); err != nil || m != Cosine {
		t.Errorf("ParseMetric: %v %v", m, err)
	}
}

// An index whose manifest is of an older major format is refused with
// ErrVersion, detectable from the root package.
func TestOldFormatIsErrVersion(t *testing.T) {
	f := newFixture(t, datasets.Uint8, vec.L2, 1000, 5, 8, posting.DefaultCodec)
	path := filepath.Join(f.index, indexfile.ManifestName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old, err := indexfile.Resign([]byte(strings.Replace(string(data), `"format_major": 2`, `"format_major": 1`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path, old, 0o644)
	if _, err := Open(f.index, Options{}); !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "index format 1.") {
		t.Errorf("manifest major 1: %v, want ErrVersion", err)
	}
	os.WriteFile(path, data, 0o644) // the manifest restored

	// A postings file of a newer version (an intact header: its CRC fixed
	// up) is ErrVersion too, not damage.
	pp := filepath.Join(f.index, indexfile.PostingsFile)
	pf, err := os.OpenFile(pp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	page := make([]byte, posting.PageSize)
	if _, err := pf.ReadAt(page, 0); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(page[8:], 99)
	binary.LittleEndian.PutUint32(page[posting.PageSize-4:], crc32.Checksum(page[:posting.PageSize-4], crc32.MakeTable(crc32.Castagnoli)))
	if _, err := pf.WriteAt(page, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f.index, Options{}); !errors.Is(err, ErrVersion) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "postings.bin") {
		t.Errorf("postings file version 99: %v, want ErrVersion naming postings.bin", err)
	}
}

// A directory or graph file naming a newer format version is ErrVersion
// when the manifest vouches for the whole file (its SHA-256 matches), and
// ErrCorrupt when it does not: a damaged version field looks the same.
func TestNewerFileVersion(t *testing.T) {
	for _, name := range []string{indexfile.DirectoryFile, indexfile.GraphFile} {
		for _, vouched := range []bool{false, true} {
			f := newFixture(t, datasets.Uint8, vec.L2, 1000, 5, 8, posting.DefaultCodec)
			path := filepath.Join(f.index, name)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			oldSum := sha256.Sum256(data)
			binary.LittleEndian.PutUint32(data[8:], 99)
			os.WriteFile(path, data, 0o644)
			if vouched {
				mp := filepath.Join(f.index, indexfile.ManifestName)
				m, _ := os.ReadFile(mp)
				newSum := sha256.Sum256(data)
				edited, err := indexfile.Resign(bytes.Replace(m, []byte(hex.EncodeToString(oldSum[:])), []byte(hex.EncodeToString(newSum[:])), 1))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(mp, edited, 0o644)
			}
			_, err = Open(f.index, Options{})
			if vouched && (!errors.Is(err, ErrVersion) || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name)) {
				t.Errorf("%s of version 99, manifest agreeing: %v, want ErrVersion naming it", name, err)
			}
			if !vouched && (!errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "SHA-256")) {
				t.Errorf("%s of version 99, manifest disagreeing: %v, want ErrCorrupt (SHA-256)", name, err)
			}
		}
	}
}

// An index built from vectors in memory, or from a sequence of rows, is
// byte for byte the index built from the same vectors in a file (same seed
// and build id), and the typed builders check their input.
func TestBuildVectors(t *testing.T) {
	f := newFixture(t, datasets.Float32, vec.L2, 1200, 5, 12, posting.DefaultCodec)
	m, err := datasets.LoadVectors(f.base, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := indexfile.BuildID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}
	o := BuildOptions{Metric: vec.L2, HeadRatio: 0.1, Replicas: 4, Threads: 2, Seed: 3, MemoryBudget: 256 << 20, BuildID: id}
	fromFile, fromMemory := filepath.Join(t.TempDir(), "file"), filepath.Join(t.TempDir(), "memory")
	of := o
	of.Base, of.Out = f.base, fromFile
	if _, err := Build(context.Background(), of); err != nil {
		t.Fatal(err)
	}
	om := o
	om.Out = fromMemory
	if _, err := BuildVectors(context.Background(), datasets.Rows[float32](m.Data), 12, om); err != nil {
		t.Fatal(err)
	}
	assertSameFiles(t, fromFile, fromMemory)
	ix, err := Open(fromMemory, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Manifest.Base != "(memory)" || ix.N() != 1200 {
		t.Errorf("manifest base %q, n %d", ix.Manifest.Base, ix.N())
	}
	ix.Close()
	om.Out = filepath.Join(t.TempDir(), "bad")
	if _, err := BuildVectors(context.Background(), make([]float32, 25), 12, om); err == nil || !strings.Contains(err.Error(), "whole number of 48-byte rows") {
		t.Errorf("ragged vectors: %v", err)
	}
	om.Base = f.base
	if _, err := BuildVectors(context.Background(), datasets.Rows[float32](m.Data), 12, om); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Base and vectors both given: %v", err)
	}

	// From a sequence: the same index again, and the spool is gone.
	rows := func(yield func([]float32) bool) {
		data := datasets.Rows[float32](m.Data)
		for i := 0; i < 1200; i++ {
			if !yield(data[i*12 : (i+1)*12]) {
				return
			}
		}
	}
	spool := t.TempDir()
	oseq := o
	oseq.Out, oseq.TmpDir = filepath.Join(t.TempDir(), "seq"), spool
	if _, err := BuildSeq(context.Background(), rows, 12, oseq); err != nil {
		t.Fatal(err)
	}
	assertSameFiles(t, fromFile, oseq.Out)
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("the spool directory holds %d entries after the build", len(ents))
	}
	ragged := func(yield func([]float32) bool) { yield(make([]float32, 12)); yield(make([]float32, 11)) }
	oseq.Out = filepath.Join(t.TempDir(), "ragged")
	if _, err := BuildSeq(context.Background(), ragged, 12, oseq); err == nil || !strings.Contains(err.Error(), "row 1 has 11 elements, want 12") {
		t.Errorf("ragged sequence: %v", err)
	}
	empty := func(yield func([]float32) bool) {}
	if _, err := BuildSeq(context.Background(), empty, 12, oseq); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("empty sequence: %v", err)
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("failed builds left %d entries in the spool directory", len(ents))
	}
}

// assertSameFiles fails unless b holds the index of a.
func assertSameFiles(t *testing.T, a, b string) {
	t.Helper()
	if err := testutil.SameIndex(a, b); err != nil {
		t.Error(err)
	}
}
