package posting

import (
	"encoding/binary"
	"unsafe"
)

func entrySize() uintptr { return unsafe.Sizeof(Entry{}) }

func putCRC(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }

// testID is the build id the tests write.
var testID = [16]byte{0xb1, 0x1d, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}
