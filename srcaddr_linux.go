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
func watchSources(rc syscall.RawConn, ipv6 bool) bool {
	var err error
	rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		if err == nil && ipv6 {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	})
	return err == nil
}

// sourceOf reads the reply source from a received datagram's control
// data: IPv4's packet info names it (the local address it was sent to, or
// the receiving interface's for a broadcast or multicast); IPv6's names
// the destination, which for a multicast one gives way to the interface.
func sourceOf(oob []byte) (replySource, bool) {
	if d := cmsgData(oob, wordSize, unix.IPPROTO_IP, unix.IP_PKTINFO); len(d) >= 12 {
		return replySource{addr: netip.AddrFrom4([4]byte(d[4:8]))}, true
	}
	if d := cmsgData(oob, wordSize, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); len(d) >= 20 {
		a := netip.AddrFrom16([16]byte(d[:16]))
		if a.Is4In6() {
			return replySource{}, false // IPv4's own info was missing: leave it to the kernel
		}
		if a.IsMulticast() {
			return replySource{addr: netip.IPv6Unspecified(), ifindex: binary.NativeEndian.Uint32(d[16:20])}, true
		}
		return replySource{addr: a}, true
	}
	return replySource{}, false
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
