package batchconn

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// watchSources asks the kernel for each received datagram's destination
// on a socket bound to a wildcard address (srcaddr.go). An IPv6 socket
// asks for IPv4 datagrams' packet info too, which carries the address a
// reply should leave from where the datagram was broadcast or multicast.
// It reports which of the two the socket's owner had not turned on
// (mmsgIO.own): those are the conn's alone.
func watchSources(rc syscall.RawConn, ipv6 bool) (own uint32, ok bool) {
	var err error
	rc.Control(func(fd uintptr) {
		own = ownPktinfo(fd, ipv6)
		err = setPktinfo(fd, ipv6)
	})
	return own, err == nil
}

// watchSources sets up the conn's sources on a socket bound to a wildcard
// address. Where the kernel is to choose them (KernelChoosesSource), the
// conn turns nothing on and only remembers where datagrams came in, from
// the packet info its caller turns on, to tell which sources the caller
// may choose (sources.heard).
func (m *mmsgIO) watchSources(rc syscall.RawConn, cfg *settings) {
	if cfg.KernelChoosesSource {
		m.sources = &sources{localsOnly: true}
		return
	}
	if own, ok := watchSources(rc, m.ipv6); ok {
		m.own.Store(own)
		m.sources = new(sources)
		m.rx.wantControl()
	}
}

// ownPktinfo reads which of the packet info options are off on fd.
func ownPktinfo(fd uintptr, ipv6 bool) uint32 {
	var own controlHide
	if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO); err == nil && v == 0 {
		own |= hidePktinfo4
	}
	if ipv6 {
		if v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO); err == nil && v == 0 {
			own |= hidePktinfo6
		}
	}
	return uint32(own)
}

func setPktinfo(fd uintptr, ipv6 bool) error {
	err := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	if err == nil && ipv6 {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	}
	return err
}

// control runs a caller's f on the socket. Where the conn turned packet
// info on for itself, f sees the options as the caller left them (a
// getsockopt in f reads what it would read on plain), and what f leaves
// them at decides whether the caller sees packet info from then on; the
// conn's own stays on. Datagrams received while f runs may come without
// the packet info the conn would have used to choose a reply's source:
// their replies leave from the kernel's choice.
func (m *mmsgIO) control(f func(fd uintptr)) error {
	if m.sources == nil || m.sources.localsOnly {
		return m.rc.Control(f)
	}
	m.ctlMu.Lock()
	defer m.ctlMu.Unlock()
	return m.rc.Control(func(fd uintptr) {
		own := controlHide(m.own.Load())
		if own&hidePktinfo4 != 0 {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 0)
		}
		if own&hidePktinfo6 != 0 {
			unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 0)
		}
		defer func() { // f may panic: the conn's options come back all the same
			m.own.Store(ownPktinfo(fd, m.ipv6))
			setPktinfo(fd, m.ipv6)
		}()
		f(fd)
	})
}

// packetInfo reads a received datagram's packet info, once: the reply
// source and where it came in (local: the local address and its
// interface, see sources.heard). IPv4's packet info names the source (the
// local address the datagram was sent to, or the receiving interface's
// for a broadcast or multicast); IPv6's names the destination, which for
// a multicast one gives way to the interface. ok is false where there is
// none, or only IPv6's for an IPv4 datagram (IPv4's own was missing:
// the kernel chooses).
func packetInfo(oob []byte) (src, local replySource, ok bool) {
	if d := cmsgData(oob, wordSize, unix.IPPROTO_IP, unix.IP_PKTINFO); len(d) >= 12 {
		a := netip.AddrFrom4([4]byte(d[4:8]))
		return replySource{addr: a}, replySource{addr: a, ifindex: binary.NativeEndian.Uint32(d[:4])}, true
	}
	if d := cmsgData(oob, wordSize, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); len(d) >= 20 {
		a, ifindex := netip.AddrFrom16([16]byte(d[:16])), binary.NativeEndian.Uint32(d[16:20])
		local = replySource{addr: a, ifindex: ifindex}
		switch {
		case a.Is4In6():
			return replySource{}, replySource{}, false
		case a.IsMulticast():
			return replySource{addr: netip.IPv6Unspecified(), ifindex: ifindex}, local, true
		}
		return replySource{addr: a}, local, true
	}
	return replySource{}, replySource{}, false
}

// putSource writes the control message that sends a datagram from src
// into oob and returns its length: IP_PKTINFO on an IPv4 socket,
// IPV6_PKTINFO (IPv4 sources IPv4-mapped) on an IPv6 one.
func putSource(oob []byte, ipv6 bool, src replySource) int {
	if !ipv6 {
		var info [12]byte // in_pktinfo: ifindex, spec_dst, addr
		*(*[4]byte)(info[4:8]) = src.addr.As4()
		return putCmsg(oob, wordSize, unix.IPPROTO_IP, unix.IP_PKTINFO, info[:])
	}
	var info [20]byte // in6_pktinfo: addr, ifindex
	*(*[16]byte)(info[:16]) = src.addr.As16()
	binary.NativeEndian.PutUint32(info[16:], src.ifindex)
	return putCmsg(oob, wordSize, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, info[:])
}
