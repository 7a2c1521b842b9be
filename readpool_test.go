package batchconn

import "testing"

func TestReadPoolRoundsDownToAPowerOfTwo(t *testing.T) {
	p := &readPool{slotSize: 100}
	for _, tc := range []struct{ ask, want int }{{1, 1}, {2, 2}, {3, 2}, {5, 4}, {63, 32}, {64, 64}, {1024, 1024}} {
		b := p.get(tc.ask, false)
		if b == nil || len(b.ring) != tc.want {
			t.Fatalf("get(%d) = %v, want a block of %d slots", tc.ask, b, tc.want)
		}
		for i := range b.ring {
			if len(b.ring[i].buf) != p.slotSize || cap(b.ring[i].buf) != p.slotSize {
				t.Fatalf("slot %d of %d has %d bytes (cap %d), want %d", i, tc.want, len(b.ring[i].buf), cap(b.ring[i].buf), p.slotSize)
			}
		}
		p.put(b)
	}
}

func TestReadPoolReusesBlocksUntilTheyAge(t *testing.T) {
	p := &readPool{slotSize: 100}
	b := p.get(4, false)
	p.put(b)
	if again := p.get(4, false); again != b {
		t.Fatal("a block given back was not handed out again")
	}
	p.put(b)
	p.mu.Lock()
	p.age() // b is now old, still kept
	p.mu.Unlock()
	if again := p.get(4, false); again != b {
		t.Fatal("a block given back before one age was let go")
	}
	p.put(b)
	p.mu.Lock()
	p.age()
	p.age() // unused through two ages: let go
	p.mu.Unlock()
	if again := p.get(4, false); again == b {
		t.Fatal("a block unused through two ages was handed out again")
	} else {
		p.put(again)
	}
}

// The pool's limit holds for all conns together: a refill that would pass
// it gets a smaller block, or none, but one slot when it must have one.
func TestReadPoolStaysWithinItsLimit(t *testing.T) {
	p := &readPool{slotSize: readPoolLimit / 4} // four slots fill the limit
	inUse := func() int64 { return readPoolInUse.Load() }
	a := p.get(8, false)
	if a == nil || len(a.ring) > 4 || inUse() > readPoolLimit {
		t.Fatalf("first get: %d in use of %d", inUse(), readPoolLimit)
	}
	b := p.get(4, false)
	if inUse() > readPoolLimit {
		t.Fatalf("second get passed the limit: %d in use of %d", inUse(), readPoolLimit)
	}
	c := p.get(4, true)
	if c == nil || len(c.ring) != 1 {
		t.Fatal("get with atLeastOne past the limit did not give one slot")
	}
	for _, blk := range []*readBlock{a, b, c} {
		if blk != nil {
			p.put(blk)
		}
	}
	p.mu.Lock()
	p.age()
	p.age() // let the large blocks go
	p.mu.Unlock()
}
