package posting

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// Codec names how the vector bytes (the "rows section") of a posting are
// stored. A codec is a reversible byte transform followed by an entropy
// stage. The numeric values are part of the on-disk format; never change or
// reuse them.
type Codec uint8

const (
	// CodecNone stores the rows verbatim.
	CodecNone Codec = 0
	// CodecZstd compresses the rows, row-major as given, with zstd.
	CodecZstd Codec = 1
	// CodecZstdPlanes transposes the rows to byte planes (byte j of every
	// row, then byte j+1, ...) and compresses them with zstd.
	CodecZstdPlanes Codec = 2
	// CodecHuff Huffman-codes the rows (huff0, zstd's literal coder, one
	// table per block of up to 64 KiB, i.e. per posting in practice) with
	// no LZ stage, which vector bytes do not profit from.
	CodecHuff Codec = 3
	// CodecHuffShared Huffman-codes the rows with huff0 like CodecHuff, but
	// with one table for the whole file, stored in its header (Table), so
	// no posting carries or decodes a table of its own.
	CodecHuffShared Codec = 4

	codecCount = 5
)

// DefaultCodec is the codec chosen from the measurements in
// docs/bench-posting.md and docs/benchmarks.md: Huffman coding with one
// table per file. On realsift-1M its postings are 1.8 % larger than with a
// table per posting (CodecHuff, the smallest) and a query reads 2.5 % more
// pages, but it answers 15-23 % more queries per second, because decoding
// a table per posting was 14 % of a query's CPU.
const DefaultCodec = CodecHuffShared

var codecNames = [codecCount]string{"none", "zstd", "zstd-planes", "huff", "huff-shared"}

// Codecs lists every codec, in id order.
func Codecs() []Codec {
	cs := make([]Codec, codecCount)
	for i := range cs {
		cs[i] = Codec(i)
	}
	return cs
}

func (c Codec) valid() bool { return c < codecCount }

// String returns the codec's name as accepted by ParseCodec.
func (c Codec) String() string {
	if c.valid() {
		return codecNames[c]
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ParseCodec parses a codec name ("none", "zstd", "zstd-planes", "huff",
// "huff-shared");
// "default" gives DefaultCodec.
func ParseCodec(s string) (Codec, error) {
	s = strings.ToLower(s)
	if s == "default" {
		return DefaultCodec, nil
	}
	for i, n := range codecNames {
		if n == s {
			return Codec(i), nil
		}
	}
	return 0, fmt.Errorf("unknown posting codec %q (want one of %s)", s, strings.Join(codecNames[:], ", "))
}

type transform uint8

const (
	tfRaw    transform = iota // rows as given
	tfPlanes                  // byte planes: byte j of every row, for j = 0..rowBytes-1
)

type entropy uint8

const (
	enNone entropy = iota
	enZstd
	enHuff
	enHuffShared // enHuff with the file's Table: blocks carry no table
)

func (c Codec) stages() (transform, entropy) {
	switch c {
	case CodecZstd:
		return tfRaw, enZstd
	case CodecZstdPlanes:
		return tfPlanes, enZstd
	case CodecHuff:
		return tfRaw, enHuff
	case CodecHuffShared:
		return tfRaw, enHuffShared
	}
	return tfRaw, enNone
}

// forward applies tf to rows (count rows of rowBytes) into dst, of the same
// length.
func forward(tf transform, dst, rows []byte, count, rowBytes int) {
	switch tf {
	case tfRaw:
		copy(dst, rows)
	case tfPlanes:
		for i := range count {
			row := rows[i*rowBytes : (i+1)*rowBytes]
			for j, b := range row {
				dst[j*count+i] = b
			}
		}
	}
}

// inverse undoes forward: rows and src both have count*rowBytes bytes.
func inverse(tf transform, rows, src []byte, count, rowBytes int) {
	switch tf {
	case tfRaw:
		copy(rows, src)
	case tfPlanes:
		for j := range rowBytes {
			plane := src[j*count : (j+1)*count]
			for i, b := range plane {
				rows[i*rowBytes+j] = b
			}
		}
	}
}

// Huffman block stream (the enHuff entropy stage). The transformed bytes,
// whose total length the decoder knows, are cut into blocks of huffBlock
// bytes (the last may be shorter). Each block is one mode byte, then:
//
//	mode 0 (stored): the block's bytes verbatim
//	mode 1 (rle):    one byte, repeated for the whole block
//	mode 2 (huff1x): uvarint L, then L bytes: a huff0 table and one stream
//	mode 3 (huff4x): uvarint L, then L bytes: a huff0 table and four streams
//
// Mode values are part of the on-disk format. Under CodecHuffShared the
// huff1x and huff4x bodies are the stream(s) alone, coded with the file's
// shared table.
const (
	huffBlock = 64 << 10
	huff4xMin = 1024 // below this a single stream decodes as fast and is smaller
	hmStored  = 0
	hmRLE     = 1
	hmHuff1X  = 2
	hmHuff4X  = 3
)

// rowEncoder holds the per-Writer compression state and scratch.
type rowEncoder struct {
	zstdLevel zstd.EncoderLevel
	zenc      *zstd.Encoder
	huff      huff0.Scratch
	table     *Table        // CodecHuffShared's code
	shared    huff0.Scratch // holds table's code as its previous table
	tmp       []byte
}

// encode appends the rows section of codec c for rows to dst.
func (e *rowEncoder) encode(dst []byte, c Codec, rows []byte, count, rowBytes int) ([]byte, error) {
	tf, en := c.stages()
	var t []byte
	if tf == tfRaw {
		t = rows
	} else {
		n := count * rowBytes
		if cap(e.tmp) < n {
			e.tmp = make([]byte, n)
		}
		t = e.tmp[:n]
		forward(tf, t, rows, count, rowBytes)
	}
	if len(t) == 0 {
		return dst, nil // an empty posting has an empty rows section under every codec
	}
	switch en {
	case enNone:
		return append(dst, t...), nil
	case enZstd:
		if e.zenc == nil {
			lvl := e.zstdLevel
			if lvl == 0 {
				lvl = zstd.SpeedDefault
			}
			z, err := zstd.NewWriter(nil,
				zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(false), // the extent's CRC32C covers it
				zstd.WithEncoderLevel(lvl),
				zstd.WithSingleSegment(true))
			if err != nil {
				return dst, fmt.Errorf("zstd encoder: %w", err)
			}
			e.zenc = z
		}
		return e.zenc.EncodeAll(t, dst), nil
	case enHuff, enHuffShared:
		return e.huffEncode(dst, t, en == enHuffShared)
	}
	return dst, fmt.Errorf("codec %s: no entropy stage", c)
}

func (e *rowEncoder) huffEncode(dst, t []byte, shared bool) ([]byte, error) {
	s := &e.huff
	if shared {
		if e.table == nil || e.table.enc == nil {
			return dst, fmt.Errorf("codec %s: the writer has no trained table", CodecHuffShared)
		}
		s = &e.shared
	}
	for len(t) > 0 {
		blk := t[:min(len(t), huffBlock)]
		t = t[len(blk):]
		if shared {
			s.TransferCTable(e.table.enc)
			s.Reuse = huff0.ReusePolicyMust // the file's table, never one of its own
		} else {
			s.Reuse = huff0.ReusePolicyNone // every block carries its table
		}
		var out []byte
		var err error
		mode := byte(hmHuff4X)
		if len(blk) < huff4xMin {
			mode = hmHuff1X
			out, _, err = huff0.Compress1X(blk, s)
		} else {
			out, _, err = huff0.Compress4X(blk, s)
		}
		switch {
		case errors.Is(err, huff0.ErrUseRLE):
			dst = append(dst, hmRLE, blk[0])
		case errors.Is(err, huff0.ErrIncompressible) || (err == nil && len(out)+binary.MaxVarintLen32 >= len(blk)):
			dst = append(dst, hmStored)
			dst = append(dst, blk...)
		case err != nil:
			return dst, fmt.Errorf("huff0: %w", err)
		default:
			dst = append(dst, mode)
			dst = binary.AppendUvarint(dst, uint64(len(out)))
			dst = append(dst, out...)
		}
	}
	return dst, nil
}

// rowDecoder holds the per-Decoder decompression state and scratch.
type rowDecoder struct {
	zdec  *zstd.Decoder
	huff  *huff0.Scratch
	table *Table // CodecHuffShared's code (Decoder.SetTable)
	tmp   []byte
}

// decode reverses encode: src is the rows section, rows has length
// count*rowBytes and receives the vectors.
func (d *rowDecoder) decode(rows []byte, c Codec, src []byte, count, rowBytes int) error {
	tf, en := c.stages()
	if len(rows) == 0 {
		if len(src) != 0 {
			return fmt.Errorf("empty posting with %d-byte rows section: %w", len(src), ErrCorrupt)
		}
		return nil
	}
	t := rows
	if tf != tfRaw {
		n := count * rowBytes
		if cap(d.tmp) < n {
			d.tmp = make([]byte, n)
		}
		t = d.tmp[:n]
	}
	switch en {
	case enNone:
		if len(src) != len(t) {
			return fmt.Errorf("rows section %d bytes, want %d: %w", len(src), len(t), ErrCorrupt)
		}
		copy(t, src)
	case enZstd:
		if d.zdec == nil {
			z, err := zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecodeAllCapLimit(true), // never grow past the known size
				zstd.WithDecoderMaxMemory(MaxRowsBytes+PageSize))
			if err != nil {
				return fmt.Errorf("zstd decoder: %w", err)
			}
			d.zdec = z
		}
		out, err := d.zdec.DecodeAll(src, t[:0:len(t)])
		if err != nil {
			return fmt.Errorf("zstd: %v: %w", err, ErrCorrupt)
		}
		if len(out) != len(t) {
			return fmt.Errorf("zstd: %d bytes decoded, want %d: %w", len(out), len(t), ErrCorrupt)
		}
	case enHuff, enHuffShared:
		if err := d.huffDecode(t, src, en == enHuffShared); err != nil {
			return err
		}
	}
	if tf != tfRaw {
		inverse(tf, rows, t, count, rowBytes)
	}
	return nil
}

func (d *rowDecoder) huffDecode(t, src []byte, shared bool) error {
	if d.huff == nil {
		d.huff = &huff0.Scratch{}
	}
	if shared && d.table == nil {
		return fmt.Errorf("codec %s but no shared table was given to the decoder: %w", CodecHuffShared, ErrCorrupt)
	}
	for off := 0; off < len(t); off += huffBlock {
		blk := t[off:min(len(t), off+huffBlock)]
		if len(src) == 0 {
			return fmt.Errorf("huff block at %d: missing: %w", off, ErrCorrupt)
		}
		mode := src[0]
		src = src[1:]
		switch mode {
		case hmStored:
			if len(src) < len(blk) {
				return fmt.Errorf("huff block at %d: stored block truncated: %w", off, ErrCorrupt)
			}
			copy(blk, src)
			src = src[len(blk):]
		case hmRLE:
			if len(src) < 1 {
				return fmt.Errorf("huff block at %d: rle block truncated: %w", off, ErrCorrupt)
			}
			for i := range blk {
				blk[i] = src[0]
			}
			src = src[1:]
		case hmHuff1X, hmHuff4X:
			l, n := binary.Uvarint(src)
			if n <= 0 || l > uint64(len(src)-n) {
				return fmt.Errorf("huff block at %d: bad length: %w", off, ErrCorrupt)
			}
			body := src[n : n+int(l)]
			src = src[n+int(l):]
			var dec *huff0.Decoder
			if shared {
				dec = d.table.dec
			} else {
				s, rest, err := huff0.ReadTable(body, d.huff)
				if err != nil {
					return fmt.Errorf("huff block at %d: table: %v: %w", off, err, ErrCorrupt)
				}
				d.huff, body, dec = s, rest, s.Decoder()
			}
			var out []byte
			var err error
			if mode == hmHuff1X {
				out, err = dec.Decompress1X(blk[:0:len(blk)], body)
			} else {
				out, err = dec.Decompress4X(blk[:0:len(blk)], body)
			}
			if err != nil {
				return fmt.Errorf("huff block at %d: %v: %w", off, err, ErrCorrupt)
			}
			if len(out) != len(blk) {
				return fmt.Errorf("huff block at %d: %d bytes decoded, want %d: %w", off, len(out), len(blk), ErrCorrupt)
			}
		default:
			return fmt.Errorf("huff block at %d: unknown mode %d: %w", off, mode, ErrCorrupt)
		}
	}
	if len(src) != 0 {
		return fmt.Errorf("huff stream: %d trailing bytes: %w", len(src), ErrCorrupt)
	}
	return nil
}
