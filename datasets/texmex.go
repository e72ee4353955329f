package datasets

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ConvertTexmex converts a TEXMEX .fvecs, .bvecs or .ivecs file (each record an
// int32 d followed by d float32, uint8 or int32 values) into .fbin, .u8bin or
// .ibin at dst, keeping the first crop records when crop > 0. It streams, so
// files larger than memory convert; dst appears only when complete. It returns
// the number of rows and the dimension written.
func ConvertTexmex(src, dst string, crop int) (rows, dim int, err error) {
	var elem int
	ext := strings.ToLower(filepath.Ext(src))
	switch ext {
	case ".fvecs", ".ivecs":
		elem = 4
	case ".bvecs":
		elem = 1
	default:
		return 0, 0, fmt.Errorf("%s: not a TEXMEX file (want .fvecs, .bvecs or .ivecs)", src)
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, 0, err
	}
	r := bufio.NewReaderSize(in, 1<<20)
	var dbuf [4]byte
	if _, err := io.ReadFull(r, dbuf[:]); err != nil {
		return 0, 0, fmt.Errorf("%s: truncated: no first record", src)
	}
	d := int(int32(binary.LittleEndian.Uint32(dbuf[:])))
	if d <= 0 || d > MaxDim {
		return 0, 0, fmt.Errorf("%s: first record has dimension %d (want 1..%d)", src, d, MaxDim)
	}
	recBytes := int64(4 + d*elem)
	if st.Size()%recBytes != 0 {
		return 0, 0, fmt.Errorf("%s: truncated or not dimension %d throughout: %d bytes is not a multiple of the %d-byte record", src, d, st.Size(), recBytes)
	}
	n := int(st.Size() / recBytes)
	if crop > 0 {
		if crop > n {
			return 0, 0, fmt.Errorf("%s: crop to %d rows: the file has only %d", src, crop, n)
		}
		n = crop
	}

	out, err := createAtomic(dst)
	if err != nil {
		return 0, 0, err
	}
	var h [8]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	binary.LittleEndian.PutUint32(h[4:], uint32(d))
	out.w.Write(h[:])
	row := make([]byte, d*elem)
	for i := 0; i < n; i++ {
		if i > 0 {
			if _, err := io.ReadFull(r, dbuf[:]); err != nil {
				out.abort()
				return 0, 0, fmt.Errorf("%s: record %d: %w", src, i, err)
			}
			if got := int(int32(binary.LittleEndian.Uint32(dbuf[:]))); got != d {
				out.abort()
				return 0, 0, fmt.Errorf("%s: record %d has dimension %d, the first had %d", src, i, got, d)
			}
		}
		if _, err := io.ReadFull(r, row); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = errors.New("truncated")
			}
			out.abort()
			return 0, 0, fmt.Errorf("%s: record %d: %w", src, i, err)
		}
		if ext == ".fvecs" {
			if err := CheckFinite(Float32, row, d, i); err != nil {
				out.abort()
				return 0, 0, fmt.Errorf("%s: %w", src, err)
			}
		}
		if _, err := out.w.Write(row); err != nil {
			out.abort()
			return 0, 0, fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if err := out.commit(nil); err != nil {
		return 0, 0, err
	}
	return n, d, nil
}
