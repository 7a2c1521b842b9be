package batchconn

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgIO moves datagrams with recvmmsg and sendmmsg on the socket's own
// descriptor, through the runtime's poller (syscall.RawConn), so that
// deadlines and Close act on a blocked call as they do on plain.
//
// It keeps its own message headers rather than using x/net's ReadBatch
// and WriteBatch: those allocate headers on every call and a *net.UDPAddr
// for every received datagram, and the point of batching is to do less.
// The headers live with the memory they point into, in the pooled read
// and write blocks, so that an idle conn holds none.
type mmsgIO struct {
	rc        syscall.RawConn
	ipv6      bool
	connected bool  // datagrams go to the socket's peer: no destination in the headers
	factor    uint8 // Config.queueFactor: the queue gathers batch*factor datagrams with GSO
	stats     *counters
	batch     int  // Config.BatchSize: the most messages one call moves
	offload   bool // offload may be used: not turned off by Config or by the system

	// Read side, owned by the reader (reader.mu).
	one    rxHeader // for a read into the caller's buffer alone
	oneHdr [1]mmsghdr
	oneIov [1]unix.Iovec
	oneNam [1]unix.RawSockaddrInet6
	rh     *rxHeader  // the headers of this call, from hdrs[rfirst] on
	rfirst int        // 0: the first message into the caller's buffer; 1: all into slots
	rvlen  int        // messages offered
	rwait  bool       // the socket had nothing: the callback waits for it to become readable
	rp     []byte     // the caller's buffer, during a call
	rblk   *readBlock // the block of this call, until it waits
	rpool  *readPool  // where the block goes back when the call waits
	rn     int
	rerr   syscall.Errno
	recvFn func(fd uintptr) bool
	groSt  groState // whether the kernel coalesces received datagrams (UDP_GRO), or may
	drops  bool     // the kernel reports its receive-queue drops (SO_RXQ_OVFL)
	src    *sources // peers' reply sources, on a socket bound to a wildcard address (srcaddr.go); nil elsewhere
	rctl   int      // control room given a message: rxOOBSpace, less in tests
	zoneID uint32   // the last scope ID seen and its name: link-local peers
	zone   string

	// Write side, owned by the writer (writer.mu).
	wready bool // the fields below are set: the first send has been prepared
	// equalUnsafe: the kernel mangles segmented messages whose segments
	// are all of one length (kernel.go); such runs go one datagram a
	// message.
	equalUnsafe bool
	gso         bool                    // send runs as one message (UDP_SEGMENT); off after a socket-wide refusal
	segs        int                     // the most segments in one message: the kernel's limit
	gsoOff      map[netip.Addr]gsoRoute // destinations whose route refused a segmented message
	wh          *txHeader               // the headers of this call
	wk          int                     // headers in use for this call
	wwait       atomic.Bool             // the poller waits for the socket to take more
	// fault, set by tests, fails a message as the kernel would, before
	// the kernel sees it: the errors this kernel no longer returns.
	fault  func(h *mmsghdr) syscall.Errno
	wn     int
	werr   syscall.Errno
	sendFn func(fd uintptr) bool
}

// msgTrunc is the flag ReadMsgUDP reports for a datagram cut short.
const msgTrunc = unix.MSG_TRUNC

// oobSpace is the control buffer of one sent message: room for
// UDP_SEGMENT's and for a source address (IPV6_PKTINFO), on any word size.
const oobSpace = 80

// rxOOBSpace is the control buffer of one received message: room for
// UDP_GRO's segment size and for whatever else the socket's owner turned
// on before wrapping it (timestamps, TOS, TTL, packet info, drop counts),
// which the kernel writes ahead of it. A control message cut short is
// detected all the same (MSG_CTRUNC).
const rxOOBSpace = 256

// wordSize is the alignment of control messages: the size of a C long.
const wordSize = int(unsafe.Sizeof(uintptr(0)))

// newBatchIO prepares batching for uc without a system call of its own
// where it can: what only some conns need (GRO, the segmentation offload
// probe, headers, buffers) waits until a conn needs it, so that a conn
// that carries one query costs what plain costs.
func newBatchIO(uc *net.UDPConn, cfg Config, stats *counters) (batchIO, sockInfo) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, sockInfo{}
	}
	sock, ok := socketInfo(uc, rc)
	if !ok {
		return nil, sockInfo{}
	}
	// Offload where the Config, the operator (BATCHCONN_DISABLE) and the
	// kernel's release (kernel.go) all allow it.
	gates, off := cfg.kernelGates(), operatorDisabled()
	m := &mmsgIO{
		rc:          rc,
		ipv6:        sock.ipv6,
		connected:   uc.RemoteAddr() != nil,
		stats:       stats,
		batch:       cfg.BatchSize,
		factor:      uint8(cfg.queueFactor),
		offload:     !cfg.NoOffload && !off.noGSO() && gates.gso,
		equalUnsafe: gates.equalRunsUnsafe,
		rctl:        rxOOBSpace,
	}
	// A coalesced buffer can hold up to 64 KiB: only slots that big may
	// receive one, or datagrams would be cut short.
	if !cfg.NoOffload && !off.noGRO() && gates.gro && cfg.ReadSlotSize >= maxDatagram {
		m.groSt = groOff
	}
	m.one.hdrs, m.one.iovs, m.one.names = m.oneHdr[:], m.oneIov[:], m.oneNam[:]
	m.one.link()
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.IsUnspecified() && !m.connected &&
		!cfg.KernelChoosesSource && watchSources(rc, sock.ipv6) {
		m.src = new(sources)
		m.one.oob = make([]byte, rxOOBSpace)
	}
	m.recvFn = m.recv // method values made once: no allocation per call
	m.sendFn = m.send
	return m, sock
}

// socketInfo learns the socket's family from its local address, which the
// net package read when it made the conn, and asks the kernel only what
// that does not tell: whether an IPv6 socket also reaches IPv4.
func socketInfo(uc *net.UDPConn, rc syscall.RawConn) (sockInfo, bool) {
	family := 0
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la != nil {
		switch len(la.IP) {
		case net.IPv4len:
			family = unix.AF_INET
		case net.IPv6len:
			family = unix.AF_INET6
		}
	}
	var sock sockInfo
	var err error
	cerr := rc.Control(func(fd uintptr) {
		if family == 0 {
			family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		}
		if err == nil && family == unix.AF_INET6 {
			v6only, verr := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			sock.v6only = verr == nil && v6only != 0
		}
	})
	if cerr != nil || err != nil || family != unix.AF_INET && family != unix.AF_INET6 {
		return sockInfo{}, false
	}
	sock.ipv6 = family == unix.AF_INET6
	return sock, true
}

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
		h.iovs[i+1].Base = unsafe.SliceData(m.buf)
		h.iovs[i+1].SetLen(len(m.buf))
	}
	h.link()
}

// link points each header at its iovec and address.
func (h *rxHeader) link() {
	for i := range h.hdrs {
		h.hdrs[i].Hdr.Iov = &h.iovs[i]
		h.hdrs[i].Hdr.SetIovlen(1)
		h.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&h.names[i]))
	}
}

func (m *mmsgIO) gro() groState { return m.groSt }

// enableGRO turns UDP GRO on. Turning it on for the first socket of the
// machine flips a kernel-wide switch (the UDP encapsulation static key,
// code patched on every CPU), which costs about a millisecond here, and
// closing the last such socket flips it back: a price only a conn that
// receives bulk from one sender repays.
func (m *mmsgIO) enableGRO() {
	if m.groSt != groOff {
		return
	}
	var err error
	if cerr := m.rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); cerr != nil || err != nil {
		m.groSt = groNever // refused: never ask again
		return
	}
	m.groSt = groOn
}

func (m *mmsgIO) readBatch(p []byte, blk *readBlock, pool *readPool) (rxResult, *readBlock, error) {
	m.rwait = false
	m.rp, m.rblk, m.rpool = p, blk, pool
	m.layout(p, blk)
	res, err := m.receive()
	blk = m.rblk
	m.rp, m.rblk = nil, nil
	return res, blk, err
}

// wait prepares the call for a socket that had nothing to read: the
// block goes back to the pool, so that a waiting conn holds no more than
// it needs, and the call after the wait asks for one datagram: into p,
// holding no slot, with GRO off; into one slot with GRO on, which may
// bring a coalesced 64 KiB. The wait says the socket had nothing a moment
// ago, so most likely one datagram woke it; asking for more would cost
// the kernel a second, failing attempt on every request/response round
// trip, and datagrams that came together are read by the next call,
// which finds them waiting.
func (m *mmsgIO) wait() {
	if m.rblk != nil {
		m.rpool.put(m.rblk)
		m.rblk = nil
	}
	m.rwait = true
	if m.groSt == groOn {
		m.rblk = m.rpool.get(1, true)
	}
	m.layout(m.rp, m.rblk)
}

// layout sets the headers of the next call: the caller's buffer first
// unless GRO is on, then blk's slots, up to a batch.
func (m *mmsgIO) layout(p []byte, blk *readBlock) {
	h, first, slots, gro := &m.one, 0, 0, m.groSt == groOn
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
	m.rh, m.rfirst, m.rvlen = h, first, min(slots, m.batch)
	for i := first; i < first+m.rvlen; i++ {
		hdr := &h.hdrs[i].Hdr
		hdr.Namelen = unix.SizeofSockaddrInet6
		if gro || m.drops || m.src != nil {
			hdr.Control = &h.oob[i*rxOOBSpace]
			hdr.SetControllen(m.rctl)
		} else {
			hdr.Control = nil
			hdr.SetControllen(0)
		}
	}
}

// receive makes the call the headers are laid out for and reads what it
// received into the result and the block's ring.
func (m *mmsgIO) receive() (rxResult, error) {
	err := m.rc.Read(m.recvFn)
	res := rxResult{msgs: m.rn, offered: m.rvlen, waited: m.rwait}
	if err != nil {
		return res, unwrapRaw(err)
	}
	if m.rerr != 0 {
		return res, m.rerr
	}
	blk := m.rblk
	h, gro, cut := m.rh, m.rfirst == 1, 0
	for i := range m.rn {
		k := m.rfirst + i
		hdr := &h.hdrs[k]
		var oob []byte
		if hdr.Hdr.Control != nil {
			oob = h.oob[k*rxOOBSpace : k*rxOOBSpace+min(int(hdr.Hdr.Controllen), rxOOBSpace)]
			if m.drops {
				if d := cmsgUint(oob, wordSize, unix.SOL_SOCKET, unix.SO_RXQ_OVFL); d > 0 {
					m.stats.receiveDrops.Store(uint64(d))
				}
			}
		}
		addr := m.addrPort(&h.names[k])
		if m.src != nil {
			if src, ok := sourceOf(oob); ok {
				m.src.learn(addr, src)
			}
		}
		if k == 0 {
			res.direct, res.n, res.addr = true, int(hdr.Len), addr
			res.trunc = hdr.Hdr.Flags&unix.MSG_TRUNC != 0
			continue
		}
		slot := &blk.ring[k-1]
		slot.n, slot.addr, slot.seg = int(hdr.Len), addr, 0
		if gro {
			if hdr.Hdr.Flags&unix.MSG_CTRUNC != 0 {
				// The kernel had more control data than room, and may
				// have dropped UDP_GRO's: a buffer of several datagrams
				// could not be told from one. Discard it, counted.
				slot.n = -1
				cut++
				continue
			}
			slot.seg = cmsgUint(oob, wordSize, unix.SOL_UDP, unix.UDP_GRO)
		}
	}
	if cut > 0 {
		m.stats.readDiscards.Add(uint64(cut))
		blk.compact(res.slots())
		res.msgs -= cut
	}
	return res, nil
}

// compact moves the first n slots that hold a datagram (n >= 0) ahead of
// those discarded, in order, keeping each header on its slot's memory.
func (b *readBlock) compact(n int) {
	j := 0
	for i := range n {
		if b.ring[i].n < 0 {
			continue
		}
		if i != j {
			b.ring[i], b.ring[j] = b.ring[j], b.ring[i]
			for _, s := range [2]int{i, j} {
				b.hdrs.iovs[s+1].Base = unsafe.SliceData(b.ring[s].buf)
			}
		}
		j++
	}
}

// watchDrops asks the kernel for its count of datagrams dropped on the
// socket's full receive queue (SO_RXQ_OVFL), which it then attaches to
// each datagram received after a drop: free while nothing is dropped. It
// is asked once a conn finds datagrams waiting, the first sign of a queue
// that can overflow; the count covers the socket's whole life.
func (m *mmsgIO) watchDrops() {
	if m.drops {
		return
	}
	m.drops = true
	if m.one.oob == nil { // a wildcard socket's has one already
		m.one.oob = make([]byte, rxOOBSpace)
	}
	m.rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	})
}

// recv is the poller's callback: false means "wait until readable".
func (m *mmsgIO) recv(fd uintptr) bool {
	for {
		var n uintptr
		var e syscall.Errno
		switch {
		case m.rvlen == 1 && m.rh.hdrs[m.rfirst].Hdr.Control == nil:
			h := &m.rh.hdrs[m.rfirst]
			// One datagram and no control data: recvfrom, which costs the
			// kernel less than recvmmsg (no headers to copy in and out),
			// as plain reads. MSG_TRUNC makes it return the datagram's
			// length, so that a cut one is told as recvmmsg tells it.
			iov := m.rh.iovs[m.rfirst]
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
		default:
			n, _, e = unix.Syscall6(unix.SYS_RECVMMSG, fd,
				uintptr(unsafe.Pointer(&m.rh.hdrs[m.rfirst])), uintptr(m.rvlen), 0, 0, 0)
		}
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			m.rn, m.rerr = 0, 0
			if !m.rwait {
				m.wait()
			}
			return false
		case 0:
			m.rn, m.rerr = int(n), 0
		default:
			m.rn, m.rerr = 0, e
		}
		return true
	}
}

func (m *mmsgIO) writeWaiting() bool { return m.wwait.Load() }

func (m *mmsgIO) batchLimit() int {
	if !m.wready {
		m.prepareWrite()
	}
	if m.gso {
		return m.batch * int(m.factor)
	}
	return m.batch
}

// putSourceFor writes the control message that sends a datagram to dst
// from the address dst last wrote to, if this socket learns them and dst
// was heard from, and returns its length.
func (m *mmsgIO) putSourceFor(oob []byte, dst netip.AddrPort) int {
	if m.src == nil || !dst.IsValid() {
		return 0
	}
	src, ok := m.src.lookup(dst)
	if !ok {
		return 0
	}
	return putSource(oob, m.ipv6, src)
}

func (m *mmsgIO) segments() bool {
	if !m.wready {
		m.prepareWrite()
	}
	return m.gso
}

// prepareWrite learns, at the first queued datagram, whether the kernel
// takes segmentation offload (it knows UDP_SEGMENT from 4.18 on) and how
// many segments a message may carry: a conn whose datagrams all go out
// at once, one by one, never asks.
func (m *mmsgIO) prepareWrite() {
	m.wready = true
	if !m.offload {
		return
	}
	var err error
	m.rc.Control(func(fd uintptr) {
		_, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	})
	if m.gso = err == nil; m.gso {
		m.segs = gsoSegmentLimit()
	}
}

// txHeader is sendmmsg's view of a write block: a header, a destination
// and a control buffer a message, an iovec a datagram.
type txHeader struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte // oobSpace a message, for UDP_SEGMENT
	runs  []int  // datagrams in each message of this call
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
	if !m.wready {
		m.prepareWrite()
	}
	k, iov := 0, 0 // messages and datagrams in this call
	alone := 0     // datagrams of a run that must go one a message
	for iov < len(ms) && k < len(wh.hdrs) && iov < len(wh.iovs) {
		n, seg := 1, 0
		if alone > 0 {
			alone--
		} else if m.gso && (len(m.gsoOff) == 0 || m.gsoOff[ms[iov].addr.Addr()].takes(len(ms[iov].buf))) {
			n, seg = coalesce(ms[iov:min(len(ms), len(wh.iovs))], m.segs)
			if m.equalUnsafe && gsoRunMustSplit(ms[iov:iov+n]) {
				alone, n, seg = n-1, 1, 0
			}
		}
		h := &wh.hdrs[k].Hdr
		h.Iov = &wh.iovs[iov]
		h.SetIovlen(n)
		for _, d := range ms[iov : iov+n] {
			wh.iovs[iov].Base = unsafe.SliceData(d.buf)
			wh.iovs[iov].SetLen(len(d.buf))
			iov++
		}
		if dst := ms[iov-n].addr; !m.connected && dst.IsValid() {
			h.Name = (*byte)(unsafe.Pointer(&wh.names[k]))
			h.Namelen = putSockaddr(&wh.names[k], m.ipv6, dst)
		} else {
			h.Name, h.Namelen = nil, 0
		}
		oob, used := wh.oob[k*oobSpace:(k+1)*oobSpace], 0
		if seg > 0 {
			used = putSegSize(oob, wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(seg))
		}
		used += m.putSourceFor(oob[used:], ms[iov-n].addr)
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
	m.wh, m.wk = wh, k
	err := m.rc.Write(m.sendFn)
	m.wwait.Store(false)
	if err != nil {
		return 0, unwrapRaw(err)
	}
	sent, segmented := 0, 0
	for _, n := range wh.runs[:m.wn] {
		sent += n
		if n > 1 {
			segmented += n
		}
	}
	if segmented > 0 {
		m.stats.offloadSent.Add(uint64(segmented))
	}
	if m.werr != 0 && wh.runs[m.wn] > 1 {
		m.refused(ms[sent].addr, m.werr, len(ms[sent].buf))
	}
	if m.src != nil && (m.werr == unix.EINVAL || m.werr == unix.EADDRNOTAVAIL) {
		m.src.forget(ms[sent].addr) // a source gone since: the retry lets the kernel choose
	}
	return sent, errnoErr(m.werr)
}

// maxGSOOff is how many destinations may have offload limited before it
// goes off for the whole socket.
const maxGSOOff = 64

// gsoRoute is what a destination's route refused: segments longer than
// maxSeg go alone (maxSeg 0: every one).
type gsoRoute struct {
	maxSeg   int32
	refusals int32
}

// takes reports whether a run whose segments are size bytes may go to
// the destination as one segmented message; a destination never refused
// takes any.
func (r gsoRoute) takes(size int) bool { return r.refusals == 0 || size <= int(r.maxSeg) }

// refused takes a refusal of a segmented message of seg-byte segments to
// dst. Where the route will not take segments that long (EINVAL,
// EMSGSIZE: most often a segment over the route's MTU, as a path-MTU
// probe among shorter packets is), segments of that length and longer go
// alone to dst from then on, and shorter ones keep offload; a third such
// refusal, whatever the length, turns offload off for dst. Where the
// device will not segment at all (EIO: IPsec, no checksum offload on
// older kernels) it goes off for dst at once, and where the error is the
// socket's, for the socket. The flush retries the datagrams without it:
// none lost, none doubled.
func (m *mmsgIO) refused(dst netip.AddrPort, e syscall.Errno, seg int) {
	switch e {
	case unix.EIO, unix.EINVAL, unix.EMSGSIZE: // the route's
		if !dst.IsValid() || len(m.gsoOff) >= maxGSOOff {
			m.gso = false
			break
		}
		if m.gsoOff == nil {
			m.gsoOff = make(map[netip.Addr]gsoRoute)
		}
		r := m.gsoOff[dst.Addr()]
		r.refusals++
		r.maxSeg = int32(seg - 1)
		if e == unix.EIO || r.refusals >= 3 {
			r.maxSeg = 0
		}
		m.gsoOff[dst.Addr()] = r
	case unix.ENOPROTOOPT, unix.EOPNOTSUPP: // the socket's
		m.gso = false
	default:
		return // the destination's (EPERM, ENETUNREACH, ...): not offload's
	}
	m.stats.offloadFallbacks.Add(1)
}

// gsoSegmentLimit is the most segments the kernel takes in one message
// (UDP_MAX_SEGMENTS), probed once per process.
var gsoSegmentLimit = sync.OnceValue(probeGSOSegments)

// probeGSOSegments sends one message of gsoMaxSegsProbe one-byte segments
// between two loopback sockets of its own: older kernels refuse more than
// 64 with EINVAL. Where it cannot tell (no loopback in this network
// namespace, say), it answers 64, which every kernel with GSO takes.
func probeGSOSegments() int {
	rx, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return gsoMaxSegs
	}
	defer unix.Close(rx)
	tx, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return gsoMaxSegs
	}
	defer unix.Close(tx)
	if unix.Bind(rx, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}) != nil {
		return gsoMaxSegs
	}
	to, err := unix.Getsockname(rx)
	if err != nil {
		return gsoMaxSegs
	}
	var oob [oobSpace]byte
	n := putSegSize(oob[:], wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, 1)
	if unix.Sendmsg(tx, make([]byte, gsoMaxSegsProbe), oob[:n], to, 0) != nil {
		return gsoMaxSegs
	}
	return gsoMaxSegsProbe
}

// send is the poller's callback: false means "wait until writable".
func (m *mmsgIO) send(fd uintptr) bool {
	if m.fault != nil {
		if e := m.fault(&m.wh.hdrs[0]); e != 0 {
			m.wn, m.werr = 0, e
			return true
		}
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&m.wh.hdrs[0])), uintptr(m.wk), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			m.wwait.Store(true)
			return false
		}
		m.wn, m.werr = int(n), e
		if e != 0 {
			m.wn = 0 // the kernel returns -1
		}
		return true
	}
}

// putSockaddr writes ap into sa in the socket's family and returns its
// length. An IPv6 socket takes IPv4 destinations IPv4-mapped.
func putSockaddr(sa *unix.RawSockaddrInet6, ipv6 bool, ap netip.AddrPort) uint32 {
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port[0], port[1] = byte(ap.Port()>>8), byte(ap.Port())
	if !ipv6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = ap.Addr().As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Flowinfo = 0
	sa.Addr = ap.Addr().As16()
	sa.Scope_id = 0 // zoned destinations go through plain
	return unix.SizeofSockaddrInet6
}

// addrPort decodes a received sender address as plain does: IPv4 from an
// IPv4 socket, IPv6 (IPv4-mapped for IPv4 peers) from an IPv6 one, with
// the zone named after the interface.
func (m *mmsgIO) addrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := uint16(p[0])<<8 | uint16(p[1])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	ip := netip.AddrFrom16(sa.Addr)
	if sa.Scope_id != 0 {
		ip = ip.WithZone(m.zoneName(sa.Scope_id))
	}
	return netip.AddrPortFrom(ip, port)
}

// zoneName names an interface index as the net package does: its name, or
// the number where the interface is unknown.
func (m *mmsgIO) zoneName(id uint32) string {
	if id != m.zoneID {
		m.zoneID, m.zone = id, strconv.FormatUint(uint64(id), 10)
		if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
			m.zone = ifi.Name
		}
	}
	return m.zone
}

// mmsghdr is the kernel's struct mmsghdr. (golang.org/x/sys/unix has it
// only in versions that need a newer Go.) Go pads it as C does: 64 bytes
// on 64-bit systems, 32 on 32-bit ones.
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
}
