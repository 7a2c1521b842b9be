package batchconn

import (
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// gsoState is how far a socket may send runs as segmented messages
// (UDP_SEGMENT): decided at its first queued datagram, then narrowed for
// each destination whose route refuses them. Owned by the writer.
type gsoState struct {
	routes  map[netip.Addr]gsoRoute // destinations whose route refused a segmented message
	maxSegs int                     // the most segments in one message: the kernel's limit
	allowed bool                    // not turned off by the Config, the operator or the kernel's release
	probed  bool                    // on and maxSegs are set: the first send has been prepared
	on      bool                    // runs go as one message; off after a socket-wide refusal
	// equalRunsUnsafe: the kernel mangles segmented messages whose
	// segments are all of one length (kernel.go); such runs go one
	// datagram a message.
	equalRunsUnsafe bool
}

func (g *gsoState) init(cfg *settings) {
	g.allowed = !cfg.NoOffload && !cfg.disabled.noGSO() && cfg.gates.gso
	g.equalRunsUnsafe = cfg.gates.equalRunsUnsafe
}

// probe learns, at the first queued datagram, whether the kernel takes
// segmentation offload (it knows UDP_SEGMENT from 4.18 on) and how many
// segments a message may carry: a conn whose datagrams all go out at
// once, one by one, never asks.
func (g *gsoState) probe(rc syscall.RawConn) {
	g.probed = true
	if !g.allowed {
		return
	}
	var err error
	rc.Control(func(fd uintptr) {
		_, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	})
	if g.on = err == nil; g.on {
		g.maxSegs = gsoSegmentLimit()
	}
}

// takes reports whether the run that starts with d may go as one
// segmented message to d's destination.
func (g *gsoState) takes(d txMsg) bool { return g.takesSize(d.addr.Addr(), len(d.buf)) }

// takesSize reports whether a run of size-byte segments may go to dst
// as one segmented message.
func (g *gsoState) takesSize(dst netip.Addr, size int) bool {
	return len(g.routes) == 0 || g.routes[dst].takes(size)
}

// maxGSOOff is how many destinations may have offload limited before it
// goes off for the whole socket.
const maxGSOOff = 64

// gsoRoute is what a destination's route refused: segments longer than
// maxSeg go alone (maxSeg 0: every one).
type gsoRoute struct {
	maxSeg   int32
	refusals int32
}

// takes reports whether a run whose segments are size bytes may go to
// the destination as one segmented message; a destination never refused
// takes any.
func (r gsoRoute) takes(size int) bool { return r.refusals == 0 || size <= int(r.maxSeg) }

// refused takes the kernel's refusal e of a segmented message of
// seg-byte segments to dst, and reports whether it was offload's. Where
// the route will not take segments that long (EINVAL, EMSGSIZE: most
// often a segment over the route's MTU, as a path-MTU probe among
// shorter packets is), segments of that length and longer go alone to
// dst from then on, and shorter ones keep offload; a third such refusal,
// whatever the length, turns offload off for dst. Where the device will
// not segment at all (EIO: IPsec, no checksum offload on older kernels;
// quic-go#3911, quinn#1128) it goes off for dst at once, and where the
// error is the socket's, for the socket. The flush retries the datagrams
// without it: none lost, none doubled.
func (g *gsoState) refused(dst netip.AddrPort, e syscall.Errno, seg int) bool {
	switch e {
	case unix.EIO, unix.EINVAL, unix.EMSGSIZE: // the route's
		if !dst.IsValid() || len(g.routes) >= maxGSOOff {
			g.on = false
			break
		}
		if g.routes == nil {
			g.routes = make(map[netip.Addr]gsoRoute)
		}
		r := g.routes[dst.Addr()]
		r.refusals++
		r.maxSeg = int32(seg - 1)
		if e == unix.EIO || r.refusals >= 3 {
			r.maxSeg = 0
		}
		g.routes[dst.Addr()] = r
	case unix.ENOPROTOOPT, unix.EOPNOTSUPP: // the socket's
		g.on = false
	default:
		return false // the destination's (EPERM, ENETUNREACH, ...): not offload's
	}
	return true
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
