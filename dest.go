package batchconn

import (
	"net"
	"net/netip"
)

// A dest is the destination of a write as its caller gave it: through
// which of plain's methods, with what, and (when it can be queued) as
// the queue holds it.
type dest struct {
	via  writeVia
	addr net.Addr       // WriteTo's argument (WriteMsgUDP's, where not nil)
	ap   netip.AddrPort // WriteToUDPAddrPort's argument, the converted addr, or Write's peer
}

type writeVia uint8

const (
	viaWriteTo writeVia = iota
	viaWriteToUDPAddrPort
	viaWrite
	viaWriteMsgUDP
	viaWriteMsgUDPAddrPort
)

// plain makes the call the caller made, on plain; m is a WriteMsgUDP's.
// (The caller's control messages travel beside a dest, not in it: a
// dest's contents escape with its address, and they would with it.)
func (d *dest) plain(uc *net.UDPConn, p []byte, m *callerMsg) (int, error) {
	switch d.via {
	case viaWriteTo:
		return uc.WriteTo(p, d.addr)
	case viaWriteToUDPAddrPort:
		return uc.WriteToUDPAddrPort(p, d.ap)
	case viaWriteMsgUDP, viaWriteMsgUDPAddrPort:
		return m.plain(uc, p, d)
	}
	return uc.Write(p)
}

// errAddr is the Addr of an error about this write, as plain puts it.
func (s *socket) errAddr(d *dest, m *callerMsg) net.Addr {
	switch d.via {
	case viaWriteTo:
		return d.addr
	case viaWriteToUDPAddrPort:
		return addrOf(d.ap)
	case viaWriteMsgUDP:
		return d.addr
	case viaWriteMsgUDPAddrPort:
		return addrOf(m.arg)
	}
	return s.raddr
}

// queueable converts addr for the queue, reporting false where plain
// would refuse the datagram at once or treats the address specially; such
// datagrams go through plain itself, which gives its own answer.
func (s *socket) queueable(ua *net.UDPAddr, n int) (netip.AddrPort, bool) {
	if ua == nil || ua.Zone != "" || uint(ua.Port) > 0xffff {
		return netip.AddrPort{}, false
	}
	var ip netip.Addr
	if ip4 := ua.IP.To4(); ip4 != nil {
		if s.info.ipv6 && ip4.Equal(net.IPv4zero) { // plain sends that to ::
			return netip.AddrPort{}, false
		}
		ip = netip.AddrFrom4([4]byte(ip4))
	} else if len(ua.IP) == net.IPv6len {
		ip = netip.AddrFrom16([16]byte(ua.IP))
	} else {
		return netip.AddrPort{}, false
	}
	ap := netip.AddrPortFrom(ip, uint16(ua.Port))
	return ap, s.queueableAddrPort(ap, n)
}

func (s *socket) queueableAddrPort(ap netip.AddrPort, n int) bool {
	ip := ap.Addr()
	if s.raddr != nil || !ip.IsValid() || ip.Zone() != "" || ap.Port() == 0 {
		return false // plain's error, or the kernel's EINVAL for port 0
	}
	if ip.Is4() || ip.Is4In6() {
		// An IPv6 socket sends IPv4 as IPv4-mapped, which a v6only one
		// refuses. Whether the kernel takes the limited broadcast depends
		// on SO_BROADCAST and the route: let plain ask it, at once.
		return !s.info.v6only && n <= maxPayload4 && ip.Unmap() != limitedBroadcast
	}
	return s.info.ipv6 && n <= maxPayload6
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

const (
	maxPayload4 = 65535 - 20 - 8 // IPv4 header and UDP header
	maxPayload6 = 65535 - 8      // the UDP header; IPv6 counts no header of its own
)
