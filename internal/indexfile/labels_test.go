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
)

var (
	testBitmaps = []*roaring.Bitmap{roaring.BitmapOf(0, 2, 5), roaring.New(), roaring.BitmapOf(1)}
	testHomes   = []int32{0, 2, 2, -1, -4, 0} // vector 4 is head 2
)

func writeTestLabels(dir string, id BuildID) error {
	return WriteLabels(vfs.OS, dir, id, testBitmaps, testHomes, 3)
}

func TestLabelsFile(t *testing.T) {
	dir := t.TempDir()
	id, _ := NewBuildID()
	if l, err := ReadLabels(dir, id, 6, 3, nil); l != nil || err != nil {
		t.Fatalf("no file: %v, %v", l, err)
	}
	if err := writeTestLabels(dir, id); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLabels(dir, id, 6, 3, nil)
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
		_, err := ReadLabels(dir, c.id, c.n, c.post, nil)
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
	homes := len(good) - 4 - 4*6
	for _, c := range []struct {
		name string
		edit func([]byte)
		want string
	}{
		{"version", func(b []byte) { b[8] = 2 }, "labels format 2"},
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

func FuzzLabelsFile(f *testing.F) {
	dir := f.TempDir()
	id, _ := NewBuildID()
	writeTestLabels(dir, id)
	good, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	f.Add(good)
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
	})
}
