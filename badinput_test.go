package batchconn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Hostile calls: each runs on plain and on every way of holding a socket
// batchconn has, with the same observed outcome, and with no effect on the
// datagrams queued and read around it.

// negativeConfig must behave as the defaults.
var negativeConfig = Config{BatchSize: -1, ReadSlotSize: -5, MaxDelay: -1, QueueBytes: -1}

// hostileKinds are kinds, a conn whose queue nothing but a read, Flush or
// Close sends (so that the datagrams written before a hostile call are
// still queued when it comes, however slow the machine), and a conn made
// with negative Config values, last.
var hostileKinds = append(append([]kind(nil), kinds...),
	kind{"queued-held", func(uc *net.UDPConn) net.PacketConn {
		return newConn(uc, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	}},
	kind{"negative-config", func(uc *net.UDPConn) net.PacketConn {
		cfg := negativeConfig
		return New(uc, &cfg)
	}})

// A hostile call, made between good traffic both ways.
type hostile struct {
	name   string
	net    string // the conn's network, default "udp4"
	closes bool   // the call closes the conn: nothing can follow it
	call   func(e *env)
}

var (
	year9999 = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	year2200 = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	// The earliest time that is not the zero Time (which means "none").
	earliest = time.Time{}.Add(time.Nanosecond)
)

// fakeAddr claims to be a UDP address without being a *net.UDPAddr.
type fakeAddr struct{}

func (fakeAddr) Network() string { return "udp" }
func (fakeAddr) String() string  { return "127.0.0.1:9" }

// peerAt returns the peer's address with its IP replaced.
func peerAt(e *env, ip net.IP) *net.UDPAddr {
	return &net.UDPAddr{IP: ip, Port: e.peerAddr().Port}
}

func setDeadlines(e *env, which string, t time.Time) {
	var err error
	switch which {
	case "read":
		err = e.conn.SetReadDeadline(t)
	case "write":
		err = e.conn.SetWriteDeadline(t)
	default:
		err = e.conn.SetDeadline(t)
	}
	e.logf("Set%sDeadline = %s", map[string]string{"read": "Read", "write": "Write"}[which], describe(err))
}

var hostileCalls = []hostile{
	{name: "WriteToNilBuffer", call: func(e *env) { e.write(nil, e.peerAddr()) }},
	{name: "WriteToEmptyBuffer", call: func(e *env) { e.write([]byte{}, e.peerAddr()) }},
	{name: "WriteToUDPAddrPortNilBuffer", call: func(e *env) { e.writeAddrPort(nil, e.peerAddr().AddrPort()) }},
	{name: "WriteToOversizeByOne", call: func(e *env) { e.write(seq(maxPayload4+1), e.peerAddr()) }},
	{name: "WriteToUDPAddrPortOversize", call: func(e *env) { e.writeAddrPort(seq(maxPayload4+1), e.peerAddr().AddrPort()) }},
	{name: "WriteToMaxDatagramSize", call: func(e *env) { e.write(seq(maxDatagram), e.peerAddr()) }},
	{name: "WriteTo1MiB", call: func(e *env) { e.write(make([]byte, 1<<20), e.peerAddr()) }},
	{name: "WriteToLargestDatagram", call: func(e *env) { e.write(seq(maxPayload4), e.peerAddr()) }},
	{name: "ReadFromNilBuffer", call: func(e *env) { e.peerSend([]byte("eaten")); e.read(-1) }},
	{name: "ReadFromZeroLengthBuffer", call: func(e *env) { e.peerSend([]byte("eaten")); e.read(0) }},
	{name: "ReadFromOneByteBufferOfLongDatagram", call: func(e *env) { e.peerSend(seq(1000)); e.read(1) }},
	{name: "ReadFromUDPAddrPortEmptyBuffer", call: func(e *env) { e.peerSend([]byte("eaten")); e.readAddrPort(0) }},
	{name: "ReadZeroLengthDatagram", call: func(e *env) { e.peerSend(nil); e.read(64) }},
	{name: "WriteToNilAddr", call: func(e *env) { e.write([]byte("x"), nil) }},
	{name: "WriteToTypedNilUDPAddr", call: func(e *env) { e.write([]byte("x"), (*net.UDPAddr)(nil)) }},
	{name: "WriteToTCPAddr", call: func(e *env) { e.write([]byte("x"), &net.TCPAddr{IP: e.peerAddr().IP, Port: e.peerAddr().Port}) }},
	{name: "WriteToIPAddr", call: func(e *env) { e.write([]byte("x"), &net.IPAddr{IP: e.peerAddr().IP}) }},
	{name: "WriteToUnixAddr", call: func(e *env) { e.write([]byte("x"), &net.UnixAddr{Name: "/nonexistent", Net: "unixgram"}) }},
	{name: "WriteToForeignAddrType", call: func(e *env) { e.write([]byte("x"), fakeAddr{}) }},
	{name: "WriteToIPv6OnIPv4Socket", call: func(e *env) { e.write([]byte("x"), peerAt(e, net.IPv6loopback)) }},
	{name: "WriteToZonedIPv6", call: func(e *env) {
		e.write([]byte("x"), &net.UDPAddr{IP: net.IPv6loopback, Port: e.peerAddr().Port, Zone: "lo"})
	}},
	{name: "WriteToThreeByteIP", call: func(e *env) { e.write([]byte("x"), peerAt(e, net.IP{127, 0, 0})) }},
	{name: "WriteToPortMinusOne", call: func(e *env) { e.write([]byte("x"), &net.UDPAddr{IP: e.peerAddr().IP, Port: -1}) }},
	{name: "WriteToPort70000", call: func(e *env) { e.write([]byte("x"), &net.UDPAddr{IP: e.peerAddr().IP, Port: 70000}) }},
	{name: "WriteToPortZero", call: func(e *env) { e.write([]byte("x"), &net.UDPAddr{IP: e.peerAddr().IP}) }},
	{name: "WriteToLimitedBroadcast", call: func(e *env) { e.write([]byte("x"), peerAt(e, net.IPv4bcast)) }},
	// The kernel delivers datagrams for 0.0.0.0 to the host itself.
	{name: "WriteToNilIP", call: func(e *env) { e.write([]byte("to nil IP"), peerAt(e, nil)) }},
	{name: "WriteToUnspecifiedIP", call: func(e *env) { e.write([]byte("to 0.0.0.0"), peerAt(e, net.IPv4zero.To4())) }},
	{name: "WriteToUDPAddrPortZero", call: func(e *env) { e.writeAddrPort([]byte("x"), netip.AddrPort{}) }},
	{name: "WriteToUDPAddrPortIPv6", call: func(e *env) {
		e.writeAddrPort([]byte("x"), netip.AddrPortFrom(netip.IPv6Loopback(), uint16(e.peerAddr().Port)))
	}},
	{name: "WriteToUDPAddrPortZoned", call: func(e *env) {
		e.writeAddrPort([]byte("x"), netip.AddrPortFrom(netip.IPv6LinkLocalAllNodes().WithZone("lo"), uint16(e.peerAddr().Port)))
	}},
	{name: "WriteToUDPAddrPortMapped", call: func(e *env) {
		ap := e.peerAddr().AddrPort()
		e.writeAddrPort([]byte("mapped"), netip.AddrPortFrom(netip.AddrFrom16(ap.Addr().As16()), ap.Port()))
	}},
	// On an IPv6-only socket ("udp6"), IPv4 destinations and sizes past
	// IPv6's limit.
	{name: "IPv6WriteToIPv4", net: "udp6", call: func(e *env) { e.write([]byte("x"), peerAt(e, net.IPv4(127, 0, 0, 1))) }},
	{name: "IPv6WriteToIPv4Mapped", net: "udp6", call: func(e *env) {
		e.writeAddrPort([]byte("x"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:"+strconv.Itoa(e.peerAddr().Port)))
	}},
	{name: "IPv6WriteToOversizeByOne", net: "udp6", call: func(e *env) { e.write(seq(maxPayload6+1), e.peerAddr()) }},
	{name: "IPv6WriteToLargestDatagram", net: "udp6", call: func(e *env) { e.write(seq(maxPayload6), e.peerAddr()) }},
	{name: "IPv6WriteToIPv4Unspecified", net: "udp6", call: func(e *env) { e.write([]byte("x"), peerAt(e, net.IPv4zero)) }},
	{name: "ConnWriteUnconnected", call: func(e *env) { e.connWrite([]byte("x")) }},
	{name: "WriteDeadlineInThePast", call: func(e *env) {
		setDeadlines(e, "write", time.Now().Add(-time.Second))
		e.write([]byte("x"), e.peerAddr())
		e.writeAddrPort([]byte("x"), e.peerAddr().AddrPort())
		setDeadlines(e, "write", time.Time{})
	}},
	// Plain checks the address and the size before the deadline. The
	// datagrams written before are queued on batchconn.
	{name: "BadWritesPastWriteDeadline", call: func(e *env) {
		setDeadlines(e, "write", time.Now().Add(-time.Second))
		e.write([]byte("x"), nil)
		e.write([]byte("x"), &net.TCPAddr{IP: e.peerAddr().IP, Port: e.peerAddr().Port})
		e.write([]byte("x"), peerAt(e, net.IPv6loopback))
		e.write(seq(maxPayload4+1), e.peerAddr())
		e.writeAddrPort([]byte("x"), netip.AddrPort{})
		setDeadlines(e, "write", time.Time{})
	}},
	{name: "ReadDeadlineInThePast", call: func(e *env) {
		e.peerSend([]byte("held"))
		setDeadlines(e, "read", time.Now().Add(-time.Second))
		e.read(64)
		e.read(-1)
		setDeadlines(e, "read", time.Time{})
		e.read(64)
	}},
	{name: "DeadlineAtEarliestTime", call: func(e *env) {
		e.peerSend([]byte("held"))
		setDeadlines(e, "", earliest)
		e.read(64)
		e.write([]byte("x"), e.peerAddr())
		setDeadlines(e, "", time.Time{})
		e.read(64)
	}},
	{name: "DeadlineAtUnixEpoch", call: func(e *env) {
		e.peerSend([]byte("held"))
		setDeadlines(e, "", time.Unix(0, 0))
		e.read(64)
		e.write([]byte("x"), e.peerAddr())
		setDeadlines(e, "", time.Time{})
		e.read(64)
	}},
	{name: "DeadlineInYear2200", call: func(e *env) {
		setDeadlines(e, "", year2200)
		e.write([]byte("far"), e.peerAddr())
		e.peerSend([]byte("far"))
		e.read(64)
		setDeadlines(e, "", time.Time{})
	}},
	{name: "DeadlineSetTwiceThenCleared", call: func(e *env) {
		setDeadlines(e, "", time.Now().Add(-time.Hour))
		setDeadlines(e, "", time.Now().Add(time.Hour))
		e.write([]byte("ok"), e.peerAddr())
		e.peerSend([]byte("ok"))
		e.read(64)
		setDeadlines(e, "", time.Time{})
	}},
	// The runtime's poller saturates a deadline this far out: no deadline.
	{name: "DeadlineInYear9999", call: func(e *env) {
		setDeadlines(e, "", year9999)
		e.write([]byte("far"), e.peerAddr())
		e.peerSend([]byte("far"))
		e.read(64)
		setDeadlines(e, "read", year9999)
		e.peerSend([]byte("far again"))
		e.readAddrPort(64)
		setDeadlines(e, "", time.Time{})
	}},
	{name: "CloseThenUse", closes: true, call: func(e *env) {
		e.logf("Close = %s", describe(e.conn.Close()))
		e.write([]byte("x"), e.peerAddr())
		e.write(nil, e.peerAddr())
		e.write([]byte("x"), nil)
		e.writeAddrPort([]byte("x"), e.peerAddr().AddrPort())
		e.read(64)
		e.read(-1)
		e.connRead(0)
		setDeadlines(e, "", time.Now())
		e.logf("Close = %s", describe(e.conn.Close()))
	}},
}

// hostileCase makes h a differential case: datagrams written and read
// before and after it must all arrive, in order, as on plain.
func hostileCase(h hostile) diffCase {
	return diffCase{name: h.name, net: h.net, run: func(e *env) {
		e.peerSend([]byte("in before"))
		e.read(64)
		for i := range 3 {
			e.write([]byte("out before "+strconv.Itoa(i)), e.peerAddr())
		}
		h.call(e)
		if h.closes {
			drainPeer(e, false)
			return
		}
		for i := range 3 {
			e.write([]byte("out after "+strconv.Itoa(i)), e.peerAddr())
		}
		e.write([]byte("end"), e.peerAddr())
		e.peerSend([]byte("in after"))
		e.read(64)
		drainPeer(e, true)
	}}
}

// drainPeer logs what the peer received: up to the "end" datagram, or,
// when none is coming, until nothing more comes. Order is kept, so a
// duplicate would show before "end".
func drainPeer(e *env, untilEnd bool) {
	p := make([]byte, 1<<20)
	for range 32 {
		wait := time.Second
		if !untilEnd {
			wait = 50 * time.Millisecond
		}
		e.peer.SetReadDeadline(time.Now().Add(wait))
		n, addr, err := e.peer.ReadFrom(p)
		if err != nil {
			if untilEnd {
				e.logf("peer received nothing: %s", describe(err))
			}
			return
		}
		e.logf("peer received %d %s from %s", n, digest(p[:n]), describeAddr(addr))
		if untilEnd && string(p[:n]) == "end" {
			return
		}
	}
}

func TestHostileCalls(t *testing.T) {
	for _, h := range hostileCalls {
		t.Run(h.name, func(t *testing.T) { runDiffKinds(t, hostileCase(h), hostileKinds) })
	}
}

// netConn is every method a *net.UDPConn and a *PacketConn share.
type netConn interface {
	net.PacketConn
	net.Conn
	ReadFromUDPAddrPort([]byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort([]byte, netip.AddrPort) (int, error)
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
}

// callAll calls every method of c with ordinary arguments and logs what
// a caller sees.
func callAll(c netConn) (log []string) {
	add := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	defer func() {
		if r := recover(); r != nil {
			add("panic: %v", r)
		}
	}()
	p := make([]byte, 8)
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	n, addr, err := c.ReadFrom(p)
	add("ReadFrom = %d %s %s", n, describeAddr(addr), describe(err))
	n, ap, err := c.ReadFromUDPAddrPort(p)
	add("ReadFromUDPAddrPort = %d %v %s", n, ap, describe(err))
	n, err = c.Read(p)
	add("Read = %d %s", n, describe(err))
	n, err = c.Read(nil)
	add("Read(nil) = %d %s", n, describe(err))
	n, err = c.WriteTo(p, dst)
	add("WriteTo = %d %s", n, describe(err))
	n, err = c.WriteTo(p, nil)
	add("WriteTo(nil addr) = %d %s", n, describe(err))
	n, err = c.WriteToUDPAddrPort(p, dst.AddrPort())
	add("WriteToUDPAddrPort = %d %s", n, describe(err))
	n, err = c.Write(p)
	add("Write = %d %s", n, describe(err))
	add("LocalAddr = %s", describeAddr(c.LocalAddr()))
	add("RemoteAddr = %s", describeAddr(c.RemoteAddr()))
	add("SetDeadline = %s", describe(c.SetDeadline(time.Now())))
	add("SetReadDeadline = %s", describe(c.SetReadDeadline(time.Now())))
	add("SetWriteDeadline = %s", describe(c.SetWriteDeadline(time.Now())))
	add("SetReadBuffer = %s", describe(c.SetReadBuffer(1<<16)))
	add("SetWriteBuffer = %s", describe(c.SetWriteBuffer(1<<16)))
	add("Close = %s", describe(c.Close()))
	add("Close again = %s", describe(c.Close()))
	return log
}

// New(nil, nil) and New of a *net.UDPConn without a socket fail every
// call as a zero *net.UDPConn does, without blocking; New of a nil
// *net.UDPConn behaves as that nil pointer does.
func TestNewNilBehavesAsZeroUDPConn(t *testing.T) {
	for _, c := range []struct {
		name  string
		conn  *PacketConn
		plain *net.UDPConn
	}{
		{"New(nil, nil)", New(nil, nil), new(net.UDPConn)},
		{"New(nil, negative Config)", New(nil, &negativeConfig), new(net.UDPConn)},
		{"New(new(net.UDPConn), nil)", New(new(net.UDPConn), nil), new(net.UDPConn)},
		// A nil *net.UDPConn panics on its first call: so does the conn.
		{"New((*net.UDPConn)(nil), nil)", New((*net.UDPConn)(nil), nil), nil},
	} {
		want, got := callAll(c.plain), callAll(c.conn)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s differs from plain:\n%s", c.name, lineDiff(want, got))
		}
		if err := c.conn.Flush(); err != nil {
			t.Errorf("%s: Flush = %v, want nil (nothing is ever queued)", c.name, err)
		}
		if s := c.conn.Stats(); s != (Stats{}) {
			t.Errorf("%s: Stats = %+v, want zero", c.name, s)
		}
	}
}

// Close's error for what it could not send is shaped as the conn's other
// errors are (and as Flush's is): a *net.OpError, Op "write", wrapping
// the cause.
func TestCloseErrorIsOpError(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	c.WriteTo([]byte("queued"), peer.LocalAddr())
	c.WriteTo([]byte("queued"), peer.LocalAddr())
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	ferr := c.Flush()
	err := c.Close()
	var oe *net.OpError
	if !errors.Is(ferr, os.ErrDeadlineExceeded) || !errors.As(ferr, &oe) || oe.Op != "write" {
		t.Fatalf("Flush = %s; want a write *net.OpError wrapping os.ErrDeadlineExceeded", describe(ferr))
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Close = %s; want os.ErrDeadlineExceeded for the queue it could not send", describe(err))
	}
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Close = %s (Flush = %s): want a write *net.OpError, as Flush's", describe(err), describe(ferr))
	}
}
