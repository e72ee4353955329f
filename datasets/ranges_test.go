package datasets

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRangeResultsFile(t *testing.T) {
	r := &RangeResults{Offsets: []int{0, 2, 2, 3}, IDs: []int32{5, 9, 1}, Dists: []float32{0.5, 1, 2}}
	path := filepath.Join(t.TempDir(), "r.bin")
	if err := WriteRangeResults(path, r); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if len(raw) != 8+12+24 || binary.LittleEndian.Uint32(raw) != 3 || binary.LittleEndian.Uint32(raw[4:]) != 3 {
		t.Fatalf("layout: %v", raw)
	}
	got, err := ReadRangeResults(path)
	if err != nil || !slices.Equal(got.Offsets, r.Offsets) || !slices.Equal(got.IDs, r.IDs) || !slices.Equal(got.Dists, r.Dists) {
		t.Fatalf("read %+v, %v", got, err)
	}
	for _, c := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"short", func(b []byte) []byte { return b[:5] }, "shorter than the 8-byte header"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-4] }, "take 44 bytes; the file has 40"},
		{"count too large", func(b []byte) []byte { b[8] = 9; return b }, "query 0: 9 results"},
		{"counts short", func(b []byte) []byte { b[8] = 1; return b }, "counts add up to 2"},
		{"negative id", func(b []byte) []byte { b[20+3] = 0x80; return b }, "result 0: id"},
		{"NaN", func(b []byte) []byte { copy(b[32:], []byte{0, 0, 0xc0, 0x7f}); return b }, "not finite"},
	} {
		_, err := parseRangeResults(c.edit(slices.Clone(raw)))
		if !errors.Is(err, ErrRangeFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzReadRangeResults(f *testing.F) {
	path := filepath.Join(f.TempDir(), "r.bin")
	WriteRangeResults(path, &RangeResults{Offsets: []int{0, 2, 3}, IDs: []int32{5, 9, 1}, Dists: []float32{0.5, 1, 2}})
	raw, _ := os.ReadFile(path)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRangeResults(data)
		if err != nil {
			if !errors.Is(err, ErrRangeFile) {
				t.Fatal(err)
			}
			return
		}
		if r.Offsets[r.NQ()] != len(r.IDs) || len(r.IDs) != len(r.Dists) {
			t.Fatal("inconsistent results accepted")
		}
	})
}
