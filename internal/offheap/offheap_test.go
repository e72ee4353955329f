package offheap

import (
	"testing"
	"unsafe"
)

func TestArena(t *testing.T) {
	var a Arena
	b, err := a.Bytes(10_000)
	if err != nil || len(b) != 10_000 {
		t.Fatalf("Bytes: %d bytes, %v", len(b), err)
	}
	if uintptr(unsafe.Pointer(&b[0]))%4096 != 0 {
		t.Errorf("not page-aligned")
	}
	for i := range b {
		if b[i] != 0 {
			t.Fatalf("byte %d is %d, want zero", i, b[i])
		}
	}
	b[9_999] = 1
	type entry struct {
		Off   uint64
		Count uint32
	}
	es, err := Slice[entry](&a, 1000)
	if err != nil || len(es) != 1000 {
		t.Fatalf("Slice: %d, %v", len(es), err)
	}
	es[999] = entry{Off: 1 << 40, Count: 7}
	if es[999].Off != 1<<40 || es[0] != (entry{}) {
		t.Errorf("entries: %+v %+v", es[0], es[999])
	}
	if got, want := a.Mapped(), int64(12288+16384); got != want {
		t.Errorf("Mapped = %d, want %d", got, want)
	}
	if err := a.Free(); err != nil {
		t.Fatal(err)
	}
	if a.Mapped() != 0 || a.Free() != nil {
		t.Errorf("after Free: %d mapped", a.Mapped())
	}
	if _, err := a.Bytes(-1); err == nil {
		t.Error("Bytes(-1) succeeded")
	}
}

// A nil Arena allocates on the heap, so callers need not care.
func TestNilArena(t *testing.T) {
	var a *Arena
	b, err := a.Bytes(5)
	if err != nil || len(b) != 5 {
		t.Fatalf("Bytes: %v %v", b, err)
	}
	s, err := Slice[uint32](a, 3)
	if err != nil || len(s) != 3 {
		t.Fatalf("Slice: %v %v", s, err)
	}
	if a.Free() != nil || a.Mapped() != 0 {
		t.Error("nil Free or Mapped")
	}
}
