package batchconn

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// receiver is the receiving half of mmsgIO: one call's headers and
// results, and what the socket was asked to report. Owned by the reader:
// guarded by reader.mu.
type receiver struct {
	// This call.
	hdr      *rxHeader     // its headers, from first on
	first    int           // 0: message 0 goes into the caller's buffer; 1: all go into slots
	offered  int           // messages offered
	buf      []byte        // the caller's buffer
	blk      *readBlock    // the block of slots, until a wait trades it
	blocks   waitBlocks    // where the block goes when the call waits
	received int           // messages received
	errno    syscall.Errno // the call's failure
	callback func(fd uintptr) bool
	lone     rxHeader // the headers of a read into the caller's buffer alone
	loneHdr  [1]mmsghdr
	loneIov  [1]unix.Iovec
	loneName [1]unix.RawSockaddrInet6
	zones    zoneNames
	groState groState // whether the kernel coalesces received datagrams (UDP_GRO), or may
	waited   bool     // this call found the socket empty: it waits for it to become readable
	control  bool     // the caller reads control messages (ReadMsgUDP): every call has room for them
}

// rxOOBSpace is the control buffer of one received message: room for
// UDP_GRO's segment size and for whatever else the socket's owner turned
// on before wrapping it (timestamps, TOS, TTL, packet info, drop counts),
// which the kernel writes ahead of it. A control message cut short is
// detected all the same (MSG_CTRUNC).
const rxOOBSpace = 256

// initRecv sets up the receiving half. GRO may come later only where the
// Config, the operator (BATCHCONN_DISABLE) and the kernel's release
// (kernel.go) allow it, and on slots that hold a coalesced 64 KiB.
func (m *mmsgIO) initRecv(cfg *settings) {
	rx := &m.rx
	if !cfg.NoOffload && !cfg.disabled.noGRO() && cfg.gates.gro && cfg.ReadSlotSize >= maxDatagram {
		rx.groState = groOff
	}
	rx.lone.hdrs, rx.lone.iovs, rx.lone.names = rx.loneHdr[:], rx.loneIov[:], rx.loneName[:]
	rx.lone.link()
	rx.callback = m.recv // a method value made once: no allocation per call
}

// wantControl gives the lone header room for control data, once some is
// asked for.
func (rx *receiver) wantControl() {
	if rx.lone.oob == nil {
		rx.lone.oob = make([]byte, rxOOBSpace)
	}
}

// readControl makes every read call from now on take the control
// messages the socket delivers, for a caller who reads them.
func (m *mmsgIO) readControl() {
	if !m.rx.control {
		m.rx.control = true
		m.rx.wantControl()
	}
}

// hidden names the control messages that are the conn's own: UDP_GRO's,
// and the packet info it turned on where its caller has not. Safe to call
// from any goroutine.
func (m *mmsgIO) hidden() controlHide { return hideGRO | controlHide(m.own.Load()) }

// rxHeader is recvmmsg's view of a read block: header 0 reads into the
// caller's buffer, header i into slot i-1, each with room for the sender's
// address and for control messages.
type rxHeader struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte // rxOOBSpace a header; for the lone header, only once control data is asked for
}

// wire makes the headers for ring's slots, once per block.
func (h *rxHeader) wire(ring []rxMsg) {
	k := len(ring) + 1
	h.hdrs = make([]mmsghdr, k)
	h.iovs = make([]unix.Iovec, k)
	h.names = make([]unix.RawSockaddrInet6, k)
	h.oob = make([]byte, k*rxOOBSpace)
	for i, m := range ring {
		h.aim(i, m.buf)
	}
	h.link()
}

// control returns the n bytes of control data received for slot.
func (h *rxHeader) control(slot, n int) []byte {
	at := (slot + 1) * rxOOBSpace
	return h.oob[at : at+n]
}

// move copies slot from's control data to slot to's (readBlock.compact).
func (h *rxHeader) move(from, to int) {
	copy(h.oob[(to+1)*rxOOBSpace:(to+2)*rxOOBSpace], h.oob[(from+1)*rxOOBSpace:])
}

// aim points slot's header at buf.
func (h *rxHeader) aim(slot int, buf []byte) {
	h.iovs[slot+1].Base = unsafe.SliceData(buf)
	h.iovs[slot+1].SetLen(len(buf))
}

// link points each header at its iovec and address.
func (h *rxHeader) link() {
	for i := range h.hdrs {
		h.hdrs[i].Hdr.Iov = &h.iovs[i]
		h.hdrs[i].Hdr.SetIovlen(1)
		h.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&h.names[i]))
	}
}

func (m *mmsgIO) gro() groState { return m.rx.groState }

// enableGRO turns UDP GRO on. Turning it on for the first socket of the
// machine flips a kernel-wide switch (the UDP encapsulation static key,
// code patched on every CPU), which costs about a millisecond, and
// closing the last such socket flips it back: a price only a conn that
// receives bulk from one sender repays.
func (m *mmsgIO) enableGRO() {
	if m.rx.groState != groOff {
		return
	}
	m.rx.groState = groNever // refused: never ask again
	if m.setsockopt(unix.IPPROTO_UDP, unix.UDP_GRO, 1) {
		m.rx.groState = groOn
	}
}

// receiveDrops reads the kernel's count of the socket's receive-queue
// drops (SO_MEMINFO's SK_MEMINFO_DROPS: sk_drops, which /proc/net/udp
// shows), one getsockopt, at the moment asked. Safe to call from any
// goroutine.
func (m *mmsgIO) receiveDrops() (uint64, bool) {
	q := meminfoQueries.Get().(*meminfoQuery)
	defer meminfoQueries.Put(q)
	if err := m.rc.Control(q.ask); err != nil || q.errno != 0 || q.size < uint32(unsafe.Sizeof(q.mem)) {
		return 0, false
	}
	return uint64(q.mem[unix.SK_MEMINFO_DROPS]), true
}

// meminfoQuery is one getsockopt(SO_MEMINFO) with its callback, made
// once: pooled, so that Stats and Close allocate nothing for it.
type meminfoQuery struct {
	mem   [unix.SK_MEMINFO_VARS]uint32
	size  uint32
	errno syscall.Errno
	ask   func(fd uintptr)
}

var meminfoQueries = sync.Pool{New: func() any {
	q := new(meminfoQuery)
	q.ask = func(fd uintptr) {
		q.size = uint32(unsafe.Sizeof(q.mem))
		_, _, q.errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&q.mem)), uintptr(unsafe.Pointer(&q.size)), 0)
	}
	return q
}}

func (m *mmsgIO) readBatch(p []byte, blk *readBlock, blocks waitBlocks) (rxResult, *readBlock, error) {
	rx := &m.rx
	rx.waited = false
	rx.buf, rx.blk, rx.blocks = p, blk, blocks
	m.layout(p, blk)
	res, err := m.receive()
	blk = rx.blk
	rx.buf, rx.blk, rx.blocks = nil, nil, nil
	return res, blk, err
}

// wait prepares the call for a socket that had nothing to read: the
// reader trades the block (for none, or one slot with GRO on, which may
// bring a coalesced 64 KiB), and the call after the wait asks for one
// datagram. The wait says the socket had nothing a moment ago, so most
// likely one datagram woke it; asking for more would cost the kernel a
// second, failing attempt on every request/response round trip, and
// datagrams that came together are read by the next call, which finds
// them waiting.
func (m *mmsgIO) wait() {
	rx := &m.rx
	rx.waited = true
	rx.blk = rx.blocks.forWait(rx.blk, rx.groState == groOn)
	m.layout(rx.buf, rx.blk)
}

// layout sets the headers of the next call: the caller's buffer first
// unless GRO is on, then blk's slots, up to a batch.
func (m *mmsgIO) layout(p []byte, blk *readBlock) {
	rx := &m.rx
	h, first, slots, gro := &rx.lone, 0, 0, rx.groState == groOn
	if blk != nil {
		h, slots = &blk.hdrs, len(blk.ring)
	}
	if gro {
		first = 1
	} else {
		h.iovs[0].Base = unsafe.SliceData(p)
		h.iovs[0].SetLen(len(p))
		slots++
	}
	rx.hdr, rx.first, rx.offered = h, first, min(slots, m.batch)
	control := gro || m.sources != nil && !m.sources.localsOnly || rx.control
	for i := first; i < first+rx.offered; i++ {
		hdr := &h.hdrs[i].Hdr
		hdr.Namelen = unix.SizeofSockaddrInet6
		if control {
			hdr.Control = &h.oob[i*rxOOBSpace]
			hdr.SetControllen(rxOOBSpace)
		} else {
			hdr.Control = nil
			hdr.SetControllen(0)
		}
	}
}

// receive makes the call the headers are laid out for and reads what it
// received into the result and the block's ring.
func (m *mmsgIO) receive() (rxResult, error) {
	rx := &m.rx
	err := m.rc.Read(rx.callback)
	res := rxResult{msgs: rx.received, offered: rx.offered, waited: rx.waited}
	if err != nil {
		return res, unwrapRaw(err)
	}
	if rx.errno != 0 {
		return res, rx.errno
	}
	blk := rx.blk
	h, gro, discards := rx.hdr, rx.first == 1, 0
	for i := range rx.received {
		k := rx.first + i
		hdr := &h.hdrs[k]
		var oob []byte
		cut := false // the kernel had more control data than room
		if hdr.Hdr.Control != nil {
			oob = h.oob[k*rxOOBSpace : k*rxOOBSpace+min(int(hdr.Hdr.Controllen), rxOOBSpace)]
			cut = hdr.Hdr.Flags&unix.MSG_CTRUNC != 0
		}
		addr := sockaddrAddrPort(&h.names[k], &rx.zones)
		if m.sources != nil {
			if src, local, ok := packetInfo(oob); ok {
				m.sources.learn(addr, src, local)
			}
		}
		if k == 0 {
			res.direct, res.n, res.addr = true, int(hdr.Len), addr
			res.trunc = hdr.Hdr.Flags&unix.MSG_TRUNC != 0
			res.ctl, res.ctlCut = oob, cut
			continue
		}
		slot := &blk.ring[k-1]
		slot.n, slot.addr, slot.seg = int(hdr.Len), addr, 0
		slot.oobn, slot.ctlCut = uint16(len(oob)), cut
		if gro {
			if cut {
				// The kernel had more control data than room, and may
				// have dropped UDP_GRO's: a buffer of several datagrams
				// could not be told from one. Discard it, counted.
				slot.n = -1
				discards++
				continue
			}
			slot.seg = cmsgUint(oob, wordSize, unix.SOL_UDP, unix.UDP_GRO)
		}
	}
	if discards > 0 {
		m.stats.readDiscards.Add(uint64(discards))
		blk.compact(res.slots())
		res.msgs -= discards
	}
	return res, nil
}

// recv is the poller's callback: false means "wait until readable".
func (m *mmsgIO) recv(fd uintptr) bool {
	rx := &m.rx
	for {
		var n uintptr
		var e syscall.Errno
		switch {
		case rx.offered == 1 && rx.hdr.hdrs[rx.first].Hdr.Control == nil:
			h := &rx.hdr.hdrs[rx.first]
			// One datagram and no control data: recvfrom, which costs the
			// kernel less than recvmmsg (no headers to copy in and out),
			// as a *net.UDPConn reads. MSG_TRUNC makes it return the
			// datagram's length, so that a cut one is told as recvmmsg
			// tells it.
			iov := rx.hdr.iovs[rx.first]
			n, _, e = unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(iov.Base)), uintptr(iov.Len),
				unix.MSG_TRUNC, uintptr(unsafe.Pointer(h.Hdr.Name)), uintptr(unsafe.Pointer(&h.Hdr.Namelen)))
			if e == 0 {
				h.Hdr.Flags = 0
				if n > uintptr(iov.Len) {
					n, h.Hdr.Flags = uintptr(iov.Len), unix.MSG_TRUNC
				}
				h.Len = uint32(n)
				n = 1
			}
		case rx.offered == 1:
			// One datagram with control data: recvmsg, as a *net.UDPConn's
			// ReadMsgUDP reads.
			h := &rx.hdr.hdrs[rx.first]
			n, _, e = unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&h.Hdr)), 0)
			if e == 0 {
				h.Len = uint32(n)
				n = 1
			}
		default:
			n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, fd,
				uintptr(unsafe.Pointer(&rx.hdr.hdrs[rx.first])), uintptr(rx.offered), 0, 0, 0)
		}
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			rx.received, rx.errno = 0, 0
			if !rx.waited {
				m.wait()
			}
			return false
		case 0:
			rx.received, rx.errno = int(n), 0
		default:
			rx.received, rx.errno = 0, e
		}
		return true
	}
}
