package datasets

import (
	"fmt"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/gospann/spann/internal/vec"
)

// ElemType is the element type of a vector file.
type ElemType uint8

const (
	// Float32 vectors (.fbin).
	Float32 ElemType = iota + 1
	// Uint8 vectors (.u8bin).
	Uint8
	// Int8 vectors (.i8bin).
	Int8
)

// MaxDim bounds the vector length accepted from files; it is also the limit up
// to which the integer distance kernels are exact (vec.MaxIntDim).
const MaxDim = vec.MaxIntDim

// Size returns the bytes per element.
func (t ElemType) Size() int {
	if t == Float32 {
		return 4
	}
	return 1
}

// String returns the type's name ("float32", "uint8", "int8").
func (t ElemType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Ext returns the file extension of the type, with its dot.
func (t ElemType) Ext() string {
	switch t {
	case Float32:
		return ".fbin"
	case Uint8:
		return ".u8bin"
	case Int8:
		return ".i8bin"
	}
	return ".bin"
}

// ParseType parses a type name: float32/fbin/f32, uint8/u8bin/u8, int8/i8bin/i8.
func ParseType(s string) (ElemType, error) {
	switch strings.TrimPrefix(strings.ToLower(s), ".") {
	case "float32", "fbin", "f32", "float":
		return Float32, nil
	case "uint8", "u8bin", "u8":
		return Uint8, nil
	case "int8", "i8bin", "i8":
		return Int8, nil
	}
	return 0, fmt.Errorf("unknown element type %q (want float32, uint8 or int8)", s)
}

// TypeFromPath infers the element type from a file's extension.
func TypeFromPath(path string) (ElemType, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".fbin":
		return Float32, nil
	case ".u8bin":
		return Uint8, nil
	case ".i8bin":
		return Int8, nil
	}
	return 0, fmt.Errorf("%s: cannot tell the element type from the extension (want .fbin, .u8bin or .i8bin, or give the type explicitly)", path)
}

// Scalar is every element type found in the files of this package: vector
// elements plus the int32 ids of ground-truth and result files.
type Scalar interface{ vec.Elem | int32 }

// Rows reinterprets raw little-endian row bytes as elements of type T without
// copying. len(b) must be a multiple of the element size; b must be aligned to
// it for float32 (buffers from this package are).
func Rows[T Scalar](b []byte) []T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), len(b)/size)
}

// Bytes reinterprets elements as their raw little-endian bytes without copying.
func Bytes[T Scalar](v []T) []byte {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*size)
}

func init() {
	// The on-disk formats are little-endian and Rows reinterprets them in place.
	x := uint16(1)
	if *(*byte)(unsafe.Pointer(&x)) != 1 {
		panic("datasets: big-endian platforms are not supported")
	}
}
