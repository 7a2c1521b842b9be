package batchconn

import (
	"testing"
	"unsafe"
)

// compact moves the slots that hold datagrams ahead of those discarded,
// in order, and each header still points at its own slot's memory.
func TestCompactKeepsOrderAndEachHeaderOnItsSlot(t *testing.T) {
	b := newReadBlock(6, 16)
	for i := range b.ring {
		b.ring[i].n, b.ring[i].buf[0] = i, byte(i)
	}
	b.ring[1].n, b.ring[3].n, b.ring[4].n = -1, -1, -1
	b.compact(5) // slot 5 was not filled by this call
	for i, want := range []int{0, 2} {
		if m := b.ring[i]; m.n != want || m.buf[0] != byte(want) {
			t.Errorf("slot %d holds datagram %d (byte %d), want %d", i, m.n, m.buf[0], want)
		}
	}
	for i := range b.ring {
		if b.hdrs.iovs[i+1].Base != unsafe.SliceData(b.ring[i].buf) {
			t.Errorf("header %d does not point at slot %d's memory", i+1, i)
		}
	}
}
