package posting

import (
	"encoding/binary"
	"unsafe"
)

func entrySize() uintptr { return unsafe.Sizeof(Entry{}) }

func putCRC(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
