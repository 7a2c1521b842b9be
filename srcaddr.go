package batchconn

import (
	"net/netip"
	"sync"
)

// Source addresses. A server on a socket bound to a wildcard address
// (0.0.0.0 or ::) on a host with several addresses must answer each
// query from the address it was sent to: a DNS client that asked
// 192.0.2.2 drops an answer from 192.0.2.1. Plain *net.UDPConn leaves the
// source to the kernel's route, and libraries that care (miekg/dns) read
// the destination of each query with ReadMsgUDP and set the source with
// WriteMsgUDP, which a wrapped conn does not offer. batchconn does it for
// them: on a wildcard socket it asks the kernel for each datagram's
// destination (IP_PKTINFO, IPV6_RECVPKTINFO), remembers, for each peer,
// the local address the peer last wrote to, and sends to that peer from
// it. Where the peer wrote to a multicast or broadcast address, the
// answer leaves from the receiving interface's own address, as the
// kernel would choose it. A peer never heard from gets the kernel's
// choice. Config.KernelChoosesSource turns it off.

// A replySource is where datagrams to one peer leave from.
type replySource struct {
	addr    netip.Addr // the source; unspecified: the kernel's choice on ifindex
	ifindex uint32     // the interface the peer's datagram came in on
}

// sourcesPerGeneration bounds what a conn remembers: the peers heard from
// since the last of two generations began, at most twice this many. A
// peer forgotten gets its source back with its next datagram.
const sourcesPerGeneration = 1024

// sources maps peers to the sources of replies to them.
type sources struct {
	mu        sync.Mutex
	cur, prev map[netip.AddrPort]replySource
	// last is the most recent peer and its source: a server answers the
	// peer it has just read from, and a reader hears from one sender in
	// runs, without a map operation.
	last     netip.AddrPort
	lastSrc  replySource
	lastFull bool
	// localsOnly: the kernel chooses sources (Config.KernelChoosesSource);
	// the conn remembers only where datagrams came in (locals).
	localsOnly bool
	// locals are the local addresses (with their interfaces) datagrams
	// came in at, the latest few: a source a caller asks for on a write
	// (WriteMsgUDP) that is one of them is one the kernel takes.
	locals    [maxLocals]replySource
	numLocals int
	nextLocal int
}

// maxLocals is how many local addresses a conn remembers it received at.
const maxLocals = 16

// key is how a peer is remembered: an IPv4 peer as such, whether an IPv6
// socket saw it IPv4-mapped or a caller wrote to it so.
func key(peer netip.AddrPort) netip.AddrPort {
	if a := peer.Addr(); a.Is4In6() {
		return netip.AddrPortFrom(a.Unmap(), peer.Port())
	}
	return peer
}

// learn records that peer wrote to the local address src, which came in
// at local (see noteLocal).
func (s *sources) learn(peer netip.AddrPort, src, local replySource) {
	peer = key(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteLocal(local)
	if s.localsOnly {
		return
	}
	if s.lastFull && peer == s.last && src == s.lastSrc {
		return
	}
	s.last, s.lastSrc, s.lastFull = peer, src, true
	if s.cur == nil {
		s.cur = make(map[netip.AddrPort]replySource)
	}
	if old, ok := s.cur[peer]; ok && old == src {
		return
	}
	if len(s.cur) >= sourcesPerGeneration {
		s.prev, s.cur = s.cur, make(map[netip.AddrPort]replySource, sourcesPerGeneration)
	}
	s.cur[peer] = src
}

// lookup returns the source for datagrams to peer, if it was heard from.
func (s *sources) lookup(peer netip.AddrPort) (replySource, bool) {
	peer = key(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastFull && peer == s.last {
		return s.lastSrc, true
	}
	if src, ok := s.cur[peer]; ok {
		return src, true
	}
	src, ok := s.prev[peer]
	return src, ok
}

// forget drops peer's source, after the kernel refused it (an address
// removed since): the kernel chooses again.
func (s *sources) forget(peer netip.AddrPort) {
	peer = key(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == peer {
		s.lastFull = false
	}
	delete(s.cur, peer)
	delete(s.prev, peer)
}

// noteLocal remembers that a datagram came in at src, the local address
// and its interface; s.mu is held.
func (s *sources) noteLocal(src replySource) {
	if s.numLocals > 0 && s.locals[(s.nextLocal+maxLocals-1)%maxLocals] == src {
		return
	}
	for _, l := range s.locals[:s.numLocals] {
		if l == src {
			return
		}
	}
	if s.numLocals < maxLocals {
		s.numLocals++
	}
	s.locals[s.nextLocal] = src
	s.nextLocal = (s.nextLocal + 1) % maxLocals
}

// heard reports whether a datagram came in at the local address src
// (unmapped) on the interface ifindex (0: any) lately: a source the
// kernel takes for a write. The unspecified address with no interface is
// the kernel's own choice, always taken.
func (s *sources) heard(src netip.Addr, ifindex uint32) bool {
	if src.IsUnspecified() && ifindex == 0 {
		return true
	}
	if src.Is6() && src.IsLinkLocalUnicast() && ifindex == 0 {
		return false // the kernel wants the interface of a link-local source
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.locals[:s.numLocals] {
		if (l.addr == src || src.IsUnspecified()) && (ifindex == 0 || l.ifindex == ifindex) {
			return true
		}
	}
	return false
}
