//go:build linux

package iouring

import (
	"errors"
	"fmt"
)

// Memory is a Reader over a byte slice, for tests of code that reads
// postings: it enforces the same alignment rules and EOF semantics as the
// file backends (including buffer-address alignment, so code that passes
// unaligned heap buffers fails here as it would under O_DIRECT).
//
// Concurrency: like every Reader, one goroutine at a time. The data slice is
// only read and may be shared by many Memory readers.
type Memory struct {
	busyGuard
	data   []byte
	align  int
	closed bool
}

// NewMemory returns a Reader over data. alignment must be a power of two
// (use FileAlignment to mimic the file backends).
func NewMemory(data []byte, alignment int) (*Memory, error) {
	if alignment <= 0 || alignment&(alignment-1) != 0 {
		return nil, fmt.Errorf("iouring: memory reader: alignment %d is not a positive power of two", alignment)
	}
	return &Memory{data: data, align: alignment}, nil
}

func (m *Memory) Alignment() int  { return m.align }
func (m *Memory) Backend() string { return BackendMem }

// ReadEach reads the whole batch, then calls done for each request.
func (m *Memory) ReadEach(reqs []Request, done func(i int)) error {
	err := m.Read(reqs)
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrConcurrentUse) {
		return err
	}
	return eachAfter(reqs, err, done)
}

func (m *Memory) Read(reqs []Request) error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	if m.closed {
		return ErrClosed
	}
	prepare(reqs, m.align)
	for i := range reqs {
		r := &reqs[i]
		if needsIO(r) && r.Offset < int64(len(m.data)) {
			r.N = copy(r.Buf, m.data[r.Offset:])
		}
	}
	return summarize(reqs)
}

func (m *Memory) Close() error {
	if err := m.enter(); err != nil {
		return err
	}
	defer m.leave()
	m.closed = true
	return nil
}
