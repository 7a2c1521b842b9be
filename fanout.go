package batchconn

import (
	"encoding/binary"
	"net/netip"
)

// Fan-out: a server that talks to many peers (a media relay forwarding
// each packet to every subscriber, a game server, a TURN relay) queues
// interleaved runs, A B C A B C, in which no two datagrams in a row go to
// one destination, so segmentation offload never applies. Within one send
// of the queue, groupByDestination brings each destination's datagrams
// together, A A B B C C, keeping their WriteTo order, so that GSO carries
// them as runs. Only datagrams to different destinations change places
// relative to each other: UDP never promised their order, but a receiver
// reached at two addresses sees it (the differential tests catch it for
// a socket written to at 127.0.0.1 and at 0.0.0.0), so it is asked for
// with Config.GroupByDestination rather than done by default.

// fanoutTable maps destinations to groups for one send of the queue,
// without allocating: open addressing over a fixed table, whose entries
// from earlier sends are told apart by a generation number rather than
// cleared.
type fanoutTable struct {
	gen   uint32
	slots [fanoutSlots]struct {
		gen uint32
		id  int32
		key netip.AddrPort
	}
}

// fanoutSlots is the table's size; a queue with more than half as many
// destinations is sent as it is.
const fanoutSlots = 1024

// fanout is the room groupByDestination works in, kept with a write block.
type fanout struct {
	table  fanoutTable
	ids    []int32 // each datagram's group
	starts []int32 // where each group goes
	out    []txMsg // the grouped queue
}

// groupByDestination returns ms with each destination's datagrams
// together, the destinations in the order of their first datagram and each
// one's datagrams in the order of ms. An IPv4 address and its IPv4-mapped
// IPv6 form are one destination. It returns ms itself where nothing would
// move, or where more than fanoutSlots/2 destinations share the queue. It
// decides from the queue alone: no socket, clock or lock.
func groupByDestination(ms []txMsg, f *fanout) []txMsg {
	if len(ms) < 3 {
		return ms
	}
	t := &f.table
	if t.gen++; t.gen == 0 { // wrapped: old entries could pass for new
		t.slots = [fanoutSlots]struct {
			gen uint32
			id  int32
			key netip.AddrPort
		}{}
		t.gen = 1
	}
	f.ids = f.ids[:0]
	f.starts = f.starts[:0] // counts first, then starts
	runs := 0
	var prev netip.AddrPort
	for i := range ms {
		key := ms[i].addr
		if a := key.Addr(); a.Is4In6() {
			key = netip.AddrPortFrom(a.Unmap(), key.Port())
		}
		if i == 0 || key != prev {
			runs++
			prev = key
		}
		id := t.group(key, int32(len(f.starts)))
		if id < 0 {
			return ms // too many destinations to be worth it
		}
		if int(id) == len(f.starts) {
			f.starts = append(f.starts, 0)
		}
		f.starts[id]++
		f.ids = append(f.ids, id)
	}
	if runs == len(f.starts) {
		return ms // each destination's datagrams are together already
	}
	at := int32(0)
	for id, n := range f.starts {
		f.starts[id] = at
		at += n
	}
	f.out = append(f.out[:0], ms...)
	for i := range ms {
		id := f.ids[i]
		f.out[f.starts[id]] = ms[i]
		f.starts[id]++
	}
	return f.out
}

// group returns key's group, giving it next if it has none yet, or -1
// where the table is half full.
func (t *fanoutTable) group(key netip.AddrPort, next int32) int32 {
	a := key.Addr().As16()
	h := (binary.NativeEndian.Uint64(a[:8])*0x9e3779b97f4a7c15 ^ binary.NativeEndian.Uint64(a[8:])) * 0xbf58476d1ce4e5b9
	h ^= uint64(key.Port()) * 0x94d049bb133111eb
	h ^= h >> 29
	for i := h & (fanoutSlots - 1); ; i = (i + 1) & (fanoutSlots - 1) {
		s := &t.slots[i]
		if s.gen != t.gen {
			if next >= fanoutSlots/2 {
				return -1
			}
			s.gen, s.id, s.key = t.gen, next, key
			return next
		}
		if s.key == key {
			return s.id
		}
	}
}
