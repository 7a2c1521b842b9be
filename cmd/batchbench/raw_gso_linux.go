package main

import (
	"net"
	"net/netip"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The queue rawgso gathers before each sendmmsg, as batchconn's is by
// default with offload: 8 batches' datagrams, and at most 256 KiB of
// payload to one destination or 1 MiB to several.
const (
	gsoQueueFactor = 8
	gsoQueueBytes  = 256 << 10
	gsoWideBytes   = 1 << 20
)

// segControl is a rawgso message's control buffer: room for the
// UDP_SEGMENT cmsg, a multiple of the cmsg alignment.
var segControl = unix.CmsgSpace(2)

// gsoSender is rawgso's sender: the loop batchconn's WriteTo and queue
// make with segmentation offload, written bare. Each datagram is stamped
// in the caller's buffer, then copied from it into the queue's memory,
// among its destination's datagrams (batchconn's default grouping, its
// queue's order within each destination); each destination's run goes
// as messages of up to maxSegs datagrams and maxPayload bytes with
// UDP_SEGMENT, a sockaddr encoded for each, all in one sendmmsg (or as
// many as the kernel needs).
type gsoSender struct {
	*rawConn
	size, queue, perMsg int
	mem                 []byte
	count, at           []int // a destination's datagrams in this queue, and where its next one goes
	runs                []int // datagrams in each message of this queue
	msgs                []mmsghdr
}

// newRawGSOSender prepares uc to send datagrams of size bytes to dsts,
// IPv4 on loopback, with UDP_SEGMENT.
func newRawGSOSender(uc *net.UDPConn, size int, dsts []netip.AddrPort) (*gsoSender, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawConn{rc: rc}
	r.fn = r.call
	if err := r.sendTo(dsts); err != nil {
		return nil, err
	}
	bytes := gsoQueueBytes
	if len(dsts) > 1 {
		bytes = gsoWideBytes
	}
	s := &gsoSender{rawConn: r, size: size, queue: max(1, min(batchSize*gsoQueueFactor, bytes/size))}
	s.perMsg = max(1, min(gsoSegments(), maxPayload/size))
	s.mem = make([]byte, s.queue*size)
	s.count, s.at = make([]int, len(dsts)), make([]int, len(dsts))
	// At most a message a datagram: no more than the queue holds.
	s.runs, s.msgs = make([]int, s.queue), make([]mmsghdr, s.queue)
	r.iovs, r.names, r.ctrl = make([]unix.Iovec, s.queue), make([]unix.RawSockaddrInet4, s.queue), make([]byte, s.queue*segControl)
	for i := range s.msgs {
		h := &s.msgs[i].hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Name, h.Namelen = (*byte)(unsafe.Pointer(&r.names[i])), unix.SizeofSockaddrInet4
	}
	return s, nil
}

// sendUntil is blast for rawgso: it queues datagrams numbered from 0 to
// the destinations in turn and sends the queue, and so on until end
// (looked at before each queue); it returns how many the kernel took.
func (s *gsoSender) sendUntil(end time.Time) (uint64, error) {
	buf := make([]byte, s.size) // the caller's
	var seq uint64
	for time.Now().Before(end) {
		sent, err := s.sendQueue(buf, seq)
		if seq += sent; err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// sendQueue queues and sends the datagrams numbered seq on, each stamped
// in buf, and returns how many the kernel took.
func (s *gsoSender) sendQueue(buf []byte, seq uint64) (uint64, error) {
	// Each destination's share of the queue, which starts at seq's, and
	// where its datagrams go: together, in the order of their first.
	ndst := len(s.dsts)
	first, pos := int(seq%uint64(ndst)), 0
	for j := range ndst {
		d := (first + j) % ndst
		s.count[d] = s.queue / ndst
		if j < s.queue%ndst {
			s.count[d]++
		}
		s.at[d], pos = pos, pos+s.count[d]
	}
	for i := range uint64(s.queue) {
		stamp(buf, seq+i)
		d := (seq + i) % uint64(ndst)
		copy(s.mem[s.at[d]*s.size:(s.at[d]+1)*s.size], buf)
		s.at[d]++
	}
	k := 0
	for j := range ndst {
		d := (first + j) % ndst
		for at := s.at[d] - s.count[d]; at < s.at[d]; k++ {
			n := min(s.perMsg, s.at[d]-at)
			s.message(k, s.mem[at*s.size:(at+n)*s.size], n, s.dsts[d])
			at += n
		}
	}
	s.hdrs = s.msgs[:k]
	m, err := s.writeBatch()
	var sent uint64
	for _, n := range s.runs[:m] {
		sent += uint64(n)
	}
	return sent, err
}

// message makes the k-th message of the queue: the n datagrams of p, to
// dst, with UDP_SEGMENT where there are more than one.
func (s *gsoSender) message(k int, p []byte, n int, dst netip.AddrPort) {
	h := &s.msgs[k].hdr
	s.iovs[k].Base = unsafe.SliceData(p)
	s.iovs[k].SetLen(len(p))
	putSockaddr(&s.names[k], dst)
	h.Control = nil
	h.SetControllen(0)
	if n > 1 {
		c := s.ctrl[k*segControl : (k+1)*segControl]
		putSegment(c, s.size)
		h.Control = &c[0]
		h.SetControllen(segControl)
	}
	s.runs[k] = n
}

// putSegment writes into c the UDP_SEGMENT cmsg of segments of seg bytes.
func putSegment(c []byte, seg int) {
	cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	cm.Level, cm.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	cm.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(seg)
}

// gsoSegments is the most datagrams one message may carry here, found as
// batchconn finds it: 128 where the kernel takes a message of 128
// one-byte segments (newer kernels' UDP_MAX_SEGMENTS), else 64.
var gsoSegments = sync.OnceValue(func() int {
	rx, err := listen()
	if err != nil {
		return 64
	}
	defer rx.Close()
	tx, err := listen()
	if err != nil {
		return 64
	}
	defer tx.Close()
	oob := make([]byte, segControl)
	putSegment(oob, 1)
	if _, _, err := tx.WriteMsgUDPAddrPort(make([]byte, 128), oob, addrPort(rx)); err != nil {
		return 64
	}
	return 128
})
