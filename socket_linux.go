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
// deadlines and Close act on a blocked call as they do on a *net.UDPConn.
//
// It keeps its own message headers rather than using x/net's ReadBatch
// and WriteBatch: those allocate headers on every call and a *net.UDPAddr
// for every received datagram, and the point of batching is to do less.
// The headers live with the memory they point into, in the pooled read
// and write blocks, so that an idle conn holds none.
type mmsgIO struct {
	rc          syscall.RawConn
	stats       *counters
	sources     *sources // peers' reply sources, on a socket bound to a wildcard address (srcaddr.go); nil elsewhere
	batch       int      // Config.BatchSize: the most messages one call moves
	ipv6        bool
	connected   bool  // datagrams go to the socket's peer: no destination in the headers
	queueFactor uint8 // the write queue gathers batch*queueFactor datagrams with GSO

	// own holds the packet info options (hidePktinfo4, hidePktinfo6) the
	// conn turned on for itself and its caller has not, as seen at New
	// and after each of the caller's Control calls (ownopts_linux.go).
	own   atomic.Uint32
	ctlMu sync.Mutex // a caller's Control call, while own is worked out around it

	rx receiver // recv_linux.go; owned by the reader (reader.mu)
	tx sender   // send_linux.go; owned by the writer (writer.mu)
}

// msgTrunc and msgCtrunc are the flags ReadMsgUDP reports for a datagram
// cut short and for control messages cut short.
const (
	msgTrunc  = unix.MSG_TRUNC
	msgCtrunc = unix.MSG_CTRUNC
)

// newBatchIO prepares batching for uc without a system call of its own
// where it can: what only some conns need (GRO, the segmentation offload
// probe, headers, buffers) waits until a conn needs it, so that a conn
// that carries one query costs what a *net.UDPConn costs.
func newBatchIO(uc *net.UDPConn, cfg *settings, stats *counters) (rxIO, txIO, sockInfo) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, sockInfo{}
	}
	sock, ok := socketInfo(uc, rc)
	if !ok {
		return nil, nil, sockInfo{}
	}
	m := &mmsgIO{
		rc:        rc,
		stats:     stats,
		batch:     cfg.BatchSize,
		ipv6:      sock.ipv6,
		connected: uc.RemoteAddr() != nil,

		queueFactor: uint8(cfg.queueFactor),
	}
	m.initRecv(cfg)
	m.initSend(cfg)
	if la, ok := uc.LocalAddr().(*net.UDPAddr); ok && la.IP.IsUnspecified() && !m.connected {
		m.watchSources(rc, cfg)
	}
	return m, m, sock
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

// setsockopt sets an integer socket option, reporting whether the kernel
// took it.
func (m *mmsgIO) setsockopt(level, opt, value int) bool {
	var err error
	cerr := m.rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), level, opt, value)
	})
	return cerr == nil && err == nil
}

// mmsghdr is the kernel's struct mmsghdr. (golang.org/x/sys/unix has it
// only in versions that need a newer Go.) Go pads it as C does: 64 bytes
// on 64-bit systems, 32 on 32-bit ones.
type mmsghdr struct {
	Hdr unix.Msghdr
	Len uint32
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
	sa.Scope_id = 0 // zoned destinations go through the *net.UDPConn
	return unix.SizeofSockaddrInet6
}

// sockaddrAddrPort decodes a received sender address as a *net.UDPConn
// does: IPv4 from an IPv4 socket, IPv6 (IPv4-mapped for IPv4 peers) from
// an IPv6 one, with the zone named after the interface.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6, zones *zoneNames) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := uint16(p[0])<<8 | uint16(p[1])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	ip := netip.AddrFrom16(sa.Addr)
	if sa.Scope_id != 0 {
		ip = ip.WithZone(zones.name(sa.Scope_id))
	}
	return netip.AddrPortFrom(ip, port)
}

// zoneNames remembers the last scope ID seen and its name: link-local
// peers come one at a time, mostly the same.
type zoneNames struct {
	id   uint32
	zone string
}

// name names an interface index as the net package does: its name, or the
// number where the interface is unknown.
func (z *zoneNames) name(id uint32) string {
	if id != z.id {
		z.id, z.zone = id, strconv.FormatUint(uint64(id), 10)
		if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
			z.zone = ifi.Name
		}
	}
	return z.zone
}
