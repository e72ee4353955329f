//go:build linux

package iouring

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// AlignedBuffer returns a page-aligned buffer of size bytes, mapped
// anonymously outside the Go heap: the garbage collector neither moves nor
// frees it, so it can safely be handed to the kernel for asynchronous reads
// (and, if ever needed, registered with IORING_REGISTER_BUFFERS). Its
// capacity is size rounded up to the page size; it is zero-filled.
//
// The buffer must be released with FreeBuffer (passing the slice returned
// here, or a reslice of it starting at its first byte); it is never
// collected otherwise. Do not use it after FreeBuffer: the memory is
// unmapped and accesses fault.
//
// (github.com/ncw/directio.AlignedBlock is not used because it calls
// log.Fatal when alignment fails, and its heap buffers are only as stable as
// the GC's current non-moving policy.)
func AlignedBuffer(size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("iouring: aligned buffer of %d bytes: size must be positive", size)
	}
	page := os.Getpagesize()
	mapped := (size + page - 1) / page * page
	b, err := unix.Mmap(-1, 0, mapped, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("iouring: aligned buffer of %d bytes: mmap: %w", size, err)
	}
	return b[:size], nil
}

// FreeBuffer unmaps a buffer returned by AlignedBuffer (or a reslice of it
// that starts at its first byte). Passing anything else (a heap slice, a
// slice starting further in, an already freed buffer) returns an error and
// changes nothing.
func FreeBuffer(b []byte) error {
	if cap(b) == 0 {
		return fmt.Errorf("iouring: free buffer: empty slice")
	}
	// x/sys's Munmap wants the whole mapping (len == cap, same start).
	if err := unix.Munmap(b[:cap(b)]); err != nil {
		return fmt.Errorf("iouring: free buffer of %d bytes: %w", cap(b), err)
	}
	return nil
}
