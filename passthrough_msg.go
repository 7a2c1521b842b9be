package batchconn

import (
	"errors"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
)

// The message calls of a conn served one datagram at a time: the wrapped
// conn's own where it has them; for a *net.UDPConn's batch calls, x/net's
// on its socket; elsewhere one datagram a call.

func (t *passThrough) ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error) {
	if m, ok := t.pc.(interface {
		ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	}); ok {
		return m.ReadMsgUDPAddrPort(b, oob)
	}
	n, oobn, flags, ua, err := t.ReadMsgUDP(b, oob)
	if ua != nil {
		addr = ua.AddrPort()
	}
	return n, oobn, flags, addr, err
}

func (t *passThrough) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	if m, ok := t.pc.(interface {
		WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error)
	}); ok {
		return m.WriteMsgUDP(b, oob, addr)
	}
	if len(oob) > 0 { // control messages would be dropped
		return 0, 0, &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Addr: addrIfAny(addr), Err: errors.ErrUnsupported}
	}
	if addr == nil {
		n, err = t.Write(b)
	} else {
		n, err = t.pc.WriteTo(b, addr)
	}
	return n, 0, err
}

func (t *passThrough) WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error) {
	if t.uc != nil {
		return t.uc.WriteMsgUDPAddrPort(b, oob, addr)
	}
	var ua *net.UDPAddr
	if addr.IsValid() {
		ua = net.UDPAddrFromAddrPort(addr)
	}
	return t.WriteMsgUDP(b, oob, ua)
}

func (t *passThrough) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	if b, ok := t.batchConn(); ok {
		return b.ReadBatch(ms, flags)
	}
	if len(ms) == 0 {
		return 0, nil
	}
	m := &ms[0]
	p, scratch := readRoom(m.Buffers)
	if scratch != nil {
		defer scratchBufs.Put(scratch)
	}
	n, oobn, fl, addr, err := t.ReadMsgUDP(p, m.OOB)
	if err != nil {
		return 0, err
	}
	if scratch != nil {
		var trunc bool
		if n, trunc = scatter(m.Buffers, p[:n], false); trunc {
			fl |= msgTrunc
		}
	}
	m.N, m.NN, m.Flags, m.Addr = n, oobn, fl, addr
	return 1, nil
}

func (t *passThrough) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	if b, ok := t.batchConn(); ok {
		return b.WriteBatch(ms, flags)
	}
	return writeMessages(ms, t.WriteMsgUDP, func(addr net.Addr) error {
		return &net.OpError{Op: "write", Net: "udp", Source: t.pc.LocalAddr(), Addr: addr, Err: syscall.EINVAL}
	})
}

// writeMessages sends ms one by one through write, and reports them as
// x/net's WriteBatch does: N and NN of each taken, then how many were
// taken before the first refused, or, where the first is, its error. A
// message whose Addr is not a *net.UDPAddr is refused with badAddr's.
func writeMessages(ms []ipv4.Message, write func(b, oob []byte, addr *net.UDPAddr) (int, int, error), badAddr func(net.Addr) error) (int, error) {
	for i := range ms {
		m := &ms[i]
		var n, oobn int
		var err error
		if ua, ok := m.Addr.(*net.UDPAddr); ok || m.Addr == nil {
			n, oobn, err = write(joined(m.Buffers), m.OOB, ua)
		} else {
			err = badAddr(m.Addr)
		}
		if err != nil {
			if i == 0 {
				return 0, err
			}
			return i, nil
		}
		m.N, m.NN = n, oobn
	}
	return len(ms), nil
}

// batcher is what serves a pass-through conn's batch calls.
type batcher interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn returns the wrapped conn's batch calls, or x/net's on a
// *net.UDPConn's socket (made once).
func (t *passThrough) batchConn() (batcher, bool) {
	if b, ok := t.pc.(batcher); ok {
		return b, true
	}
	if t.uc == nil {
		return nil, false
	}
	t.xnetOnce.Do(func() { t.xnet = ipv4.NewPacketConn(t.uc) })
	return t.xnet, true
}

// joined is a message's buffers as one datagram.
func joined(bufs [][]byte) []byte {
	switch len(bufs) {
	case 0:
		return nil
	case 1:
		return bufs[0]
	}
	var p []byte
	for _, b := range bufs {
		p = append(p, b...)
	}
	return p
}

// addrIfAny is addr as an error's Addr: nil, not a nil *net.UDPAddr.
func addrIfAny(addr *net.UDPAddr) net.Addr {
	if addr == nil {
		return nil
	}
	return addr
}
