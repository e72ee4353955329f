package posting

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/huff0"
)

// ErrNoTable is returned by TrainTable when the sample does not compress
// (random-looking bytes such as float32 mantissas): a shared Huffman code
// would only grow the postings, so the caller should use another codec.
var ErrNoTable = errors.New("posting: sample does not compress; no shared Huffman table")

// MaxTableBytes bounds a serialised shared table: it must fit page 0 of the
// postings file with the header fields and the CRC.
const MaxTableBytes = fileHdrIDOff - fileHdrTableOff

// Table is the Huffman code that every posting of a file stored with
// CodecHuffShared uses: it lives once in the file header instead of once
// per posting, which saves decoding a table per posting read (pprof on
// realsift-1M: 14 % of a query's CPU) for postings about 2 % larger
// (docs/bench-posting.md). A Table is safe for concurrent use.
type Table struct {
	raw []byte         // huff0's serialisation, as stored in the file header
	enc *huff0.Scratch // holds the code as its previous table (only ever read)
	dec *huff0.Decoder
}

// TrainTable builds a shared table from sample, bytes representative of
// the vectors to be stored (e.g. a few thousand of them). Every byte value
// gets a code, so any posting can be coded with it. Only the first
// huff0.BlockSizeMax-256 bytes of sample are used.
func TrainTable(sample []byte) (*Table, error) {
	if len(sample) == 0 {
		return nil, fmt.Errorf("posting: shared Huffman table: empty training sample")
	}
	train := make([]byte, 0, min(len(sample), huff0.BlockSizeMax-256)+256)
	train = append(train, sample[:min(len(sample), huff0.BlockSizeMax-256)]...)
	for v := range 256 {
		train = append(train, byte(v)) // a code for every value
	}
	s := &huff0.Scratch{Reuse: huff0.ReusePolicyNone}
	if _, _, err := huff0.Compress4X(train, s); err != nil {
		if errors.Is(err, huff0.ErrIncompressible) || errors.Is(err, huff0.ErrUseRLE) {
			return nil, ErrNoTable
		}
		return nil, fmt.Errorf("posting: shared Huffman table: %w", err)
	}
	t, err := ParseTable(s.OutTable)
	if err != nil {
		return nil, err
	}
	t.enc = s
	return t, nil
}

// ParseTable reads a serialised table (Table.Bytes of a trained one). It
// encodes as the trained one did, so an updated index writes new
// postings with the table in its postings file's header.
func ParseTable(raw []byte) (*Table, error) {
	if len(raw) == 0 || len(raw) > MaxTableBytes {
		return nil, fmt.Errorf("shared Huffman table of %d bytes (want 1..%d): %w", len(raw), MaxTableBytes, ErrCorrupt)
	}
	s, rest, err := huff0.ReadTable(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("shared Huffman table: %v: %w", err, ErrCorrupt)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("shared Huffman table: %d bytes after the table: %w", len(rest), ErrCorrupt)
	}
	return &Table{raw: append([]byte(nil), raw...), enc: s, dec: s.Decoder()}, nil
}

// Bytes returns the table's serialisation (do not modify it).
func (t *Table) Bytes() []byte { return t.raw }
