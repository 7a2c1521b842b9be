package batchconn

import (
	"encoding/binary"
	"net/netip"
)

// Fan-out: a server that talks to many peers (a media relay forwarding
// each packet to every subscriber, a game server, a TURN relay) queues
// interleaved runs, A B C A B C, in which no two datagrams in a row go to
// one destination, so segmentation offload would never apply. Unless
// Config.StrictOrder asks otherwise, a queue sent with offload brings each
// destination's datagrams together, A A B B C C, keeping their WriteTo
// order, so that GSO carries them as runs.
//
// Only datagrams that cannot reach one socket change places relative to
// each other. Destinations that may (the same port on a loopback address,
// the unspecified address, a multicast or broadcast address, or one of
// this host's own addresses; an IPv4 address and its IPv4-mapped form)
// share one group, in which WriteTo order holds: a socket on this host
// written to at 127.0.0.1 and at 0.0.0.0, or at its LAN address, sees its
// datagrams in the order they were written. Two hosts' sockets never see
// each other's datagrams, so their relative order is nobody's to see.
//
// The grouping is done as datagrams are queued, so that the queue knows
// how many messages it makes (a batch is BatchSize messages) and a send
// only moves the entries.

// fanout is the grouping of one queue, kept with its write block. Guarded
// by writer.mu.
type fanout struct {
	table  fanoutTable
	ids    []int32    // each queued datagram's group, in WriteTo order
	groups []fanGroup // by group id, in the order of their first datagram
	out    []txMsg    // the grouped queue, for one send

	last     netip.AddrPort // the last datagram's destination
	lastID   int32          // and its group
	kept     int            // arena bytes kept in groups' slabs and not holding datagrams (writer.place)
	moves    bool           // a group's datagrams are not all together in WriteTo order
	overflow bool           // more groups than the table holds: the queue goes as it is
}

// fanGroup is one group of a queue: its datagrams, and the run its last
// datagram is in.
type fanGroup struct {
	count int32
	seg   int32          // the size of the run's datagrams
	tail  int32          // the size of the group's last datagram: shorter than seg ends the run
	end   int32          // where in the arena the group's last datagram ends (writer.place)
	room  int32          // bytes of arena kept for the group after end
	next  int32          // the group whose datagram followed this group's last time, or -1
	addr  netip.AddrPort // the run's destination
}

// fanoutSlots is the table's size; a queue may have half as many groups.
const fanoutSlots = 1024

// reset readies f for a new queue.
func (f *fanout) reset() {
	f.table.clear()
	f.ids, f.groups = f.ids[:0], f.groups[:0]
	f.last, f.lastID = netip.AddrPort{}, -1
	f.moves, f.overflow, f.kept = false, false, 0
}

// add groups the next queued datagram, of size bytes to ap, and reports
// whether it starts a message of its own when the queue is sent: it does
// unless it continues its group's run (the same destination, no longer
// than the run's datagrams, after none shorter), about what coalesce
// decides.
func (f *fanout) add(ap netip.AddrPort, size int) bool {
	if f.overflow {
		return true
	}
	id := f.lastID
	if id < 0 || ap != f.last {
		prev := id
		if id = f.follows(prev, ap); id < 0 {
			id = f.table.group(orderKey(ap), int32(len(f.groups)))
			if id < 0 {
				f.overflow = true
				return true
			}
			if prev >= 0 {
				f.groups[prev].next = id
			}
		}
		if int(id) < len(f.groups) && id != f.lastID {
			f.moves = true // back to a group left before
		}
		f.last, f.lastID = ap, id
	}
	f.ids = append(f.ids, id)
	if int(id) == len(f.groups) {
		f.groups = append(f.groups, fanGroup{count: 1, seg: int32(size), tail: int32(size), next: -1, addr: ap})
		return true
	}
	g := &f.groups[id]
	g.count++
	if g.addr != ap || int32(size) > g.seg || g.tail < g.seg {
		g.seg, g.tail, g.addr = int32(size), int32(size), ap
		return true
	}
	g.tail = int32(size)
	return false
}

// follows returns the group of a datagram to ap that follows one of group
// prev, if it is the group that followed prev last time, or -1: a server
// writing to its peers in turn finds each next group without hashing.
func (f *fanout) follows(prev int32, ap netip.AddrPort) int32 {
	if prev < 0 {
		return -1
	}
	if next := f.groups[prev].next; next >= 0 && f.groups[next].addr == ap {
		return next
	}
	return -1
}

// lastGroup returns the group of the datagram added last, or nil where the
// table overflowed.
func (f *fanout) lastGroup() *fanGroup {
	if f.overflow || f.lastID < 0 {
		return nil
	}
	return &f.groups[f.lastID]
}

// arrange returns the queue ms, whose datagrams f grouped as they were
// queued, with each group's datagrams together, the groups in the order
// of their first datagram. It returns ms itself where nothing would move.
// It decides from the queue alone: no socket, clock or lock. The groups'
// counts are spent: they become where each group goes.
func (f *fanout) arrange(ms []txMsg) []txMsg {
	if !f.moves || f.overflow || len(f.ids) != len(ms) {
		return ms
	}
	at := int32(0)
	for i := range f.groups {
		g := &f.groups[i]
		g.count, at = at, at+g.count
	}
	f.out = append(f.out[:0], ms...)
	for i := range ms {
		g := &f.groups[f.ids[i]]
		f.out[g.count] = ms[i]
		g.count++
	}
	return f.out
}

// orderKey is the group of a datagram to ap: ap itself, with an IPv4
// address in one form, or, for a destination that may be a socket on
// this host, the port alone.
func orderKey(ap netip.AddrPort) netip.AddrPort {
	ip := ap.Addr().Unmap()
	if ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() || isHostAddr(ip) {
		return netip.AddrPortFrom(netip.Addr{}, ap.Port())
	}
	return netip.AddrPortFrom(ip, ap.Port())
}

// fanoutTable maps keys to groups for one queue without allocating: open
// addressing over a fixed table, whose entries from earlier queues are
// told apart by a generation number rather than cleared.
type fanoutTable struct {
	gen   uint32
	slots [fanoutSlots]fanoutSlot
}

type fanoutSlot struct {
	gen uint32
	id  int32
	key netip.AddrPort
}

// clear empties the table for the next queue.
func (t *fanoutTable) clear() {
	if t.gen++; t.gen == 0 { // wrapped: old entries could pass for new
		t.slots = [fanoutSlots]fanoutSlot{}
		t.gen = 1
	}
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

// endRun ends the run of the group of the datagram added last: a
// caller's message (WriteMsgUDP) makes one of its own, and the next
// datagram to the group starts another.
func (f *fanout) endRun() {
	if g := f.lastGroup(); g != nil {
		g.seg, g.tail = -1, -1
	}
}
