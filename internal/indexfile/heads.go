package indexfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gospann/spann/internal/vfs"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"unsafe"

	"github.com/gospann/spann/datasets"
)

// ErrCorrupt marks a file that fails validation (bad magic, checksum, size or
// field); errors.Is detects it.
var ErrCorrupt = errors.New("corrupt index file")

// ErrVersion marks a file written by a newer, incompatible format version.
var ErrVersion = errors.New("unsupported index format version")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Heads format constants: part of the on-disk format; never change.
const (
	headsMagic = "SPNHEADS"
	// headsMajor 2 added the build id (bytes 32-48); ParseHeads also reads
	// major 1, whose header ends at 32 and whose build id is zero.
	headsMajor = 2
	// headsMinor 1 lets the ids be in any order (an updated index appends
	// the heads of split postings); minor 0 has them strictly ascending.
	// Unique either way.
	headsMinor      = 1
	headsHeaderSize = 48
	headsV1Header   = 32
)

// RemovedHead is the id of a head an updated index removed (its posting
// emptied by deletes and merged away); its row stays, unused. Minor 1.
const RemovedHead = ^uint32(0)

// Heads holds the head vectors in memory: Vectors is row i = head i, the
// vector of base row IDs[i].
type Heads struct {
	BuildID BuildID // the build that wrote the file (zero in major 1)
	Type    datasets.ElemType
	Dim     int
	IDs     []uint32
	Vectors []byte
}

// Len returns the number of heads.
func (h *Heads) Len() int { return len(h.IDs) }

// WriteHeads writes h to path (created or truncated) and returns the file's
// size.
func WriteHeads(fs vfs.FS, path string, h *Heads) (int64, error) {
	rb := h.Dim * h.Type.Size()
	if len(h.Vectors) != len(h.IDs)*rb {
		return 0, fmt.Errorf("write %s: %d heads but %d vector bytes", path, len(h.IDs), len(h.Vectors))
	}
	f, err := fs.Create(path)
	if err != nil {
		return 0, err
	}
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var hdr [headsHeaderSize]byte
	copy(hdr[:], headsMagic)
	binary.LittleEndian.PutUint16(hdr[8:], headsMajor)
	minor := uint16(0)
	for i := range h.IDs {
		if h.IDs[i] == RemovedHead || (i > 0 && h.IDs[i] <= h.IDs[i-1]) {
			minor = headsMinor
			break
		}
	}
	binary.LittleEndian.PutUint16(hdr[10:], minor)
	hdr[12] = byte(h.Type)
	binary.LittleEndian.PutUint32(hdr[16:], uint32(h.Dim))
	binary.LittleEndian.PutUint32(hdr[20:], uint32(len(h.IDs)))
	copy(hdr[32:], h.BuildID[:])
	bw.Write(hdr[:])
	var idb [4]byte
	for _, id := range h.IDs {
		binary.LittleEndian.PutUint32(idb[:], id)
		bw.Write(idb[:])
	}
	bw.Write(h.Vectors)
	if err := bw.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], crc.Sum32())
	if _, err := f.Write(tail[:]); err != nil {
		f.Close()
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("sync %s: %w", path, err)
	}
	size := int64(headsHeaderSize + 4*len(h.IDs) + len(h.Vectors) + 4)
	return size, f.Close()
}

// ReadHeads reads and validates a heads file.
func ReadHeads(path string) (*Heads, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	h, err := ParseHeads(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// ParseHeads decodes a heads file held in memory. The returned Heads refer to
// data (no copy).
func ParseHeads(data []byte) (*Heads, error) {
	if len(data) < headsV1Header+4 {
		return nil, fmt.Errorf("%w: heads file of %d bytes is shorter than its header", ErrCorrupt, len(data))
	}
	if string(data[:8]) != headsMagic {
		return nil, fmt.Errorf("%w: not a heads file (bad magic)", ErrCorrupt)
	}
	body, tail := data[:len(data)-4], data[len(data)-4:]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(tail); got != want {
		return nil, fmt.Errorf("%w: heads checksum mismatch (stored %08x, computed %08x)", ErrCorrupt, want, got)
	}
	hdrSize := headsHeaderSize
	var id BuildID
	switch major := binary.LittleEndian.Uint16(data[8:]); major {
	case headsMajor:
		if len(data) < headsHeaderSize+4 {
			return nil, fmt.Errorf("%w: heads file of %d bytes is shorter than its header", ErrCorrupt, len(data))
		}
		copy(id[:], data[32:headsHeaderSize])
	case 1:
		hdrSize = headsV1Header
	default:
		return nil, fmt.Errorf("%w: heads format %d, this program reads 1 and %d", ErrVersion, major, headsMajor)
	}
	typ := datasets.ElemType(data[12])
	if typ != datasets.Float32 && typ != datasets.Uint8 && typ != datasets.Int8 {
		return nil, fmt.Errorf("%w: heads element type %d", ErrCorrupt, data[12])
	}
	dim := int(binary.LittleEndian.Uint32(data[16:]))
	nh := int(binary.LittleEndian.Uint32(data[20:]))
	if dim <= 0 || dim > datasets.MaxDim || nh <= 0 {
		return nil, fmt.Errorf("%w: heads header dim=%d count=%d", ErrCorrupt, dim, nh)
	}
	want := int64(hdrSize) + 4*int64(nh) + int64(nh)*int64(dim)*int64(typ.Size()) + 4
	if int64(len(data)) != want {
		return nil, fmt.Errorf("%w: heads file is %d bytes, its header implies %d", ErrCorrupt, len(data), want)
	}
	idBytes := data[hdrSize : hdrSize+4*nh]
	// The ids are used in place when they are 4-byte aligned (they are in
	// os.ReadFile's buffer; a little-endian machine is assumed throughout,
	// as by datasets.Rows): a copy would be resident for the index's life.
	var ids []uint32
	if uintptr(unsafe.Pointer(&idBytes[0]))%4 == 0 {
		ids = unsafe.Slice((*uint32)(unsafe.Pointer(&idBytes[0])), nh)
	} else {
		ids = make([]uint32, nh)
		for i := range ids {
			ids[i] = binary.LittleEndian.Uint32(idBytes[4*i:])
		}
	}
	if err := checkHeadIDs(ids, binary.LittleEndian.Uint16(data[10:])); err != nil {
		return nil, err
	}
	vecs := data[hdrSize+4*nh : len(data)-4]
	if typ == datasets.Float32 {
		// Rows[float32] needs 4-byte alignment; the offset is 48+4h (32+4h in major 1), so it
		// holds whenever data itself is aligned (os.ReadFile's buffer is).
		if err := datasets.CheckFinite(typ, vecs, dim, 0); err != nil {
			return nil, fmt.Errorf("%w: head %v", ErrCorrupt, err)
		}
	}
	return &Heads{BuildID: id, Type: typ, Dim: dim, IDs: ids, Vectors: vecs}, nil
}

// checkHeadIDs checks that ids are strictly ascending (minor 0), or unique
// but for RemovedHead (minor 1 and later: an ascending run, then appended
// ones, some removed).
func checkHeadIDs(ids []uint32, minor uint16) error {
	sorted := ids
	for i := range ids {
		if ids[i] == RemovedHead || (i > 0 && ids[i] <= ids[i-1]) {
			if minor == 0 {
				return fmt.Errorf("%w: head ids not strictly ascending at %d", ErrCorrupt, i)
			}
			sorted = slices.Clone(ids)
			slices.Sort(sorted)
			break
		}
	}
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] && sorted[i] != RemovedHead {
			return fmt.Errorf("%w: head id %d appears twice", ErrCorrupt, sorted[i])
		}
	}
	return nil
}
