package spann

import (
	"testing"

	"github.com/gospann/spann/posting"
)

// Runs are first fit, never overlap, come back when put, and a round
// larger than an arena gets a buffer of its own.
func TestPagePool(t *testing.T) {
	var p pagePool
	defer p.close()
	const ps = posting.PageSize
	a, err := p.get(1)
	if err != nil || len(a.buf) != ps || a.first != 0 {
		t.Fatalf("first run: %+v %v", a, err)
	}
	b, _ := p.get(3*ps + 1) // 4 pages
	c, _ := p.get(70 * ps)  // crosses a bitmap word
	if b.first != 1 || b.pages != 4 || c.first != 5 || c.pages != 70 || p.inUse() != 75 {
		t.Fatalf("runs at %d+%d and %d+%d, %d in use", b.first, b.pages, c.first, c.pages, p.inUse())
	}
	c.buf[len(c.buf)-1] = 7 // the run is writable to its end
	p.put(b)
	d, _ := p.get(2 * ps) // first fit: into b's hole
	if d.first != 1 {
		t.Errorf("2 pages after freeing 1..4 went to %d, want 1", d.first)
	}
	big, err := p.get(arenaPages*ps + 1)
	if err != nil || big.a != nil || len(big.buf) != (arenaPages+1)*ps {
		t.Fatalf("oversized run: %d bytes, own buffer %v, %v", len(big.buf), big.a == nil, err)
	}
	p.put(big)
	// Filling the first arena opens a second; freeing everything empties both.
	var held []span
	for i := 0; i < 10; i++ {
		s, err := p.get(40 * ps)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
	}
	if len(p.arenas) != 2 {
		t.Errorf("%d arenas after 400 more pages, want 2", len(p.arenas))
	}
	for _, s := range append(held, a, c, d) {
		p.put(s)
	}
	if p.inUse() != 0 {
		t.Errorf("%d pages still in use after every run was put", p.inUse())
	}
	if full, _ := p.get(arenaPages * ps); full.a != p.arenas[0] || full.first != 0 {
		t.Errorf("a whole-arena run after freeing: arena %p first %d", full.a, full.first)
	}
}

// putPart gives back exactly the pages of one read's slice of a run, and
// nothing of a buffer of its own.
func TestPagePoolPutPart(t *testing.T) {
	var p pagePool
	defer p.close()
	const ps = posting.PageSize
	a, _ := p.get(2 * ps)
	b, _ := p.get(6 * ps)        // pages 2..7
	p.putPart(b, b.buf[ps:3*ps]) // pages 3 and 4
	if p.inUse() != 6 {
		t.Fatalf("%d pages in use after giving back 2 of 8, want 6", p.inUse())
	}
	c, _ := p.get(2 * ps)
	if c.first != 3 {
		t.Errorf("2 pages went to %d, want the freed 3", c.first)
	}
	p.putPart(b, b.buf[:ps])
	p.putPart(b, b.buf[3*ps:])
	p.put(a)
	p.put(c)
	if p.inUse() != 0 {
		t.Errorf("%d pages in use after every part was given back", p.inUse())
	}
	big, _ := p.get((arenaPages + 1) * ps)
	p.putPart(big, big.buf[:ps]) // kept until put
	p.put(big)
}
