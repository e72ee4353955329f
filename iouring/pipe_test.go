//go:build linux

package iouring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// pipeRounds keeps up to inFlight random batches (1..maxBatch requests of
// 1..3 pages, some past EOF, one in five batches with a misaligned request)
// in flight on p, polling without waiting after every Start and waiting
// when all are busy, for total batches. Every request must be handed back
// exactly once, complete, and only after its batch was started; Pending
// must count what is outstanding.
func pipeRounds(p Pipe, data []byte, seed uint64, total, inFlight, maxBatch int) error {
	const maxPages = 3
	arena, err := AlignedBuffer(inFlight * maxBatch * maxPages * page)
	if err != nil {
		return err
	}
	defer FreeBuffer(arena)
	rng := rand.New(rand.NewPCG(seed, 5))
	filePages := (len(data) + page - 1) / page
	type slot struct {
		b    Batch
		seen []int
		bad  int // index of the misaligned request, -1 for none
		busy bool
	}
	slots := make([]*slot, inFlight)
	for s := range slots {
		slots[s] = &slot{b: Batch{Reqs: make([]Request, maxBatch), Tag: s}, seen: make([]int, maxBatch)}
	}
	var cbErr error
	done := func(b *Batch, i int) {
		s := slots[b.Tag]
		if !s.busy && cbErr == nil {
			cbErr = fmt.Errorf("slot %d: request %d handed back while its batch is not started", b.Tag, i)
		}
		s.seen[i]++
		r := &b.Reqs[i]
		switch {
		case i == s.bad:
			if !errors.Is(r.Err, ErrMisaligned) && cbErr == nil {
				cbErr = fmt.Errorf("misaligned request handed back with Err=%v", r.Err)
			}
		default:
			if e := checkBatch(data, b.Reqs[i:i+1]); e != nil && cbErr == nil {
				cbErr = fmt.Errorf("slot %d request %d: %w", b.Tag, i, e)
			}
		}
	}
	// retire checks every batch that has completed and frees its slot.
	retire := func() error {
		for _, s := range slots {
			if !s.busy || s.b.Pending() > 0 {
				continue
			}
			for i := range s.b.Reqs {
				if s.seen[i] != 1 {
					return fmt.Errorf("slot %d request %d handed back %d times", s.b.Tag, i, s.seen[i])
				}
			}
			s.busy = false
		}
		return nil
	}
	busy := func() int {
		n := 0
		for _, s := range slots {
			if s.busy {
				n++
			}
		}
		return n
	}
	for started := 0; started < total || busy() > 0; {
		for _, s := range slots {
			if s.busy || started == total {
				continue
			}
			n := 1 + rng.IntN(maxBatch)
			base := s.b.Tag * maxBatch * maxPages * page
			s.b.Reqs, s.bad = s.b.Reqs[:n], -1
			if rng.IntN(5) == 0 {
				s.bad = rng.IntN(n)
			}
			for i := range n {
				pages := 1 + rng.IntN(maxPages)
				buf := arena[base+i*maxPages*page : base+(i*maxPages+pages)*page]
				off := int64(rng.IntN(filePages+1)) * page
				if i == s.bad {
					off += 512
				}
				s.b.Reqs[i] = Request{Offset: off, Buf: buf, N: -1}
				s.seen[i] = 0
			}
			if err := p.Start(&s.b); err != nil {
				return fmt.Errorf("Start: %w", err)
			}
			s.busy = true
			started++
			if err := p.Poll(false, done); err != nil {
				return fmt.Errorf("Poll(false): %w", err)
			}
			if err := retire(); err != nil {
				return err
			}
		}
		if got, want := p.Pending(), busy(); got != want {
			return fmt.Errorf("Pending() = %d, want %d", got, want)
		}
		if err := p.Poll(true, done); err != nil {
			return fmt.Errorf("Poll(true): %w", err)
		}
		if cbErr != nil {
			return cbErr
		}
		if err := retire(); err != nil {
			return err
		}
	}
	if p.Pending() != 0 {
		return fmt.Errorf("Pending() = %d after every batch completed", p.Pending())
	}
	return cbErr
}

func TestPipe(t *testing.T) {
	const size = 1<<20 + 1234
	path, data := testFile(t, size, 21)
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			r := mustOpen(t, bc, path, data)
			p := NewPipe(r)
			if b := r.Backend(); (b == BackendUring || b == BackendAIO) && NewPipe(r) != p {
				t.Fatal("NewPipe returned a second Pipe for the same Reader")
			}
			// Ring depth 4 or 8 with up to 4×12 requests in flight
			// exercises the waiting queue; depth 64 keeps all in flight.
			if err := pipeRounds(p, data, 1, 60, 4, 12); err != nil {
				t.Fatal(err)
			}
			// The Reader still works for plain batches afterwards.
			if err := randomBatches(r, data, 2, 5, 16); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// An empty batch is complete as soon as it is started.
func TestPipeEmptyBatch(t *testing.T) {
	path, data := testFile(t, 8*page, 22)
	for _, bc := range backends() {
		t.Run(bc.name, func(t *testing.T) {
			p := NewPipe(mustOpen(t, bc, path, data))
			var b Batch
			if err := p.Start(&b); err != nil {
				t.Fatal(err)
			}
			calls := 0
			if err := p.Poll(true, func(*Batch, int) { calls++ }); err != nil {
				t.Fatal(err)
			}
			if b.Pending() != 0 || p.Pending() != 0 || calls != 0 {
				t.Fatalf("empty batch: Pending %d, pipe Pending %d, %d calls", b.Pending(), p.Pending(), calls)
			}
		})
	}
}

// nativeBackends are the backends with a native Pipe.
func nativeBackends() []backendCase {
	return []backendCase{{"uring", uringBackend(8, true)}, {"aio", aioBackend(8)}}
}

// On io_uring and AIO, Read refuses to run while the Pipe has batches in
// flight on the same ring or context (their completions would be mixed),
// and Start after Close fails with ErrClosed.
func TestNativePipeExclusive(t *testing.T) {
	for _, bc := range nativeBackends() {
		t.Run(bc.name, func(t *testing.T) { testPipeExclusive(t, bc) })
	}
}

func testPipeExclusive(t *testing.T, bc backendCase) {
	path, data := testFile(t, 16*page, 23)
	r := mustOpen(t, bc, path, data)
	p := NewPipe(r)
	buf, err := AlignedBuffer(2 * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	b := Batch{Reqs: []Request{{Offset: 0, Buf: buf[:page]}}}
	if err := p.Start(&b); err != nil {
		t.Fatal(err)
	}
	if err := r.Read([]Request{{Offset: page, Buf: buf[page:]}}); !errors.Is(err, ErrConcurrentUse) {
		t.Fatalf("Read with a pipe batch pending: %v, want ErrConcurrentUse", err)
	}
	for b.Pending() > 0 {
		if err := p.Poll(true, func(*Batch, int) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkBatch(data, b.Reqs); err != nil {
		t.Fatal(err)
	}
	if err := r.Read([]Request{{Offset: page, Buf: buf[page:]}}); err != nil {
		t.Fatalf("Read after the pipe drained: %v", err)
	}
	r.Close()
	if err := p.Start(&b); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// Steady-state pipelined reading allocates nothing on io_uring and AIO.
func TestNativePipeAllocs(t *testing.T) {
	for _, bc := range nativeBackends() {
		t.Run(bc.name, func(t *testing.T) { testPipeAllocs(t, bc) })
	}
}

func testPipeAllocs(t *testing.T, bc backendCase) {
	path, data := testFile(t, 64*page, 24)
	r := mustOpen(t, bc, path, data)
	p := NewPipe(r)
	buf, err := AlignedBuffer(3 * 8 * page)
	if err != nil {
		t.Fatal(err)
	}
	defer FreeBuffer(buf)
	batches := make([]Batch, 3)
	for j := range batches {
		batches[j].Reqs = make([]Request, 8)
	}
	done := func(*Batch, int) {}
	allocs := testing.AllocsPerRun(20, func() {
		for j := range batches {
			for i := range batches[j].Reqs {
				batches[j].Reqs[i] = Request{Offset: int64((j*8+i)*5%60) * page, Buf: buf[(j*8+i)*page : (j*8+i+1)*page]}
			}
			if err := p.Start(&batches[j]); err != nil {
				t.Fatal(err)
			}
			if err := p.Poll(false, done); err != nil {
				t.Fatal(err)
			}
		}
		for p.Pending() > 0 {
			if err := p.Poll(true, done); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per round, want 0", allocs)
	}
	for j := range batches {
		if err := checkBatch(data, batches[j].Reqs); err != nil {
			t.Fatal(err)
		}
	}
}
