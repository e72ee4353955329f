//go:build linux

// Package offheap allocates an open index's long-lived arrays (head
// vectors, head-graph lists, the posting directory) in anonymous memory
// mappings outside the Go heap, freed together when the index closes.
//
// Why: those arrays are most of a search process's memory (about 40 MB of
// 49 on realsift-1M) and never change after Open, yet on the heap they set
// the collector's pace: GOGC lets garbage grow to a percentage of the live
// heap, so every percent of them was a few hundred KiB of garbage resident
// between collections (peak RSS rose 1 MiB with every batch a sweep ran).
// Off the heap, the live heap is the few MiB that searches actually churn,
// and a mapping's pages that are never written (the graph's lists are
// allocated at an upper bound) cost address space, not memory (with huge
// pages, below, up to 2 MiB of them per mapping: search RSS on realsift-1M
// rose 1.5 MiB).
//
// Only pointer-free element types may live here: the collector does not
// scan these mappings, so a pointer stored in them would not keep its
// target alive.
package offheap

import (
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Arena is a set of mappings freed together. The zero Arena is ready to
// use; a nil *Arena allocates on the Go heap instead (and Free is a no-op),
// so that code taking an Arena works unchanged for callers without one.
// Safe for concurrent use.
type Arena struct {
	mu    sync.Mutex
	maps  [][]byte
	bytes int64
}

// Bytes returns n zeroed bytes, page-aligned when a is not nil.
func (a *Arena) Bytes(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("offheap: %d bytes", n)
	}
	if a == nil {
		return make([]byte, n), nil
	}
	if n == 0 {
		return []byte{}, nil
	}
	page := os.Getpagesize()
	mapped := (n + page - 1) / page * page
	m, err := mapAnon(mapped, mapped >= hugeMin)
	if err != nil {
		return nil, fmt.Errorf("offheap: map %d bytes: %w", n, err)
	}
	a.mu.Lock()
	a.maps = append(a.maps, m)
	a.bytes += int64(mapped)
	a.mu.Unlock()
	return m[:n], nil
}

// Slice returns a zeroed slice of n Ts from a (from the heap if a is nil).
// T must hold no pointers (see the package comment).
func Slice[T any](a *Arena, n int) ([]T, error) {
	if a == nil {
		return make([]T, n), nil
	}
	var zero T
	size := int(unsafe.Sizeof(zero))
	if n < 0 || (size > 0 && n > (1<<62)/size) {
		return nil, fmt.Errorf("offheap: %d elements of %d bytes", n, size)
	}
	b, err := a.Bytes(n * size)
	if err != nil || n == 0 || size == 0 {
		return make([]T, n), err
	}
	// Mappings are page-aligned, so any element type's alignment holds.
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
}

// Mapped returns the bytes a has mapped (0 for nil).
func (a *Arena) Mapped() int64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bytes
}

// Free unmaps everything a allocated. Nothing it returned may be used
// afterwards: the memory is gone and an access faults. Calling Free again
// does nothing.
func (a *Arena) Free() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var first error
	for _, m := range a.maps {
		if err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(m)), uintptr(len(m))); err != nil && first == nil {
			first = fmt.Errorf("offheap: unmap %d bytes: %w", len(m), err)
		}
	}
	a.maps, a.bytes = nil, 0
	return first
}

// hugePage is the size of a transparent huge page on amd64 and arm64
// (with 4 KiB base pages).
const hugePage = 2 << 20

// hugeMin is the smallest mapping given huge pages.
const hugeMin = 2 * hugePage

// mapAnon maps n bytes (a multiple of the base page) of zeroed memory;
// if huge, starting on a huge page boundary, with transparent huge pages
// asked for.
//
// Why huge pages: searches touch the head vectors and graph lists at
// random, and with 4 KiB pages nearly every touch missed the TLB: pprof of
// the server on realsift-1M put 23 % of its CPU in copying head rows
// (memindex Searcher.run), waiting on those misses. Linux gives huge pages
// to anonymous memory only where asked (its default "madvise" mode), and
// only to ranges aligned to 2 MiB, so the mapping is made 2 MiB larger and
// trimmed to an aligned start. Where the kernel has no huge pages to give,
// the mapping works as an unadvised one.
//
// The pointer calls (MmapPtr, MunmapPtr) are used rather than unix.Mmap,
// whose Munmap refuses part of a mapping.
func mapAnon(n int, huge bool) ([]byte, error) {
	const prot, flags = unix.PROT_READ | unix.PROT_WRITE, unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	if !huge {
		p, err := unix.MmapPtr(-1, 0, nil, uintptr(n), prot, flags)
		if err != nil {
			return nil, err
		}
		return unsafe.Slice((*byte)(p), n), nil
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n+hugePage), prot, flags)
	if err != nil {
		return nil, err
	}
	lead := (hugePage - uintptr(p)%hugePage) % hugePage
	if lead > 0 {
		if err := unix.MunmapPtr(p, lead); err != nil {
			unix.MunmapPtr(p, uintptr(n+hugePage))
			return nil, err
		}
	}
	start := unsafe.Add(p, lead)
	if tail := uintptr(hugePage) - lead; tail > 0 {
		if err := unix.MunmapPtr(unsafe.Add(start, n), tail); err != nil {
			unix.MunmapPtr(start, uintptr(n)+tail)
			return nil, err
		}
	}
	m := unsafe.Slice((*byte)(start), n)
	// Advice is best effort: a kernel without THP refuses it, and the
	// mapping is then as good as one never advised.
	_ = unix.Madvise(m, unix.MADV_HUGEPAGE)
	return m, nil
}
