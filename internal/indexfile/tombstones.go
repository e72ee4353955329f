package indexfile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gospann/spann/internal/vfs"
)

// TombstonesFile holds the ids deleted from a mutable index as of its last
// checkpoint (deletes since then are in wal.log). It is not listed in the
// manifest, which describes the build; it carries the build id instead.
//
// Layout (little-endian):
//
//	0   8   magic "SPNTOMBS"
//	8   4   format version (1)
//	12  4   zero
//	16  16  build id
//	32  8   B, bytes of the bitmap
//	40  B   the deleted ids, a roaring bitmap in its portable serialisation
//	        (github.com/RoaringBitmap/roaring/v2, WriteTo)
//	40+B 4  CRC-32C of everything before it
const (
	TombstonesFile   = "tombstones.bin"
	tombstonesMagic  = "SPNTOMBS"
	tombstonesHeader = 40
)

// WriteTombstones replaces dir's tombstones file with bm atomically.
func WriteTombstones(fs vfs.FS, dir string, id BuildID, bm *roaring.Bitmap) error {
	var body bytes.Buffer
	if _, err := bm.WriteTo(&body); err != nil {
		return err
	}
	out := make([]byte, tombstonesHeader, tombstonesHeader+body.Len()+4)
	copy(out, tombstonesMagic)
	binary.LittleEndian.PutUint32(out[8:], 1)
	copy(out[16:], id[:])
	binary.LittleEndian.PutUint64(out[32:], uint64(body.Len()))
	out = append(out, body.Bytes()...)
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, TombstonesFile), out)
}

// ReadTombstones reads dir's tombstones file: an empty bitmap if there is
// none, an error wrapping ErrCorrupt if it is damaged or of another build.
func ReadTombstones(dir string, id BuildID) (*roaring.Bitmap, error) {
	path := filepath.Join(dir, TombstonesFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return roaring.New(), nil
	}
	if err != nil {
		return nil, err
	}
	if len(data) < tombstonesHeader+4 || string(data[:8]) != tombstonesMagic {
		return nil, fmt.Errorf("%s: not a tombstones file: %w", path, ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(data[:len(data)-4], castagnoli); got != want {
		return nil, fmt.Errorf("%s: CRC-32C %08x, computed %08x: %w", path, got, want, ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != 1 {
		return nil, fmt.Errorf("%w: %s: tombstones format %d, this program reads 1", ErrVersion, path, v)
	}
	if !bytes.Equal(data[16:32], id[:]) {
		return nil, fmt.Errorf("%s: tombstones of build %x, the index is build %s: %w", path, data[16:32], id, ErrCorrupt)
	}
	if b := binary.LittleEndian.Uint64(data[32:]); b != uint64(len(data)-tombstonesHeader-4) {
		return nil, fmt.Errorf("%s: bitmap of %d bytes in a file of %d: %w", path, b, len(data), ErrCorrupt)
	}
	bm := roaring.New()
	if _, err := bm.ReadFrom(bytes.NewReader(data[tombstonesHeader : len(data)-4])); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", path, err, ErrCorrupt)
	}
	return bm, nil
}
