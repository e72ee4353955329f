package posting

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// describeHexMax is the longest field Describe prints in full; longer fields
// show their first describeHexMax bytes and a length.
const describeHexMax = 16

// describeIDsMax is the most ids Describe lists for one posting.
const describeIDsMax = 8

// Describe writes an annotated dump of a postings file: one line per field
// with its byte range, its bytes in hex and what they mean. It walks the
// extents by their sizes: after an extent, the next one starts right away
// unless the byte there is zero, which marks padding up to the next page
// boundary (an extent starts with the magic "SPPL"). It stops with an
// error at the first field it cannot make sense of, after printing what it
// could, and reports a file that does not end on a page boundary.
func Describe(w io.Writer, fileBytes []byte) error {
	d := describer{w: w, b: fileBytes}
	if len(fileBytes) < PageSize {
		return fmt.Errorf("describe: file of %d bytes has no header page: %w", len(fileBytes), ErrCorrupt)
	}
	h, err := ReadFileHeader(fileBytes)
	d.line(0, 8, "file magic")
	d.line(8, 12, fmt.Sprintf("format version %d", binary.LittleEndian.Uint32(fileBytes[8:])))
	d.line(12, 13, fmt.Sprintf("writer codec %s", Codec(fileBytes[12])))
	d.line(13, 16, "reserved")
	d.line(16, 20, fmt.Sprintf("rowBytes %d", binary.LittleEndian.Uint32(fileBytes[16:])))
	d.line(20, 24, fmt.Sprintf("page size %d", binary.LittleEndian.Uint32(fileBytes[20:])))
	zero, zeroTo := uint64(24), uint64(fileHdrCRCOff)
	version := binary.LittleEndian.Uint32(fileBytes[8:])
	if version >= fileVersion4 {
		zeroTo = fileHdrIDOff
	}
	if version == fileVersion3 || version == fileVersion4 {
		n := uint64(binary.LittleEndian.Uint32(fileBytes[fileHdrTableLen:]))
		d.line(fileHdrTableLen, fileHdrTableOff, fmt.Sprintf("shared Huffman table bytes %d", n))
		if n > 0 && n <= MaxTableBytes {
			d.line(fileHdrTableOff, fileHdrTableOff+n, "shared Huffman table (huff0)")
		}
		zero = fileHdrTableOff + min(n, MaxTableBytes)
	}
	d.line(zero, zeroTo, "reserved (zero)")
	if zeroTo == fileHdrIDOff {
		d.line(fileHdrIDOff, fileHdrCRCOff, "build id")
	}
	d.line(fileHdrCRCOff, PageSize, "CRC32C of [0,4092)")
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	dec, err := NewDecoder(int(h.RowBytes))
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	dec.SetTable(h.Table)
	defer dec.Close()
	off, n := uint64(PageSize), 0
	for off < uint64(len(fileBytes)) {
		if fileBytes[off] == 0 {
			end, err := d.padding(off)
			if err != nil {
				return fmt.Errorf("describe: padding at %d: %w", off, err)
			}
			off = end
			continue
		}
		end, err := d.extent(dec, n, off, int(h.RowBytes))
		if err != nil {
			return fmt.Errorf("describe: posting %d at %d: %w", n, off, err)
		}
		off = end
		n++
	}
	fmt.Fprintf(w, "end of file at %d\n", len(fileBytes))
	if len(fileBytes)%PageSize != 0 {
		return fmt.Errorf("describe: file length %d is not a whole number of pages: %w", len(fileBytes), ErrCorrupt)
	}
	return d.err
}

type describer struct {
	w   io.Writer
	b   []byte
	err error
}

func (d *describer) line(from, to uint64, comment string) {
	field := d.b[from:to]
	hex := fmt.Sprintf("% x", field[:min(len(field), describeHexMax)])
	if len(field) > describeHexMax {
		hex += fmt.Sprintf(" ... (%d bytes)", len(field))
	}
	if _, err := fmt.Fprintf(d.w, "[%6d,%6d) %-48s %s\n", from, to, hex, comment); err != nil && d.err == nil {
		d.err = err
	}
}

// padding prints the zero padding from off to the next page boundary (or
// end of file) and returns where it ends.
func (d *describer) padding(off uint64) (uint64, error) {
	if off%PageSize == 0 {
		// The Writer pads only from mid-page; a page starts with an extent.
		return 0, fmt.Errorf("page at %d starts with %#x, not an extent: %w", off, d.b[off], ErrCorrupt)
	}
	end := min((off/PageSize+1)*PageSize, uint64(len(d.b)))
	for i := off; i < end; i++ {
		if d.b[i] != 0 {
			d.line(off, i, "padding")
			return 0, fmt.Errorf("nonzero byte %#x at %d before the page boundary at %d: %w", d.b[i], i, end, ErrCorrupt)
		}
	}
	d.line(off, end, "padding to the page boundary")
	return end, nil
}

// extent prints the extent at off and returns where it ends.
func (d *describer) extent(dec *Decoder, n int, off uint64, rowBytes int) (uint64, error) {
	if off+ExtentHeaderSize > uint64(len(d.b)) {
		return 0, fmt.Errorf("extent header past end of file: %w", ErrCorrupt)
	}
	x := d.b[off:]
	idsLen := binary.LittleEndian.Uint32(x[16:])
	rowsLen := binary.LittleEndian.Uint32(x[20:])
	size := uint64(extentOverhead) + uint64(idsLen) + uint64(rowsLen)
	if size > uint64(len(x)) || size > 1<<31 {
		return 0, fmt.Errorf("extent of %d bytes past end of file: %w", size, ErrCorrupt)
	}
	e := Entry{Offset: off, Bytes: uint32(size), Count: binary.LittleEndian.Uint32(x[8:])}
	fmt.Fprintf(d.w, "posting %d: extent [%d,%d), %d bytes; aligned read [%d,%d), %d page(s)",
		n, off, off+size, e.Bytes, e.ReadOffset(), e.ReadOffset()+uint64(e.ReadBytes()), e.Pages())
	if e.Pages() > minPages(e.Bytes) {
		fmt.Fprintf(d.w, " (more than the %d its size needs)", minPages(e.Bytes))
	}
	fmt.Fprintln(d.w)
	d.line(off, off+4, "extent magic")
	d.line(off+4, off+5, fmt.Sprintf("codec %s", Codec(x[4])))
	d.line(off+5, off+6, "id encoding (0 = sorted delta uvarint)")
	d.line(off+6, off+8, "reserved")
	d.line(off+8, off+12, fmt.Sprintf("count %d", e.Count))
	d.line(off+12, off+16, fmt.Sprintf("raw rows bytes %d", binary.LittleEndian.Uint32(x[12:])))
	d.line(off+16, off+20, fmt.Sprintf("ids section bytes %d", idsLen))
	d.line(off+20, off+24, fmt.Sprintf("rows section bytes %d", rowsLen))
	ids, rows, err := dec.Decode(x, e)
	idsAt := off + ExtentHeaderSize
	rowsAt := idsAt + uint64(idsLen)
	crcAt := rowsAt + uint64(rowsLen)
	if err != nil {
		d.line(idsAt, rowsAt, "ids (undecodable)")
		d.line(rowsAt, crcAt, "rows (undecodable)")
		d.line(crcAt, crcAt+4, "CRC32C")
		return 0, err
	}
	idDesc := fmt.Sprint(ids)
	if len(ids) > describeIDsMax {
		idDesc = fmt.Sprintf("%v ... (%d ids)", ids[:describeIDsMax], len(ids))
	}
	d.line(idsAt, rowsAt, "ids "+idDesc)
	var rowDesc strings.Builder
	for i := range ids {
		if i == 4 {
			fmt.Fprintf(&rowDesc, " ...")
			break
		}
		fmt.Fprintf(&rowDesc, " %d:[% x]", ids[i], rows[i*rowBytes:min((i+1)*rowBytes, i*rowBytes+8)])
	}
	d.line(rowsAt, crcAt, fmt.Sprintf("rows, decoded%s", rowDesc.String()))
	d.line(crcAt, crcAt+4, "CRC32C of the extent so far (ok)")
	return crcAt + 4, nil
}
