package indexfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"github.com/gospann/spann/internal/vfs"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
)

func sampleHeads() *Heads {
	h := &Heads{BuildID: testID, Type: datasets.Uint8, Dim: 3, IDs: []uint32{2, 5, 9}}
	for i := 0; i < 9; i++ {
		h.Vectors = append(h.Vectors, byte(i*7))
	}
	return h
}

func TestHeadsRoundTripAndCorruption(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "heads.bin")
	size, err := WriteHeads(vfs.OS, p, sampleHeads())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if int64(len(raw)) != size || size != 48+12+9+4 {
		t.Fatalf("size %d, file %d", size, len(raw))
	}
	h, err := ReadHeads(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != 3 || h.IDs[2] != 9 || h.Vectors[8] != 56 || h.Dim != 3 || h.BuildID != testID {
		t.Fatalf("round trip: %+v", h)
	}
	// Major 1 (no build id) still reads, with a zero id.
	v1 := append(bytes.Clone(raw[:32]), raw[48:len(raw)-4]...)
	binary.LittleEndian.PutUint16(v1[8:], 1)
	v1 = binary.LittleEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	if h1, err := ParseHeads(v1); err != nil || !h1.BuildID.IsZero() || h1.IDs[1] != 5 || h1.Vectors[8] != 56 {
		t.Fatalf("major 1: %+v %v", h1, err)
	}
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x20
		if _, err := ParseHeads(bad); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("flipped byte %d: %v", i, err)
		}
	}
	for _, n := range []int{0, 10, len(raw) - 1} {
		if _, err := ParseHeads(raw[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
}

func sampleManifest() *Manifest {
	return &Manifest{Type: "uint8", Dim: 128, Metric: "l2", N: 1000, Heads: 120,
		Params:  BuildParams{HeadRatio: 0.12, Replicas: 8, Codec: "zstd"},
		Stats:   map[string]any{"seconds": 1.5},
		BuildID: testID.String(),
		Files:   []FileInfo{{Name: "heads.bin", Bytes: 57, SHA256: strings.Repeat("ab", 32)}}}
}

var testID = BuildID{0xb1, 0x1d, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "not an index directory") {
		t.Fatalf("missing manifest: %v", err)
	}
	if err := WriteManifest(vfs.OS, dir, sampleManifest()); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 1000 || m.Params.Replicas != 8 || m.Files[0].SHA256 != strings.Repeat("ab", 32) || m.ID() != testID {
		t.Fatalf("round trip: %+v", m)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	tampered := strings.Replace(string(raw), `"n": 1000`, `"n": 1001`, 1)
	if _, err := ParseManifest([]byte(tampered)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("tampered manifest: %v", err)
	}
	newer := sampleManifest()
	data, _ := EncodeManifest(newer)
	for _, c := range []struct{ from, to, want string }{
		{`"format_major": 2`, `"format_major": 3`, "index format 3.1"},
		{`"format_major": 2`, `"format_major": 1`, "index format 1.1"},
		{`"build_id": "` + testID.String() + `"`, `"build_id": ""`, "build id"},
		{`"build_id": "` + testID.String() + `"`, `"build_id": "` + strings.Repeat("0", 32) + `"`, "must not be zero"},
		{strings.Repeat("ab", 32), "0badf00d", "heads.bin: sha256"},
		{`"n": 1000`, `"n": 1000, "generation": -1`, "generation=-1"},
	} {
		edited, err := Resign([]byte(strings.Replace(string(data), c.from, c.to, 1)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseManifest(edited)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: %v, want %q", c.from, c.to, err, c.want)
		}
		if strings.HasPrefix(c.from, `"format`) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v is not ErrVersion", c.to, err)
		}
	}
	other := testID
	other[0]++
	if err := m.CheckID("d", "graph.bin", other); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "d/graph.bin is from build "+other.String()) {
		t.Errorf("CheckID of another build: %v", err)
	}
	if err := m.CheckID("d", "graph.bin", testID); err != nil {
		t.Errorf("CheckID of this build: %v", err)
	}
	if _, err := ParseManifest([]byte("{}")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty object: %v", err)
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "heads.bin")
	WriteHeads(vfs.OS, p, sampleHeads())
	info, err := Describe(dir, "heads.bin")
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Files: []FileInfo{info}}
	if err := m.CheckFile(dir, "heads.bin", true); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	raw[40] ^= 1
	os.WriteFile(p, raw, 0o644)
	if err := m.CheckFile(dir, "heads.bin", true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte: %v", err)
	}
	cr, err := m.OpenChecked(dir, "heads.bin")
	if err != nil {
		t.Fatal(err)
	}
	if err := cr.Verify(); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("OpenChecked + Verify of a flipped byte: %v", err)
	}
	os.Remove(p)
	if err := m.CheckFile(dir, "heads.bin", false); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}

	// postings.bin of an updated index: the SHA-256 covers its build-time
	// prefix; bytes past it are checked elsewhere, bytes past its
	// committed length are an uncommitted tail (allowed).
	pp := filepath.Join(dir, PostingsFile)
	prefix := bytes.Repeat([]byte{7}, 8192)
	os.WriteFile(pp, prefix, 0o644)
	built := DescribeBytes(PostingsFile, prefix)
	grown := append(bytes.Clone(prefix), bytes.Repeat([]byte{9}, 4096)...)
	os.WriteFile(pp, append(grown, 1, 2, 3), 0o644)
	m = &Manifest{Files: []FileInfo{{Name: PostingsFile, Bytes: int64(len(grown)), SHA256: built.SHA256, HashedBytes: built.Bytes}}}
	if err := m.CheckFile(dir, PostingsFile, true); err != nil {
		t.Fatalf("grown postings: %v", err)
	}
	grown[100] ^= 1
	os.WriteFile(pp, grown, 0o644)
	if err := m.CheckFile(dir, PostingsFile, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte in the hashed prefix: %v", err)
	}
	os.WriteFile(pp, prefix, 0o644)
	if err := m.CheckFile(dir, PostingsFile, true); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "the manifest says") {
		t.Fatalf("postings shorter than committed: %v", err)
	}
}

func FuzzParseHeads(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "h")
	WriteHeads(vfs.OS, p, sampleHeads())
	raw, _ := os.ReadFile(p)
	f.Add(raw)
	f.Add([]byte("SPNHEADS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeads(data)
		if err == nil && len(h.Vectors) != h.Len()*h.Dim*h.Type.Size() {
			t.Fatal("inconsistent heads accepted")
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	data, _ := EncodeManifest(sampleManifest())
	f.Add(data)
	f.Add([]byte(`{"magic":"spann-index"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err == nil && (m.N <= 0 || m.Heads > m.N) {
			t.Fatal("invalid manifest accepted")
		}
	})
}

// Heads appended by splits (ids out of order) are written as minor 1 and
// read back; a repeated id is refused, and so is disorder under minor 0.
func TestHeadsAppended(t *testing.T) {
	p := filepath.Join(t.TempDir(), "heads.bin")
	h := sampleHeads()
	h.IDs = append(h.IDs, 4)
	h.Vectors = append(h.Vectors, 1, 2, 3)
	if _, err := WriteHeads(vfs.OS, p, h); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if minor := binary.LittleEndian.Uint16(raw[10:]); minor != 1 {
		t.Fatalf("appended heads written as minor %d", minor)
	}
	got, err := ParseHeads(raw)
	if err != nil || !slices.Equal(got.IDs, h.IDs) {
		t.Fatalf("appended heads: %v %v", got, err)
	}
	refix := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	minor0 := bytes.Clone(raw)
	binary.LittleEndian.PutUint16(minor0[10:], 0)
	if _, err := ParseHeads(refix(minor0)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "ascending") {
		t.Fatalf("unordered minor 0: %v", err)
	}
	removed := sampleHeads()
	removed.IDs = []uint32{2, RemovedHead, RemovedHead}
	if _, err := WriteHeads(vfs.OS, p, removed); err != nil {
		t.Fatal(err)
	}
	if back, err := ReadHeads(p); err != nil || !slices.Equal(back.IDs, removed.IDs) {
		t.Fatalf("removed heads: %v %v", back, err)
	}
	dup := bytes.Clone(raw)
	binary.LittleEndian.PutUint32(dup[headsHeaderSize+12:], 5)
	if _, err := ParseHeads(refix(dup)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("repeated head id: %v", err)
	}
}

func TestFileNames(t *testing.T) {
	for _, c := range []struct {
		base string
		gen  int64
		name string
	}{{HeadsFile, 0, "heads.bin"}, {GraphFile, 3, "graph-000003.bin"}, {DirectoryFile, 1234567, "directory-1234567.bin"}} {
		if got := FileName(c.base, c.gen); got != c.name {
			t.Errorf("FileName(%s, %d) = %s", c.base, c.gen, got)
		}
		if g, ok := FileGeneration(c.base, c.name); !ok || g != c.gen {
			t.Errorf("FileGeneration(%s, %s) = %d %v", c.base, c.name, g, ok)
		}
	}
	for _, bad := range []string{"heads-1.bin", "heads-000000.bin", "heads-0000001.bin", "heads-00000x.bin", "graph-000001.bin", "heads-000001.bin.tmp"} {
		if _, ok := FileGeneration(HeadsFile, bad); ok {
			t.Errorf("%s taken for a heads file", bad)
		}
	}
	m := &Manifest{Files: []FileInfo{{Name: "heads-000004.bin"}, {Name: "graph.bin"}}}
	if m.Current(HeadsFile) != "heads-000004.bin" || m.Current(GraphFile) != "graph.bin" {
		t.Fatal("Current")
	}
}

func TestIDMap(t *testing.T) {
	dir := t.TempDir()
	if m, err := ReadIDMap(dir, testID); m != nil || err != nil {
		t.Fatalf("no file: %v %v", m, err)
	}
	want := &IDMap{Base: 7, Ext: []int32{100, 5, 1 << 30}}
	if err := WriteIDMap(vfs.OS, dir, testID, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadIDMap(dir, testID)
	if err != nil || got.Base != 7 || !slices.Equal(got.Ext, want.Ext) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := ReadIDMap(dir, BuildID{9}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other build: %v", err)
	}
	path := filepath.Join(dir, IDMapFile)
	raw, _ := os.ReadFile(path)
	for pos := range raw {
		c := bytes.Clone(raw)
		c[pos] ^= 0x20
		os.WriteFile(path, c, 0o644)
		if _, err := ReadIDMap(dir, testID); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("byte %d flipped: %v", pos, err)
		}
	}
	os.WriteFile(path, raw[:len(raw)-1], 0o644)
	if _, err := ReadIDMap(dir, testID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
}

// FuzzReadIDMap: any bytes as ids.bin are read or refused as corrupt (or
// a newer version), never a panic, and what is read has no id below -1.
func FuzzReadIDMap(f *testing.F) {
	dir := f.TempDir()
	if err := WriteIDMap(vfs.OS, dir, testID, &IDMap{Base: 3, Ext: []int32{9, -1, 4}}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(filepath.Join(dir, IDMapFile))
	f.Add(seed)
	f.Add(seed[:41])
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, IDMapFile), data, 0o644)
		m, err := ReadIDMap(d, testID)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error not ErrCorrupt or ErrVersion: %v", err)
			}
			return
		}
		if m == nil || m.Base < 0 || slices.ContainsFunc(m.Ext, func(x int32) bool { return x < -1 }) {
			t.Fatalf("read %+v", m)
		}
	})
}
