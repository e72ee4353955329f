package posting

import (
	"encoding/binary"
	"fmt"
)

// Decoder decodes extents read from a postings file. It owns the scratch
// that decoded ids and rows live in, so a search worker keeps one Decoder
// and decodes without allocating once the scratch has grown to its largest
// posting. A Decoder is not safe for concurrent use: one per goroutine.
type Decoder struct {
	rowBytes int
	ids      []uint32
	rows     []byte
	rd       rowDecoder
}

// NewDecoder returns a Decoder for postings of rowBytes-byte vectors.
func NewDecoder(rowBytes int) (*Decoder, error) {
	if rowBytes <= 0 || rowBytes > MaxRowsBytes {
		return nil, fmt.Errorf("posting decoder: rowBytes %d out of range", rowBytes)
	}
	return &Decoder{rowBytes: rowBytes}, nil
}

// SetTable gives the Decoder the shared Huffman table of the file its
// postings come from (FileHeader.Table), needed by CodecHuffShared.
func (d *Decoder) SetTable(t *Table) { d.rd.table = t }

// Close releases the Decoder's compression state. The Decoder must not be
// used afterwards.
func (d *Decoder) Close() {
	if d.rd.zdec != nil {
		d.rd.zdec.Close()
		d.rd.zdec = nil
	}
}

// Decode checks and decodes the posting e whose extent starts at extent[0]
// (normally buf[e.Offset-e.ReadOffset():] of the e.ReadBytes() bytes read
// at e.ReadOffset(); only the first e.Bytes are looked at). It returns the ids, ascending, and their
// rows (len(ids)*rowBytes bytes); both alias the Decoder's scratch and are
// valid until the next call. The CRC is verified before anything else is
// trusted. Any inconsistency, including a count differing from e.Count,
// returns an error wrapping ErrCorrupt.
func (d *Decoder) Decode(extent []byte, e Entry) (ids []uint32, rows []byte, err error) {
	ids, rows, err = d.decode(extent, e)
	if err != nil {
		return nil, nil, fmt.Errorf("posting at offset %d: %w", e.Offset, err)
	}
	return ids, rows, nil
}

func (d *Decoder) decode(extent []byte, e Entry) ([]uint32, []byte, error) {
	if e.Bytes < extentOverhead {
		return nil, nil, fmt.Errorf("entry size %d below the minimum %d: %w", e.Bytes, extentOverhead, ErrCorrupt)
	}
	if uint64(len(extent)) < uint64(e.Bytes) {
		return nil, nil, fmt.Errorf("extent truncated: %d bytes, entry says %d: %w", len(extent), e.Bytes, ErrCorrupt)
	}
	x := extent[:e.Bytes]
	body := x[:len(x)-4]
	if got, want := binary.LittleEndian.Uint32(x[len(body):]), crc32c(body); got != want {
		return nil, nil, fmt.Errorf("crc %08x, computed %08x: %w", got, want, ErrCorrupt)
	}
	h, err := parseExtentHeader(body)
	if err != nil {
		return nil, nil, err
	}
	if h.count != e.Count {
		return nil, nil, fmt.Errorf("extent holds %d vectors, directory says %d: %w", h.count, e.Count, ErrCorrupt)
	}
	if uint64(h.rowsRaw) != uint64(h.count)*uint64(d.rowBytes) {
		return nil, nil, fmt.Errorf("%d row bytes for %d vectors of %d bytes: %w", h.rowsRaw, h.count, d.rowBytes, ErrCorrupt)
	}
	idsSec := body[ExtentHeaderSize : ExtentHeaderSize+int(h.idsLen)]
	rowsSec := body[ExtentHeaderSize+int(h.idsLen):]

	count := int(h.count)
	if cap(d.ids) < count {
		d.ids = make([]uint32, count)
	}
	ids := d.ids[:count]
	if err := decodeIDs(ids, idsSec); err != nil {
		return nil, nil, err
	}
	if cap(d.rows) < int(h.rowsRaw) {
		d.rows = make([]byte, h.rowsRaw)
	}
	rows := d.rows[:h.rowsRaw]
	if err := d.rd.decode(rows, h.codec, rowsSec, count, d.rowBytes); err != nil {
		return nil, nil, fmt.Errorf("codec %s: %w", h.codec, err)
	}
	return ids, rows, nil
}

type extentHeader struct {
	codec   Codec
	count   uint32
	rowsRaw uint32
	idsLen  uint32
	rowsLen uint32
}

// parseExtentHeader checks the fixed header against body, the extent
// without its trailing CRC.
func parseExtentHeader(body []byte) (extentHeader, error) {
	var h extentHeader
	if len(body) < ExtentHeaderSize {
		return h, fmt.Errorf("extent of %d bytes is shorter than its header: %w", len(body), ErrCorrupt)
	}
	if string(body[:4]) != extentMagic {
		return h, fmt.Errorf("bad extent magic %q: %w", body[:4], ErrCorrupt)
	}
	h.codec = Codec(body[4])
	if !h.codec.valid() {
		return h, fmt.Errorf("unknown codec %d: %w", body[4], ErrCorrupt)
	}
	if body[5] != idEncDeltaVarint {
		return h, fmt.Errorf("unknown id encoding %d: %w", body[5], ErrCorrupt)
	}
	if body[6] != 0 || body[7] != 0 {
		return h, fmt.Errorf("nonzero reserved header bytes: %w", ErrCorrupt)
	}
	h.count = binary.LittleEndian.Uint32(body[8:])
	h.rowsRaw = binary.LittleEndian.Uint32(body[12:])
	h.idsLen = binary.LittleEndian.Uint32(body[16:])
	h.rowsLen = binary.LittleEndian.Uint32(body[20:])
	if uint64(ExtentHeaderSize)+uint64(h.idsLen)+uint64(h.rowsLen) != uint64(len(body)) {
		return h, fmt.Errorf("header sizes %d+%d+%d do not match the extent's %d bytes: %w",
			ExtentHeaderSize, h.idsLen, h.rowsLen, len(body), ErrCorrupt)
	}
	// Every id takes at least one varint byte: this bounds count (and so the
	// scratch a corrupt header can make us allocate) by the extent's size.
	if h.count > h.idsLen {
		return h, fmt.Errorf("%d ids in %d id bytes: %w", h.count, h.idsLen, ErrCorrupt)
	}
	if h.rowsRaw > MaxRowsBytes {
		return h, fmt.Errorf("%d row bytes exceed the limit: %w", h.rowsRaw, ErrCorrupt)
	}
	return h, nil
}

// decodeIDs decodes len(ids) delta-varint ids that must use exactly all of
// src and be strictly ascending within uint32.
func decodeIDs(ids []uint32, src []byte) error {
	var prev uint64
	for i := range ids {
		v, n := binary.Uvarint(src)
		if n <= 0 {
			return fmt.Errorf("id %d: bad varint: %w", i, ErrCorrupt)
		}
		src = src[n:]
		if v > 0xFFFFFFFF {
			return fmt.Errorf("id %d: varint %d overflows uint32: %w", i, v, ErrCorrupt)
		}
		if i > 0 {
			if v == 0 {
				return fmt.Errorf("id %d: zero gap (duplicate id): %w", i, ErrCorrupt)
			}
			v += prev
		}
		if v > 0xFFFFFFFF {
			return fmt.Errorf("id %d: %d overflows uint32: %w", i, v, ErrCorrupt)
		}
		ids[i] = uint32(v)
		prev = v
	}
	if len(src) != 0 {
		return fmt.Errorf("%d bytes after the last id: %w", len(src), ErrCorrupt)
	}
	return nil
}
