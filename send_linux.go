package batchconn

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sender is the sending half of mmsgIO: segmentation offload as far as
// this socket may use it (gsoroute_linux.go), and one call's headers and
// results. Owned by the writer: guarded by writer.mu, but for waiting.
type sender struct {
	gso gsoState

	// This call.
	hdr      *txHeader     // its headers
	messages int           // headers in use
	sent     int           // messages the kernel took
	errno    syscall.Errno // the failure of the message after them
	callback func(fd uintptr) bool
	waiting  atomic.Bool // the poller waits for the socket to take more; read by Close
}

// oobSpace is the control buffer of one sent message: room for a
// caller's control messages (maxQueuedControl), UDP_SEGMENT's and a
// source address (IPV6_PKTINFO), on any word size.
const oobSpace = maxQueuedControl + 64

// initSend sets up the sending half.
func (m *mmsgIO) initSend(cfg *settings) {
	tx := &m.tx
	tx.gso.init(cfg)
	tx.callback = m.send // a method value made once: no allocation per call
}

func (m *mmsgIO) writeWaiting() bool { return m.tx.waiting.Load() }

func (m *mmsgIO) batchLimit() int {
	if m.segments() {
		return m.batch * int(m.queueFactor)
	}
	return m.batch
}

func (m *mmsgIO) segments() bool {
	g := &m.tx.gso
	if !g.probed {
		g.probe(m.rc)
	}
	return g.on
}

// segmentsRun is the gate a caller's segmented message passes, queued
// (writeBatch) or sent at once (sendMsgNow).
func (m *mmsgIO) segmentsRun(dst netip.AddrPort, seg int, equal bool) bool {
	g := &m.tx.gso
	return m.segments() && g.takesSize(dst.Addr(), seg) && !(g.equalRunsUnsafe && equal)
}

func (m *mmsgIO) takesSource(src netip.Addr, ifindex uint32) bool {
	return m.sources != nil && m.sources.heard(src, ifindex)
}

func (m *mmsgIO) sourceFor(dst netip.AddrPort) (oob [oobSpaceDirect]byte, n int) {
	n = m.putSourceFor(oob[:], dst)
	return oob, n
}

// putSourceFor writes the control message that sends a datagram to dst
// from the address dst last wrote to, if this socket learns them and dst
// was heard from, and returns its length.
func (m *mmsgIO) putSourceFor(oob []byte, dst netip.AddrPort) int {
	if m.sources == nil || m.sources.localsOnly || !dst.IsValid() {
		return 0
	}
	src, ok := m.sources.lookup(dst)
	if !ok {
		return 0
	}
	return putSource(oob, m.ipv6, src)
}

// txHeader is sendmmsg's view of a write block: a header, a destination
// and a control buffer a message, an iovec a datagram.
type txHeader struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte // oobSpace a message, for UDP_SEGMENT
	runs  []int  // datagrams in each message of this call
	arena []byte // the queue's, where its callers' control messages are
}

// make sizes the headers for batch messages, of a queue of up to
// batch*factor datagrams.
func (h *txHeader) make(batch, factor int) {
	h.hdrs = make([]mmsghdr, batch)
	h.iovs = make([]unix.Iovec, batch*factor)
	h.names = make([]unix.RawSockaddrInet6, batch)
	h.oob = make([]byte, batch*oobSpace)
	h.runs = make([]int, batch)
}

func (m *mmsgIO) writeBatch(ms []txMsg, wh *txHeader) (int, error) {
	tx, gso := &m.tx, m.segments()
	k, i, v := 0, 0, 0 // messages, datagrams and iovecs in this call
	alone := 0         // datagrams of a run that must go one a message
	for i < len(ms) && k < len(wh.hdrs) && i < len(wh.iovs) {
		n, seg := 1, 0
		switch first := &ms[i]; {
		case alone > 0:
			alone--
		case first.own != 0:
			// A caller's message goes as the caller cut it, or, where
			// offload will not take it, one datagram a message.
			if r := int(first.run); r > 1 {
				n, seg = r, len(first.buf)
				if !m.segmentsRun(first.addr, seg, tx.gso.equalRunsUnsafe && gsoRunMustSplit(ms[i:i+r])) {
					alone, n, seg = r-1, 1, 0
				}
			}
		case gso && tx.gso.takes(*first):
			n, seg = coalesce(ms[i:min(len(ms), len(wh.iovs))], tx.gso.maxSegs)
			if tx.gso.equalRunsUnsafe && gsoRunMustSplit(ms[i:i+n]) {
				alone, n, seg = n-1, 1, 0
			}
		}
		h := &wh.hdrs[k].Hdr
		h.Iov = &wh.iovs[v]
		h.SetIovlen(gather(wh.iovs[v:], ms[i:i+n]))
		v += int(h.Iovlen)
		i += n
		if dst := ms[i-n].addr; !m.connected && dst.IsValid() {
			h.Name = (*byte)(unsafe.Pointer(&wh.names[k]))
			h.Namelen = putSockaddr(&wh.names[k], m.ipv6, dst)
		} else {
			h.Name, h.Namelen = nil, 0
		}
		oob, used := wh.oob[k*oobSpace:(k+1)*oobSpace], 0
		first := &ms[i-n]
		if first.ctlLen > 0 {
			used = copy(oob, wh.arena[first.ctl:int(first.ctl)+int(first.ctlLen)])
		}
		if seg > 0 {
			used += putSegSize(oob[used:], wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(seg))
		}
		if first.own&txSource == 0 {
			used += m.putSourceFor(oob[used:], first.addr)
		}
		if used > 0 {
			h.Control = &oob[0]
			h.SetControllen(used)
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		wh.runs[k] = n
		k++
	}
	tx.hdr, tx.messages = wh, k
	err := m.rc.Write(tx.callback)
	tx.waiting.Store(false)
	if err != nil {
		return 0, unwrapRaw(err)
	}
	sent, segmented := 0, 0
	for _, n := range wh.runs[:tx.sent] {
		sent += n
		if n > 1 {
			segmented += n
		}
	}
	if segmented > 0 {
		m.stats.offloadSent.Add(uint64(segmented))
	}
	if tx.errno != 0 && wh.runs[tx.sent] > 1 && tx.gso.refused(ms[sent].addr, tx.errno, len(ms[sent].buf)) {
		m.stats.offloadFallbacks.Add(1)
	}
	if m.sources != nil && (tx.errno == unix.EINVAL || tx.errno == unix.EADDRNOTAVAIL) {
		m.sources.forget(ms[sent].addr) // a source gone since: the retry lets the kernel choose
	}
	return sent, errnoErr(tx.errno)
}

// gather points iovs at the payloads of one message's datagrams, one
// iovec for each stretch of them that lies back to back in the queue's
// arena (a run queued in a row does), and returns how many it used: the
// kernel copies a message in fewer, longer pieces.
func gather(iovs []unix.Iovec, ds []txMsg) int {
	v := -1
	var end uintptr // where the last iovec's bytes end
	for _, d := range ds {
		base := unsafe.SliceData(d.buf)
		if at := uintptr(unsafe.Pointer(base)); v >= 0 && len(d.buf) > 0 && at == end {
			iovs[v].SetLen(int(iovs[v].Len) + len(d.buf))
			end += uintptr(len(d.buf))
			continue
		}
		v++
		iovs[v].Base = base
		iovs[v].SetLen(len(d.buf))
		end = uintptr(unsafe.Pointer(base)) + uintptr(len(d.buf))
	}
	return v + 1
}

// send is the poller's callback: false means "wait until writable".
func (m *mmsgIO) send(fd uintptr) bool {
	tx := &m.tx
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&tx.hdr.hdrs[0])), uintptr(tx.messages), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			tx.waiting.Store(true)
			return false
		}
		tx.sent, tx.errno = int(n), e
		if e != 0 {
			tx.sent = 0 // the kernel returns -1
		}
		return true
	}
}
