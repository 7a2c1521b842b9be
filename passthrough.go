package batchconn

import (
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// passThrough serves a conn one datagram at a time through the wrapped
// conn's own methods, with its behaviour: a conn that is not a
// *net.UDPConn, one on a system without recvmmsg and sendmmsg, or one the
// operator turned batching off for. Where the wrapped conn lacks one of
// *net.UDPConn's methods, the nearest net.PacketConn method stands in.
type passThrough struct {
	face PacketConn
	pc   net.PacketConn
	uc   *net.UDPConn // pc, where it is one

	xnetOnce sync.Once
	xnet     *ipv4.PacketConn // x/net's batch calls on uc (passthrough_msg.go)
}

func newPassThrough(pc net.PacketConn) *PacketConn {
	t := &passThrough{pc: pc}
	t.uc, _ = pc.(*net.UDPConn)
	t.face = PacketConn{impl: t}
	return &t.face
}

func (t *passThrough) ReadFrom(p []byte) (int, net.Addr, error) { return t.pc.ReadFrom(p) }

func (t *passThrough) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	if t.uc != nil {
		return t.uc.ReadFromUDP(p)
	}
	n, addr, err := t.pc.ReadFrom(p)
	ua, _ := addr.(*net.UDPAddr)
	return n, ua, err
}

func (t *passThrough) ReadFromUDPAddrPort(p []byte) (int, netip.AddrPort, error) {
	if t.uc != nil {
		return t.uc.ReadFromUDPAddrPort(p)
	}
	n, addr, err := t.pc.ReadFrom(p)
	if ua, ok := addr.(*net.UDPAddr); ok && ua != nil {
		return n, ua.AddrPort(), err
	}
	return n, netip.AddrPort{}, err
}

func (t *passThrough) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	if m, ok := t.pc.(interface {
		ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error)
	}); ok {
		return m.ReadMsgUDP(b, oob)
	}
	n, a, err := t.pc.ReadFrom(b)
	addr, _ = a.(*net.UDPAddr)
	return n, 0, 0, addr, err
}

func (t *passThrough) Read(p []byte) (int, error) {
	if conn, ok := t.pc.(net.Conn); ok {
		return conn.Read(p)
	}
	n, _, err := t.pc.ReadFrom(p)
	return n, err
}

func (t *passThrough) WriteTo(p []byte, addr net.Addr) (int, error) { return t.pc.WriteTo(p, addr) }

func (t *passThrough) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) {
	if t.uc != nil {
		return t.uc.WriteToUDP(p, addr)
	}
	return t.pc.WriteTo(p, addr)
}

func (t *passThrough) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	if t.uc != nil {
		return t.uc.WriteToUDPAddrPort(p, addr)
	}
	return t.pc.WriteTo(p, net.UDPAddrFromAddrPort(addr))
}

func (t *passThrough) Write(p []byte) (int, error) {
	if conn, ok := t.pc.(net.Conn); ok {
		return conn.Write(p)
	}
	return 0, &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Err: syscall.EDESTADDRREQ}
}

func (t *passThrough) Flush() error                       { return nil }
func (t *passThrough) Close() error                       { return t.pc.Close() }
func (t *passThrough) SetDeadline(d time.Time) error      { return t.pc.SetDeadline(d) }
func (t *passThrough) SetReadDeadline(d time.Time) error  { return t.pc.SetReadDeadline(d) }
func (t *passThrough) SetWriteDeadline(d time.Time) error { return t.pc.SetWriteDeadline(d) }
func (t *passThrough) Stats() Stats                       { return Stats{} }
func (t *passThrough) Batching() bool                     { return false }
func (t *passThrough) unwrap() net.PacketConn             { return t.pc }

func (t *passThrough) RemoteAddr() net.Addr {
	if conn, ok := t.pc.(net.Conn); ok {
		return conn.RemoteAddr()
	}
	return nil
}

func (t *passThrough) SyscallConn() (syscall.RawConn, error) {
	if s, ok := t.pc.(interface {
		SyscallConn() (syscall.RawConn, error)
	}); ok {
		return s.SyscallConn()
	}
	return nil, unsupported(t.pc)
}
