package indexfile

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/vfs"
	"github.com/gospann/spann/posting"
)

var (
	testBitmaps = []*roaring.Bitmap{roaring.BitmapOf(0, 2, 5), roaring.New(), roaring.BitmapOf(1)}
	testHomes   = []int32{0, 2, 2, -1, -4, 0} // vector 4 is head 2
)

func writeTestLabels(dir string, id BuildID) error {
	return WriteLabels(vfs.OS, dir, LabelsFile, id, testBitmaps, testHomes, 3, nil)
}

func TestLabelsFile(t *testing.T) {
	dir := t.TempDir()
	id, _ := NewBuildID()
	if l, err := ReadLabels(dir, LabelsFile, id, 6, 3, nil); l != nil || err != nil {
		t.Fatalf("no file: %v, %v", l, err)
	}
	if err := writeTestLabels(dir, id); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLabels(dir, LabelsFile, id, 6, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Homes, testHomes) || got.Vocab() != 3 {
		t.Fatalf("read %+v", got)
	}
	for x := range testBitmaps {
		if !got.Bitmap(x).Equals(testBitmaps[x]) {
			t.Errorf("label %d: %v, want %v", x, got.Bitmap(x), testBitmaps[x])
		}
	}
	other, _ := NewBuildID()
	for _, c := range []struct {
		name    string
		id      BuildID
		n, post int
		want    string
	}{
		{"other build", other, 6, 3, "labels of build"},
		{"other n", id, 7, 3, "labels for 6 vectors and 3 postings, the index has 7 and 3"},
		{"other postings", id, 6, 4, "the index has 6 and 4"},
	} {
		_, err := ReadLabels(dir, LabelsFile, c.id, c.n, c.post, nil)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), LabelsFile) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// Damage anywhere is refused: every byte flipped fails the CRC, and
// fields rewritten with a fixed CRC fail their own checks.
func TestLabelsFileDamage(t *testing.T) {
	dir := t.TempDir()
	id, _ := NewBuildID()
	if err := writeTestLabels(dir, id); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x10
		if _, err := parseLabels(bad, id, 6, 3, nil); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := parseLabels(good[:len(good)-9], id, 6, 3, nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated: %v", err)
	}
	recrc := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	homes := len(good) - 4 - 4*4 - 4*6 // before the CRC, the 4 list starts and 6 homes
	for _, c := range []struct {
		name string
		edit func([]byte)
		want string
	}{
		{"version", func(b []byte) { b[8] = 3 }, "labels format 3"},
		{"vocabulary", func(b []byte) { b[40] = 200 }, "do not fill"},
		{"offset", func(b []byte) { b[labelsHeader+8] += 1 }, "label 0: bitmap"},
		{"home too large", func(b []byte) { b[homes] = 3 }, "vector 0: home posting 3, the index has 3"},
		{"home negative", func(b []byte) { b[homes], b[homes+1], b[homes+2], b[homes+3] = 0xfb, 0xff, 0xff, 0xff }, "home posting -5"},
	} {
		bad := slices.Clone(good)
		c.edit(bad)
		_, err := parseLabels(recrc(bad), id, 6, 3, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// testLists are two lists for label 0 and one for label 2, heads of 2 bytes.
var testLists = LabelLists{Gen: 77, Min: 0.25, Max: 0.5, RowBytes: 2, Starts: []uint32{0, 2, 2, 3},
	Entries: []posting.Entry{{Offset: 4096, Bytes: 40, Count: 2}, {Offset: 4136, Bytes: 30, Count: 1}, {Offset: 8192, Bytes: 30, Count: 1}},
	Heads:   []byte{1, 2, 3, 4, 5, 6}}

// A labels file with lists reads back whole; damage to the list section
// is refused; a version 1 file (no lists) still reads.
func TestLabelsFileLists(t *testing.T) {
	dir := t.TempDir()
	id, _ := NewBuildID()
	if err := WriteLabels(vfs.OS, dir, LabelsFile, id, testBitmaps, testHomes, 3, &testLists); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLabels(dir, LabelsFile, id, 6, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	ll := got.Lists
	if ll.Gen != 77 || ll.Min != 0.25 || ll.Max != 0.5 || ll.RowBytes != 2 || !slices.Equal(ll.Starts, testLists.Starts) || !slices.Equal(ll.Entries, testLists.Entries) || !slices.Equal(ll.Heads, testLists.Heads) {
		t.Fatalf("lists read back as %+v", ll)
	}
	if lo, hi := ll.Of(0); lo != 0 || hi != 2 {
		t.Errorf("label 0's lists %d..%d", lo, hi)
	}
	if lo, hi := ll.Of(1); lo != hi {
		t.Errorf("label 1's lists %d..%d, want none", lo, hi)
	}
	good, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	starts := len(good) - 4 - 6 - 16*3 - 4*4
	recrc := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
		return b
	}
	for _, c := range []struct {
		name string
		edit func([]byte)
		want string
	}{
		{"starts backwards", func(b []byte) { b[starts+8] = 1 }, "label 2: lists from 1 after 2"},
		{"starts short", func(b []byte) { b[starts+12] = 2 }, "label lists end at 2 of 3"},
		{"first start", func(b []byte) { b[starts] = 1 }, "label 0: lists from 1"},
		{"empty list", func(b []byte) { b[starts+16+12] = 0 }, "label list 0 is empty"},
		{"row bytes", func(b []byte) { b[12] = 0 }, "3 label lists of 0-byte heads"},
		{"list count", func(b []byte) { b[64] = 4 }, "do not fill"},
		{"shares", func(b []byte) { b[95] = 0x40 }, "label lists for shares 0.25..32768"},
	} {
		bad := slices.Clone(good)
		c.edit(bad)
		_, err := parseLabels(recrc(bad), id, 6, 3, nil)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Version 1: a 64-byte header, and no starts, lists or heads.
	if err := writeTestLabels(dir, id); err != nil {
		t.Fatal(err)
	}
	v2, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	v1 := slices.Concat(v2[:64], v2[labelsHeader:len(v2)-4-4*4], make([]byte, 4))
	v1[8] = 1
	got, err = parseLabels(recrc(v1), id, 6, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Homes, testHomes) || got.Lists.Len() != 0 || !got.Bitmap(0).Equals(testBitmaps[0]) {
		t.Errorf("version 1 read as %+v", got)
	}
	if g, ok, err := ListsGen(filepath.Join(dir, LabelsFile)); ok || err != nil {
		t.Errorf("labels without lists name lists %d (%v)", g, err)
	}
	WriteLabels(vfs.OS, dir, LabelsFile, id, testBitmaps, testHomes, 3, &testLists)
	if g, ok, err := ListsGen(filepath.Join(dir, LabelsFile)); !ok || g != 77 || err != nil {
		t.Errorf("ListsGen: %d, %v, %v", g, ok, err)
	}
	if _, _, err := ListsGen(filepath.Join(dir, "missing.bin")); err == nil {
		t.Errorf("ListsGen of a missing file: no error")
	}
}

func FuzzLabelsFile(f *testing.F) {
	dir := f.TempDir()
	id, _ := NewBuildID()
	writeTestLabels(dir, id)
	good, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	f.Add(good)
	WriteLabels(vfs.OS, dir, LabelsFile, id, testBitmaps, testHomes, 3, &testLists)
	withLists, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	f.Add(withLists)
	f.Fuzz(func(t *testing.T, data []byte) {
		// With the CRC made right, only the field checks stand between
		// damage and a search.
		data = slices.Clone(data) // the fuzzer's input is not ours to change
		if len(data) >= 4 {
			binary.LittleEndian.PutUint32(data[len(data)-4:], crc32.Checksum(data[:len(data)-4], castagnoli))
		}
		l, err := parseLabels(data, id, 6, 3, nil)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrVersion: %v", err)
			}
			return
		}
		for x := 0; x < l.Vocab(); x++ {
			if bm := l.Bitmap(x); !bm.IsEmpty() && bm.Maximum() >= 6 {
				t.Fatalf("label %d holds %d", x, bm.Maximum())
			}
		}
		for i, h := range l.Homes {
			if h < -4 || h >= 3 {
				t.Fatalf("home %d of vector %d", h, i)
			}
		}
		ll := &l.Lists
		for x := 0; x < l.Vocab() && ll.Len() > 0; x++ {
			if lo, hi := ll.Of(x); lo > hi || hi > ll.Len() {
				t.Fatalf("label %d: lists %d..%d of %d", x, lo, hi, ll.Len())
			}
		}
		if len(ll.Heads) != ll.Len()*ll.RowBytes {
			t.Fatalf("%d bytes of heads for %d lists of %d-byte rows", len(ll.Heads), ll.Len(), ll.RowBytes)
		}
	})
}
