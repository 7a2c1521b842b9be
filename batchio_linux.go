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
type mmsgIO struct {
	rc        syscall.RawConn
	ipv6      bool
	connected bool // datagrams go to the socket's peer: no destination in the headers
	stats     *counters

	// Read side, owned by the reader (reader.mu).
	rhdrs  []mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6
	roob   []byte  // a control buffer per message, for UDP_GRO's segment size
	gro    bool    // the kernel coalesces received datagrams (UDP_GRO)
	rring  []rxMsg // the ring the headers point into
	rn     int
	rerr   syscall.Errno
	waited bool // the poller waited for this call: read one datagram
	recvFn func(fd uintptr) bool
	zoneID uint32 // the last scope ID seen and its name: link-local peers
	zone   string

	// Write side, owned by the writer (writer.mu).
	whdrs  []mmsghdr
	wiovs  []unix.Iovec
	wnames []unix.RawSockaddrInet6
	woob   []byte              // a control buffer per message, for UDP_SEGMENT
	wruns  []int               // datagrams in each message of this call
	gso    bool                // send runs as one message (UDP_SEGMENT); off after a socket-wide refusal
	segs   int                 // the most segments in one message: the kernel's limit
	gsoOff map[netip.Addr]bool // destinations whose route refused a segmented message
	wk     int                 // headers in use for this call
	wwait  atomic.Bool         // the poller waits for the socket to take more
	// fault, set by tests, fails a message as the kernel would, before
	// the kernel sees it: the errors this kernel no longer returns.
	fault  func(h *mmsghdr) syscall.Errno
	wn     int
	werr   syscall.Errno
	sendFn func(fd uintptr) bool
}

// oobSpace is the control buffer of one message: room for one control
// message with an int, on any word size.
const oobSpace = 32

// wordSize is the alignment of control messages: the size of a C long.
const wordSize = int(unsafe.Sizeof(uintptr(0)))

func newBatchIO(uc *net.UDPConn, cfg Config, stats *counters) (batchIO, sockInfo) {
	batch := cfg.BatchSize
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, sockInfo{}
	}
	var sock sockInfo
	var family int
	var gso, gro bool
	cerr := rc.Control(func(fd uintptr) {
		family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err == nil && family == unix.AF_INET6 {
			v6only, verr := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			sock.v6only = verr == nil && v6only != 0
		}
		if cfg.NoOffload {
			return
		}
		// The kernel takes UDP_SEGMENT if it knows the option (4.18 on).
		_, serr := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = serr == nil
		// A coalesced buffer can hold up to 64 KiB: only slots that big
		// may receive one, or datagrams would be cut short.
		if cfg.ReadSlotSize >= maxDatagram {
			gro = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
		}
	})
	if cerr != nil || err != nil || family != unix.AF_INET && family != unix.AF_INET6 {
		return nil, sockInfo{}
	}
	sock.ipv6 = family == unix.AF_INET6
	iovs := batch // one datagram a message
	if gso {
		iovs = batch * gsoQueueFactor // runs: several datagrams a message
	}
	m := &mmsgIO{
		rc:        rc,
		ipv6:      sock.ipv6,
		connected: uc.RemoteAddr() != nil,
		stats:     stats,
		gso:       gso,
		gro:       gro,
		rhdrs:     make([]mmsghdr, batch),
		riovs:     make([]unix.Iovec, batch),
		rnames:    make([]unix.RawSockaddrInet6, batch),
		whdrs:     make([]mmsghdr, batch),
		wiovs:     make([]unix.Iovec, iovs),
		wnames:    make([]unix.RawSockaddrInet6, batch),
		woob:      make([]byte, batch*oobSpace),
		wruns:     make([]int, batch),
	}
	if gro {
		m.roob = make([]byte, batch*oobSpace)
	}
	if gso {
		m.segs = gsoSegmentLimit()
	}
	for i := range batch {
		m.rhdrs[i].Hdr.Iov = &m.riovs[i]
		m.rhdrs[i].Hdr.SetIovlen(1)
		m.rhdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&m.rnames[i]))
		m.whdrs[i].Hdr.Iov = &m.wiovs[i]
		m.whdrs[i].Hdr.SetIovlen(1)
	}
	m.recvFn = m.recv // method values made once: no allocation per call
	m.sendFn = m.send
	return m, sock
}

func (m *mmsgIO) readBatch(ms []rxMsg) (int, error) {
	if len(m.rring) != len(ms) || &m.rring[0] != &ms[0] {
		m.rring = ms // a new or grown ring
		for i := range ms {
			m.riovs[i].Base = unsafe.SliceData(ms[i].buf)
			m.riovs[i].SetLen(len(ms[i].buf))
		}
	}
	for i := range ms {
		h := &m.rhdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if m.gro {
			h.Control = &m.roob[i*oobSpace]
			h.SetControllen(oobSpace)
		}
	}
	m.waited = false
	if err := m.rc.Read(m.recvFn); err != nil {
		return 0, unwrapRaw(err)
	}
	if m.rerr != 0 {
		return 0, m.rerr
	}
	for i := range m.rn {
		h := &m.rhdrs[i]
		ms[i].n = int(h.Len)
		ms[i].addr = m.addrPort(&m.rnames[i])
		ms[i].seg = 0
		if m.gro && h.Hdr.Controllen > 0 {
			oob := m.roob[i*oobSpace : i*oobSpace+min(int(h.Hdr.Controllen), oobSpace)]
			ms[i].seg = groSegSize(oob, wordSize, unix.SOL_UDP, unix.UDP_GRO)
		}
	}
	return m.rn, nil
}

// recv is the poller's callback: false means "wait until readable".
//
// A call that follows a wait asks for one datagram only: the wait says the
// socket had nothing a moment ago, so most likely one datagram woke it,
// and asking for more costs the kernel a second, failing attempt, the
// difference between a request/response loop on batchconn and on plain.
// Datagrams that arrived together are read by the next call, which finds
// them waiting and takes a whole batch.
func (m *mmsgIO) recv(fd uintptr) bool {
	vlen := len(m.rring)
	if m.waited {
		vlen = 1
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&m.rhdrs[0])), uintptr(vlen), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			m.waited = true
			return false
		}
		m.rn, m.rerr = int(n), e
		return true
	}
}

// gsoQueueFactor is how many more datagrams the queue gathers with
// segmentation offload than without: each message then carries a run.
var gsoQueueFactor = 8

func (m *mmsgIO) writeWaiting() bool { return m.wwait.Load() }

func (m *mmsgIO) batchLimit() int {
	if m.gso {
		return len(m.whdrs) * gsoQueueFactor
	}
	return len(m.whdrs)
}

func (m *mmsgIO) writeBatch(ms []txMsg) (int, error) {
	k, iov := 0, 0 // messages and datagrams in this call
	for iov < len(ms) && k < len(m.whdrs) && iov < len(m.wiovs) {
		n, seg := 1, 0
		if m.gso && (len(m.gsoOff) == 0 || !m.gsoOff[ms[iov].addr.Addr()]) {
			n, seg = coalesce(ms[iov:min(len(ms), len(m.wiovs))], m.segs)
		}
		h := &m.whdrs[k].Hdr
		h.Iov = &m.wiovs[iov]
		h.SetIovlen(n)
		for _, d := range ms[iov : iov+n] {
			m.wiovs[iov].Base = unsafe.SliceData(d.buf)
			m.wiovs[iov].SetLen(len(d.buf))
			iov++
		}
		if dst := ms[iov-n].addr; !m.connected && dst.IsValid() {
			h.Name = (*byte)(unsafe.Pointer(&m.wnames[k]))
			h.Namelen = putSockaddr(&m.wnames[k], m.ipv6, dst)
		} else {
			h.Name, h.Namelen = nil, 0
		}
		if seg > 0 {
			oob := m.woob[k*oobSpace : (k+1)*oobSpace]
			h.Control = &oob[0]
			h.SetControllen(putSegSize(oob, wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(seg)))
		} else {
			h.Control = nil
			h.SetControllen(0)
		}
		m.wruns[k] = n
		k++
	}
	m.wk = k
	err := m.rc.Write(m.sendFn)
	m.wwait.Store(false)
	if err != nil {
		return 0, unwrapRaw(err)
	}
	sent, segmented := 0, 0
	for _, n := range m.wruns[:m.wn] {
		sent += n
		if n > 1 {
			segmented += n
		}
	}
	if segmented > 0 {
		m.stats.offloadSent.Add(uint64(segmented))
	}
	if m.werr != 0 && m.wruns[m.wn] > 1 {
		m.refused(ms[sent].addr, m.werr)
	}
	return sent, errnoErr(m.werr)
}

// maxGSOOff is how many destinations may have offload off before it goes
// off for the whole socket.
const maxGSOOff = 64

// refused takes a refusal of a segmented message to dst. Where the
// kernel or the device will not segment it (a segment over the route's
// MTU that a plain send would fragment, a route through IPsec or a device
// without checksum offload, a socket or kernel without GSO), offload goes
// off for that destination, or for the socket where the error is the
// socket's. The flush retries the datagrams without it: none lost, none
// doubled.
func (m *mmsgIO) refused(dst netip.AddrPort, e syscall.Errno) {
	switch e {
	case unix.EIO, unix.EINVAL, unix.EMSGSIZE: // the route's
		if !m.connected && dst.IsValid() && len(m.gsoOff) < maxGSOOff {
			if m.gsoOff == nil {
				m.gsoOff = make(map[netip.Addr]bool)
			}
			m.gsoOff[dst.Addr()] = true
			break
		}
		m.gso = false
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
		if e := m.fault(&m.whdrs[0]); e != 0 {
			m.wn, m.werr = 0, e
			return true
		}
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&m.whdrs[0])), uintptr(m.wk), 0, 0, 0)
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
