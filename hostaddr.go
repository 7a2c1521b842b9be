package batchconn

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The host's own addresses, for telling which destinations may be
// sockets on this host (fanout.go): a datagram to one of them reaches a
// local socket as one to 127.0.0.1 would. They are read from the
// interfaces once a process first asks, and again, in the background,
// when asked after hostAddrsAge: an address added since is known within
// about that long. Where the interfaces cannot be read, the host has only
// its loopback and unspecified addresses, which orderKey knows without
// asking.

// hostAddrsAge is how old the addresses may be before they are read again.
const hostAddrsAge = time.Second

type hostAddrSet struct {
	addrs map[netip.Addr]struct{}
	read  int64 // monoNow when read
}

var hostAddrs struct {
	set        atomic.Pointer[hostAddrSet]
	first      sync.Once
	refreshing atomic.Bool
}

// isHostAddr reports whether ip (unmapped, without a zone) is one of this
// host's own addresses, or the broadcast address of one of its IPv4
// networks.
func isHostAddr(ip netip.Addr) bool {
	s := hostAddrs.set.Load()
	if s == nil {
		hostAddrs.first.Do(readHostAddrs)
		s = hostAddrs.set.Load()
	} else if monoNow()-s.read > int64(hostAddrsAge) && hostAddrs.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer hostAddrs.refreshing.Store(false)
			readHostAddrs()
		}()
	}
	_, ok := s.addrs[ip]
	return ok
}

// readHostAddrs reads the interfaces' addresses into a new set.
func readHostAddrs() {
	s := &hostAddrSet{addrs: make(map[netip.Addr]struct{}), read: monoNow()}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		s.addrs[ip] = struct{}{}
		if ip.Is4() && len(n.Mask) >= net.IPv4len {
			b := ip.As4()
			m := n.Mask[len(n.Mask)-net.IPv4len:]
			for i := range b {
				b[i] |= ^m[i]
			}
			s.addrs[netip.AddrFrom4(b)] = struct{}{} // the network's broadcast
		}
	}
	hostAddrs.set.Store(s)
}
