package batchconn

import (
	"encoding/binary"
	"net/netip"
)

// A caller's control messages on a write (WriteMsgUDP). A queued datagram
// is sent after its WriteMsgUDP returned, so the queue takes only control
// messages of which it can tell at the call everything the kernel will
// check when they are sent (udp_cmsg_send, ip_cmsg_send and
// ip6_datagram_send_ctl in Linux): a segment size, a source address the
// socket has received datagrams at, TOS or traffic class, TTL or hop
// limit, each once, well formed and in range. A datagram with anything
// else (a malformed or unknown message, one the kernel checks against
// state the conn does not see, two of a kind) goes through plain, after
// the queue, and gets the kernel's own answer at the call.

// maxQueuedControl is the most bytes of a caller's control messages a
// queued datagram carries (UDP_SEGMENT aside): every kind the queue takes,
// once each, fits.
const maxQueuedControl = 96

// sendControl is what a caller's control messages ask of one datagram.
type sendControl struct {
	ctl     [maxQueuedControl]byte // the messages but UDP_SEGMENT, each padded, back to back
	ctlLen  int
	seg     int        // UDP_SEGMENT's segment size; 0: none
	src     netip.Addr // the source asked for (IP_PKTINFO, IPV6_PKTINFO), unmapped; valid only with hasSrc
	ifindex uint32     // and its interface; 0: any
	hasSrc  bool
}

// parseSendControl reads the control messages oob of a datagram to dst,
// on a socket of the family ipv6 says, and reports whether the queue may
// carry them (see above); where it may not, plain sends the datagram. It
// walks oob as the kernel does: no message where oob is shorter than a
// header, and trailing bytes too few for another header are ignored.
func parseSendControl(oob []byte, wordSize int, dst netip.AddrPort, ipv6 bool) (sc sendControl, ok bool) {
	hdrLen := align(wordSize+8, wordSize)
	// Whether the kernel reads the message as IPv4's (ip_cmsg_send: an
	// IPv4 socket, or an IPv4-mapped destination on an IPv6 one) or
	// IPv6's (ip6_datagram_send_ctl).
	v4 := !ipv6 || dst.Addr().Is4In6() || dst.Addr().Is4()
	var seen uint16 // kinds met so far
	for len(oob) >= hdrLen {
		cmsgLen := int(cmsgLength(oob, wordSize))
		if cmsgLen < hdrLen || cmsgLen > len(oob) {
			return sc, false // !CMSG_OK: EINVAL
		}
		level := int32(binary.NativeEndian.Uint32(oob[wordSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[wordSize+4:]))
		data := oob[hdrLen:cmsgLen]
		kind, good := checkSendControl(level, typ, data, v4, ipv6)
		if !good || seen&kind != 0 {
			return sc, false
		}
		seen |= kind
		switch kind {
		case kindSegment:
			sc.seg = int(binary.NativeEndian.Uint16(data))
		case kindPktinfo4:
			if v4 {
				sc.src, sc.hasSrc = netip.AddrFrom4([4]byte(data[4:8])), true
				sc.ifindex = binary.NativeEndian.Uint32(data[:4])
			}
		case kindPktinfo6:
			if ipv6 {
				sc.src, sc.hasSrc = netip.AddrFrom16([16]byte(data[:16])).Unmap(), true
				sc.ifindex = binary.NativeEndian.Uint32(data[16:20])
			}
		}
		if kind != kindSegment {
			if sc.ctlLen+align(cmsgLen, wordSize) > maxQueuedControl {
				return sc, false
			}
			copy(sc.ctl[sc.ctlLen:], oob[:cmsgLen])
			sc.ctlLen += align(cmsgLen, wordSize)
		}
		next := align(cmsgLen, wordSize)
		if next+hdrLen > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return sc, true
}

// The kinds of control message the queue carries.
const (
	kindSegment uint16 = 1 << iota
	kindTOS
	kindTTL
	kindPktinfo4
	kindPktinfo6
	kindTClass
	kindHopLimit
)

// checkSendControl names one control message's kind and reports whether
// the kernel takes it as it stands: the checks of Linux's send paths. v4
// says the datagram goes IPv4; ipv6, that the socket is IPv6. An IPv6
// message IPv4's path ignores (or the other way round) is still checked
// as its own path would, which only sends a few more datagrams through
// plain.
func checkSendControl(level, typ int32, data []byte, v4, ipv6 bool) (uint16, bool) {
	switch {
	case level == solUDP && typ == udpSegment:
		return kindSegment, len(data) == 2
	case level == solIP && typ == ipTOS:
		switch len(data) {
		case 1:
			return kindTOS, true
		case 4:
			v := int32(binary.NativeEndian.Uint32(data))
			return kindTOS, v >= 0 && v <= 255
		}
	case level == solIP && typ == ipTTL:
		if len(data) == 4 {
			v := int32(binary.NativeEndian.Uint32(data))
			return kindTTL, v >= 1 && v <= 255
		}
	case level == solIP && typ == ipPktinfo:
		return kindPktinfo4, len(data) == 12
	case level == solIPv6 && typ == ipv6Pktinfo:
		if len(data) != 20 {
			return kindPktinfo6, false
		}
		// On an IPv6 socket, IPv4's path takes only an IPv4-mapped
		// source here, and IPv6's only an IPv6 one (a local address).
		mapped := netip.AddrFrom16([16]byte(data[:16])).Is4In6()
		return kindPktinfo6, !ipv6 || v4 == mapped
	case level == solIPv6 && (typ == ipv6TClass || typ == ipv6HopLimit):
		kind := kindTClass
		if typ == ipv6HopLimit {
			kind = kindHopLimit
		}
		if len(data) == 4 {
			v := int32(binary.NativeEndian.Uint32(data))
			return kind, v >= -1 && v <= 255
		}
		return kind, false
	}
	return 0, false
}
