package batchconn

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// The read-slot pool. A ring's slots hold datagrams only between the
// refill that received them and the ReadFrom that hands out the last of
// them, so no conn owns slots: a refill that expects the kernel to hold
// several datagrams takes a block of slots from a process-wide pool, and
// the ring gives it back once drained. A conn blocked in a read, or idle,
// holds none. (wireguard-go's fork for tailscale moved from 64 KiB slots
// owned per socket to a shared buffer and cut peak memory by two thirds:
// tailscale/wireguard-go#87; owned slots sank a 128 MB router,
// tailscale/tailscale#7272.)
//
// A block is all a refill needs besides the caller's buffer: the slots,
// the ring entries that describe them and the system call's headers that
// point into them, wired once when the block is made. Blocks come in
// power-of-two sizes. Given-back blocks wait on one free list per size for
// the next refill, whichever goroutine or CPU it runs on (sync.Pool's
// per-CPU caches would keep a block per CPU for one busy conn), and
// those that
// wait unused through two ages, a second or more apart, each after a
// garbage collection, are left to the collector, so that memory taken by
// a burst goes back once the burst is over.

// readPoolLimit bounds the bytes of slots that conns hold at once, the
// whole process together. A refill that would pass it takes a smaller
// block, or none: it then reads one datagram into the caller's buffer, as
// plain does, or (with GRO, which needs a slot) takes a single slot. With
// 64 KiB slots the limit is 512 slots: eight conns each receiving full
// batches of 64, or many more receiving the smaller batches most traffic
// brings.
const readPoolLimit = 32 << 20

// readPoolKeep bounds the bytes of given-back blocks kept for reuse, the
// whole process together: as many as may be in use. With less, conns
// that take turns (an echo server and its client in one process) drop
// blocks and make them again, 4 MiB zeroed each time; what is kept goes
// back to the collector within seconds once unused (readPoolAge).
const readPoolKeep = readPoolLimit

// readPoolInUse is the bytes of slots taken and not yet returned, and
// readPoolKept those kept for reuse.
var readPoolInUse, readPoolKept atomic.Int64

// readPool hands out blocks of slots of one size.
type readPool struct {
	slotSize int

	mu   sync.Mutex
	free [11][]*readBlock // free[i]: blocks of 1<<i slots, up to maxBatchSize, given back since the last age
	old  [11][]*readBlock // given back before it, unused since
	aged int64            // monoNow at the last age
}

var readPools sync.Map // slot size -> *readPool

// readPoolFor returns the pool for slots of slotSize bytes.
func readPoolFor(slotSize int) *readPool {
	if p, ok := readPools.Load(slotSize); ok {
		return p.(*readPool)
	}
	p, loaded := readPools.LoadOrStore(slotSize, &readPool{slotSize: slotSize})
	if !loaded {
		p.(*readPool).everyGC()
	}
	return p.(*readPool)
}

// everyGC makes the collector call p.collected after each collection.
func (p *readPool) everyGC() {
	sentinel := new([16]byte)
	runtime.AddCleanup(sentinel, func(p *readPool) {
		p.collected()
		p.everyGC()
	}, p)
}

// collected ages the free lists after a collection, if readPoolAge has
// passed since they last aged: a busy process collects every few
// milliseconds, and blocks a busy conn gives back between two refills
// must not be let go and made again (4 MiB each, zeroed) at that pace.
func (p *readPool) collected() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := monoNow(); now-p.aged >= int64(readPoolAge) {
		p.aged = now
		p.age()
	}
}

// readPoolAge is how often at most the free lists age: a block given back
// and not taken again is let go within two ages and two collections.
const readPoolAge = time.Second

// age lets go what was given back before the previous age and not taken
// since; p.mu is held.
func (p *readPool) age() {
	for class := range p.old {
		for _, b := range p.old[class] {
			readPoolKept.Add(-int64(len(b.ring) * p.slotSize))
		}
		clear(p.old[class])
		p.old[class], p.free[class] = p.free[class], p.old[class][:0]
	}
}

// A readBlock is the room for one refill: len(ring) slots.
type readBlock struct {
	ring []rxMsg  // the slots, each with what was received into it
	hdrs rxHeader // the system call's view of the slots
}

// get returns a block of at least 1 and at most slots slots (slots is at
// least 1), fewer where the pool's limit says so, or nil where not even
// one fits and atLeastOne is false.
func (p *readPool) get(slots int, atLeastOne bool) *readBlock {
	class := bits.Len(uint(slots)) - 1 // round down to a power of two
	for ; class >= 0; class-- {
		size := int64(p.slotSize) << class
		if readPoolInUse.Add(size) <= readPoolLimit || class == 0 && atLeastOne {
			break
		}
		readPoolInUse.Add(-size)
	}
	if class < 0 {
		return nil
	}
	p.mu.Lock()
	b := pop(&p.free[class])
	if b == nil {
		b = pop(&p.old[class])
	}
	p.mu.Unlock()
	if b == nil {
		return newReadBlock(1<<class, p.slotSize)
	}
	readPoolKept.Add(-int64(p.slotSize) << class)
	return b
}

// put returns a block taken with get.
func (p *readPool) put(b *readBlock) {
	size := int64(len(b.ring) * p.slotSize)
	readPoolInUse.Add(-size)
	if readPoolKept.Add(size) > readPoolKeep {
		readPoolKept.Add(-size) // enough kept: the collector takes this one
		return
	}
	class := bits.Len(uint(len(b.ring))) - 1
	p.mu.Lock()
	p.free[class] = append(p.free[class], b)
	p.mu.Unlock()
}

func pop(s *[]*readBlock) *readBlock {
	n := len(*s)
	if n == 0 {
		return nil
	}
	b := (*s)[n-1]
	(*s)[n-1] = nil
	*s = (*s)[:n-1]
	return b
}

func newReadBlock(slots, slotSize int) *readBlock {
	mem := make([]byte, slots*slotSize)
	b := &readBlock{ring: make([]rxMsg, slots)}
	for i := range b.ring {
		b.ring[i].buf = mem[i*slotSize : (i+1)*slotSize : (i+1)*slotSize]
	}
	b.hdrs.wire(b.ring)
	return b
}

// compact moves the first n slots that hold a datagram (n >= 0) ahead of
// those discarded (n < 0), in order, keeping each header on its slot's
// memory.
func (b *readBlock) compact(n int) {
	j := 0
	for i := range n {
		if b.ring[i].n < 0 {
			continue
		}
		if i != j {
			b.ring[i], b.ring[j] = b.ring[j], b.ring[i]
			b.hdrs.aim(i, b.ring[i].buf)
			b.hdrs.aim(j, b.ring[j].buf)
			b.hdrs.move(i, j)
		}
		j++
	}
}
