package batchconn

import (
	"net/netip"
	"testing"
)

// A source a caller asks for is taken where a datagram came in at it
// lately (on its interface, where the caller names one); the unspecified
// source with no interface is the kernel's choice, always taken, and a
// link-local one needs its interface.
func TestSourcesHeard(t *testing.T) {
	var s sources
	a := netip.MustParseAddr("192.0.2.1")
	ll := netip.MustParseAddr("fe80::1")
	peer := netip.MustParseAddrPort("198.18.0.9:53")
	s.learn(peer, replySource{addr: a}, replySource{addr: a, ifindex: 3})
	s.learn(peer, replySource{addr: ll}, replySource{addr: ll, ifindex: 4})
	for _, c := range []struct {
		src     netip.Addr
		ifindex uint32
		want    bool
	}{
		{a, 0, true}, {a, 3, true}, {a, 4, false},
		{netip.MustParseAddr("192.0.2.2"), 0, false},
		{netip.IPv4Unspecified(), 0, true}, {netip.IPv6Unspecified(), 3, true}, {netip.IPv6Unspecified(), 9, false},
		{ll, 0, false}, {ll, 4, true},
	} {
		if got := s.heard(c.src, c.ifindex); got != c.want {
			t.Errorf("heard(%v, %d) = %v, want %v", c.src, c.ifindex, got, c.want)
		}
	}
	for i := range 2 * maxLocals { // the latest are remembered, the oldest let go
		ip := netip.AddrFrom4([4]byte{198, 18, 1, byte(i)})
		s.learn(peer, replySource{addr: ip}, replySource{addr: ip, ifindex: 5})
	}
	if s.heard(a, 0) || !s.heard(netip.AddrFrom4([4]byte{198, 18, 1, 2*maxLocals - 1}), 5) {
		t.Error("the locals remembered are not the latest")
	}
}
