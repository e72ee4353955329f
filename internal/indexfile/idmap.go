package indexfile

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/gospann/spann/internal/vfs"
)

// IDMapFile maps an updated index's internal ids (dense: what postings,
// tombstones and the log hold) to the ids its users gave (spann-update
// --ids), as of its last checkpoint: internal ids below Base are their
// own external ids; internal id Base+i has external id Ext[i]. Absent
// until an insert gives explicit ids. Like the tombstones file it is not
// in the manifest and carries the build id.
//
// Layout (little-endian):
//
//	0   8   magic "SPNIDMAP"
//	8   4   format version (1)
//	12  4   zero
//	16  16  build id
//	32  4   Base, uint32
//	36  4   C, the number of mapped internal ids, uint32
//	40  4C  Ext: C int32 external ids (each ≥ 0, or -1 for an internal
//	        id that no insert took: one whose log append failed)
//	40+4C 4 CRC-32C of everything before it
const (
	IDMapFile   = "ids.bin"
	idMapMagic  = "SPNIDMAP"
	idMapHeader = 40
)

// IDMap is a decoded id map file.
type IDMap struct {
	Base int32
	Ext  []int32
}

// WriteIDMap replaces dir's id map file with m atomically.
func WriteIDMap(fs vfs.FS, dir string, id BuildID, m *IDMap) error {
	out := make([]byte, idMapHeader, idMapHeader+4*len(m.Ext)+4)
	copy(out, idMapMagic)
	binary.LittleEndian.PutUint32(out[8:], 1)
	copy(out[16:], id[:])
	binary.LittleEndian.PutUint32(out[32:], uint32(m.Base))
	binary.LittleEndian.PutUint32(out[36:], uint32(len(m.Ext)))
	for _, x := range m.Ext {
		out = binary.LittleEndian.AppendUint32(out, uint32(x))
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
	return vfs.WriteFileAtomic(fs, filepath.Join(dir, IDMapFile), out)
}

// ReadIDMap reads dir's id map file: nil if there is none, an error
// wrapping ErrCorrupt if it is damaged or of another build.
func ReadIDMap(dir string, id BuildID) (*IDMap, error) {
	path := filepath.Join(dir, IDMapFile)
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(data) < idMapHeader+4 || string(data[:8]) != idMapMagic {
		return nil, fmt.Errorf("%s: not an id map: %w", path, ErrCorrupt)
	}
	if got, want := binary.LittleEndian.Uint32(data[len(data)-4:]), crc32.Checksum(data[:len(data)-4], castagnoli); got != want {
		return nil, fmt.Errorf("%s: CRC-32C %08x, computed %08x: %w", path, got, want, ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != 1 {
		return nil, fmt.Errorf("%w: %s: id map format %d, this program reads 1", ErrVersion, path, v)
	}
	if got := BuildID(data[16:32]); got != id {
		return nil, fmt.Errorf("%s is from build %s, the index is build %s: %w", path, got, id, ErrCorrupt)
	}
	m := &IDMap{Base: int32(binary.LittleEndian.Uint32(data[32:]))}
	c := int(binary.LittleEndian.Uint32(data[36:]))
	if m.Base < 0 || len(data) != idMapHeader+4*c+4 {
		return nil, fmt.Errorf("%s: base %d, %d ids in %d bytes: %w", path, m.Base, c, len(data), ErrCorrupt)
	}
	m.Ext = make([]int32, c)
	for i := range m.Ext {
		if m.Ext[i] = int32(binary.LittleEndian.Uint32(data[idMapHeader+4*i:])); m.Ext[i] < -1 {
			return nil, fmt.Errorf("%s: external id %d: %w", path, m.Ext[i], ErrCorrupt)
		}
	}
	return m, nil
}
