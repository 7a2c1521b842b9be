package batchconn

import (
	"net"
	"net/netip"
	"strconv"
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
	rc   syscall.RawConn
	ipv6 bool

	// Read side, owned by the reader (reader.mu).
	rhdrs  []mmsghdr
	riovs  []unix.Iovec
	rnames []unix.RawSockaddrInet6
	rring  *rxMsg // the ring the headers point into
	rn     int
	rerr   syscall.Errno
	recvFn func(fd uintptr) bool
	zoneID uint32 // the last scope ID seen and its name: link-local peers
	zone   string

	// Write side, owned by the writer (writer.mu).
	whdrs  []mmsghdr
	wiovs  []unix.Iovec
	wnames []unix.RawSockaddrInet6
	wk     int // headers in use for this call
	wn     int
	werr   syscall.Errno
	sendFn func(fd uintptr) bool
}

func newBatchIO(uc *net.UDPConn, batch int) (batchIO, sockInfo) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, sockInfo{}
	}
	var sock sockInfo
	var family int
	cerr := rc.Control(func(fd uintptr) {
		family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err == nil && family == unix.AF_INET6 {
			v6only, verr := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
			sock.v6only = verr == nil && v6only != 0
		}
	})
	if cerr != nil || err != nil || family != unix.AF_INET && family != unix.AF_INET6 {
		return nil, sockInfo{}
	}
	sock.ipv6 = family == unix.AF_INET6
	m := &mmsgIO{
		rc:     rc,
		ipv6:   sock.ipv6,
		rhdrs:  make([]mmsghdr, batch),
		riovs:  make([]unix.Iovec, batch),
		rnames: make([]unix.RawSockaddrInet6, batch),
		whdrs:  make([]mmsghdr, batch),
		wiovs:  make([]unix.Iovec, batch),
		wnames: make([]unix.RawSockaddrInet6, batch),
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
	if m.rring != &ms[0] {
		m.rring = &ms[0]
		for i := range ms {
			m.riovs[i].Base = unsafe.SliceData(ms[i].buf)
			m.riovs[i].SetLen(len(ms[i].buf))
		}
	}
	for i := range ms {
		m.rhdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	if err := m.rc.Read(m.recvFn); err != nil {
		return 0, unwrapRaw(err)
	}
	if m.rerr != 0 {
		return 0, m.rerr
	}
	for i := range m.rn {
		ms[i].n = int(m.rhdrs[i].Len)
		ms[i].addr = m.addrPort(&m.rnames[i])
	}
	return m.rn, nil
}

// recv is the poller's callback: false means "wait until readable".
func (m *mmsgIO) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&m.rhdrs[0])), uintptr(len(m.rhdrs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.rn, m.rerr = int(n), e
		return true
	}
}

func (m *mmsgIO) writeBatch(ms []txMsg) (int, error) {
	k := min(len(ms), len(m.whdrs))
	for i := range k {
		h := &m.whdrs[i].Hdr
		m.wiovs[i].Base = unsafe.SliceData(ms[i].buf)
		m.wiovs[i].SetLen(len(ms[i].buf))
		if ms[i].addr.IsValid() {
			h.Name = (*byte)(unsafe.Pointer(&m.wnames[i]))
			h.Namelen = putSockaddr(&m.wnames[i], m.ipv6, ms[i].addr)
		} else {
			h.Name, h.Namelen = nil, 0
		}
	}
	m.wk = k
	if err := m.rc.Write(m.sendFn); err != nil {
		return 0, unwrapRaw(err)
	}
	if m.werr != 0 {
		return 0, m.werr
	}
	return m.wn, nil
}

// send is the poller's callback: false means "wait until writable".
func (m *mmsgIO) send(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&m.whdrs[0])), uintptr(m.wk), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
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
