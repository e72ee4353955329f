package indexfile

import (
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gospann/spann/datasets"
)

func sampleHeads() *Heads {
	h := &Heads{Type: datasets.Uint8, Dim: 3, IDs: []uint32{2, 5, 9}}
	for i := 0; i < 9; i++ {
		h.Vectors = append(h.Vectors, byte(i*7))
	}
	return h
}

func TestHeadsRoundTripAndCorruption(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "heads.bin")
	size, crc, err := WriteHeads(p, sampleHeads())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(p)
	if int64(len(raw)) != size || size != 32+12+9+4 {
		t.Fatalf("size %d, file %d", size, len(raw))
	}
	if c, _ := FileCRC(p); c != crc {
		t.Fatalf("returned crc %08x, file crc %08x", crc, c)
	}
	h, err := ReadHeads(p)
	if err != nil {
		t.Fatal(err)
	}
	if h.Len() != 3 || h.IDs[2] != 9 || h.Vectors[8] != 56 || h.Dim != 3 {
		t.Fatalf("round trip: %+v", h)
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
		Params: BuildParams{HeadRatio: 0.12, Replicas: 8, Codec: "zstd"},
		Stats:  map[string]any{"seconds": 1.5},
		Files:  []FileInfo{{Name: "heads.bin", Bytes: 57, CRC32C: "0badf00d"}}}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), "not an index directory") {
		t.Fatalf("missing manifest: %v", err)
	}
	if err := WriteManifest(dir, sampleManifest()); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 1000 || m.Params.Replicas != 8 || m.Files[0].CRC32C != "0badf00d" {
		t.Fatalf("round trip: %+v", m)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	tampered := strings.Replace(string(raw), `"n": 1000`, `"n": 1001`, 1)
	if _, err := ParseManifest([]byte(tampered)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("tampered manifest: %v", err)
	}
	newer := sampleManifest()
	data, _ := EncodeManifest(newer)
	data2 := strings.Replace(string(data), `"format_major": 1`, `"format_major": 2`, 1)
	// Re-sign so that only the version is wrong.
	var zeroed = strings.Replace(data2, `"checksum": "`+newer.Checksum+`"`, `"checksum": "00000000"`, 1)
	data2 = strings.Replace(data2, newer.Checksum, CRCString(crc32.Checksum([]byte(zeroed), castagnoli)), 1)
	if _, err := ParseManifest([]byte(data2)); !errors.Is(err, ErrVersion) {
		t.Fatalf("newer major version: %v", err)
	}
	if _, err := ParseManifest([]byte("{}")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("empty object: %v", err)
	}
}

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "heads.bin")
	WriteHeads(p, sampleHeads())
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
	if err := m.CheckBytes("heads.bin", raw); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("CheckBytes: %v", err)
	}
	os.Remove(p)
	if err := m.CheckFile(dir, "heads.bin", false); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzParseHeads(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "h")
	WriteHeads(p, sampleHeads())
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
