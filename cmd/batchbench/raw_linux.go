package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawAvailable says whether the raw modes, raw, rawgso and rawgro, run
// here: on Linux, which has sendmmsg, recvmmsg, UDP_SEGMENT and UDP_GRO.
const rawAvailable = true

const (
	groSlot     = 65535 // a rawgro message's buffer: the most GRO coalesces
	groMessages = 8     // rawgro's messages a call, as batchconn's ring takes while runs come coalesced
)

// groControl is a rawgro message's control buffer: room for the UDP_GRO
// cmsg, a multiple of the cmsg alignment so that each is aligned.
var groControl = unix.CmsgSpace(4)

// mmsghdr is the kernel's struct mmsghdr; Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes sent or received
}

// rawConn is the raw mode's batchLoop: sendmmsg or recvmmsg of batchSize
// messages, one datagram each, through syscall.RawConn. With gro (rawgro)
// the socket has UDP_GRO, and each buffer takes a coalesced run. rawgso's
// sender (raw_gso_linux.go) makes the call with headers of its own.
type rawConn struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	send  bool                    // sendmmsg, not recvmmsg
	dsts  []netip.AddrPort        // sending: the destinations, as a caller names them
	names []unix.RawSockaddrInet4 // sending: each message's destination, encoded by to
	from  []unix.RawSockaddrInet6 // receiving: each message's sender
	peer  netip.AddrPort          // receiving: the last datagram's sender, as ReadFrom returns it
	gro   bool
	ctrl  []byte // rawgro: groControl bytes a message

	// The call under way, as the poller's callback leaves it. fn is a
	// method value made once, so that a call allocates nothing.
	fn     func(fd uintptr) bool
	off, n int // messages sent, or received
	err    error
}

// newRawConn prepares uc to move datagrams of up to slot bytes: to send
// them to dsts, IPv4 on loopback, or to receive them if dsts is nil.
func newRawConn(uc *net.UDPConn, slot int, dsts []netip.AddrPort) (*rawConn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawConn{rc: rc, hdrs: make([]mmsghdr, batchSize), iovs: make([]unix.Iovec, batchSize), bufs: make([][]byte, batchSize)}
	r.fn = r.call
	mem := make([]byte, batchSize*slot)
	for i := range r.hdrs {
		r.bufs[i] = mem[i*slot : (i+1)*slot : (i+1)*slot]
		r.iovs[i].Base = unsafe.SliceData(r.bufs[i])
		r.iovs[i].SetLen(slot)
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
	}
	if dsts == nil {
		r.from = make([]unix.RawSockaddrInet6, batchSize)
		for i := range r.hdrs {
			r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.from[i]))
			r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		}
		return r, nil
	}
	if err := r.sendTo(dsts); err != nil {
		return nil, err
	}
	r.names = make([]unix.RawSockaddrInet4, batchSize)
	return r, nil
}

// sendTo makes r a sender to dsts, which must be IPv4 addresses.
func (r *rawConn) sendTo(dsts []netip.AddrPort) error {
	for _, ap := range dsts {
		if !ap.Addr().Is4() {
			return fmt.Errorf("raw: %v is not an IPv4 address", ap)
		}
	}
	r.send, r.dsts = true, dsts
	return nil
}

// putSockaddr encodes ap, an IPv4 address, as the kernel takes it, as a
// conn does for each message it sends to a netip.AddrPort.
func putSockaddr(sa *unix.RawSockaddrInet4, ap netip.AddrPort) {
	sa.Family, sa.Addr = unix.AF_INET, ap.Addr().As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
}

// sockaddrAddrPort decodes the sender the kernel wrote into sa, as a conn
// does for each message it receives: the zero AddrPort if none. (An IPv6
// address's zone is not looked up: the raw modes run on IPv4 loopback.)
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4((*unix.RawSockaddrInet4)(unsafe.Pointer(sa)).Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

// newRawGROReceiver is rawgro's receiver: UDP_GRO on, groMessages
// buffers of groSlot a call (64 of them, 4 MiB, leave the cache between
// the kernel's copy and the reader's look), each with a control buffer.
func newRawGROReceiver(uc *net.UDPConn) (*rawConn, error) {
	r, err := newRawConn(uc, groSlot, nil)
	if err != nil {
		return nil, err
	}
	var serr error
	if err := r.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, os.NewSyscallError("setsockopt UDP_GRO", serr)
	}
	r.gro, r.hdrs = true, r.hdrs[:groMessages]
	r.ctrl = make([]byte, groMessages*groControl)
	for i := range r.hdrs {
		r.hdrs[i].hdr.Control = &r.ctrl[i*groControl]
		r.hdrs[i].hdr.SetControllen(groControl)
	}
	return r, nil
}

func (r *rawConn) buf(i int) []byte { return r.bufs[i] }
func (r *rawConn) msg(i int) []byte { return r.bufs[i][:r.hdrs[i].n] }
func (r *rawConn) to(i, dst int) {
	putSockaddr(&r.names[i], r.dsts[dst])
	r.hdrs[i].hdr.Name, r.hdrs[i].hdr.Namelen = (*byte)(unsafe.Pointer(&r.names[i])), unix.SizeofSockaddrInet4
}

// writeBatch sends all of hdrs, in as many calls as the kernel needs,
// waiting in the poller while the socket is full.
func (r *rawConn) writeBatch() (int, error) {
	for r.off = 0; r.off < len(r.hdrs); r.off += r.n {
		r.err = nil
		if err := r.rc.Write(r.fn); err != nil {
			return r.off, err
		}
		if r.err == nil && r.n == 0 {
			r.err = io.ErrNoProgress // never seen; must not spin
		}
		if r.err != nil {
			return r.off, r.err
		}
	}
	return r.off, nil
}

// readBatch is one recvmmsg of up to len(hdrs) datagrams, after waiting
// in the poller for at least one.
func (r *rawConn) readBatch() (int, error) {
	for i := range r.n { // the kernel wrote the lengths it used
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		if r.gro {
			r.hdrs[i].hdr.SetControllen(groControl)
		}
	}
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// call is the poller's callback: sendmmsg of hdrs from off for a sender,
// recvmmsg for a receiver, again if interrupted; false means "wait until
// the socket is ready".
func (r *rawConn) call(fd uintptr) bool {
	trap, name := uintptr(unix.SYS_RECVMMSG), "recvmmsg"
	if r.send {
		trap, name = unix.SYS_SENDMMSG, "sendmmsg"
	}
	for {
		n, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&r.hdrs[r.off])), uintptr(len(r.hdrs)-r.off), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n = int(n)
		default:
			r.n, r.err = 0, os.NewSyscallError(name, e)
		}
		return true
	}
}

// reader is raw's and rawgro's read: one readBatch, then, as a conn's
// ReadFrom takes each datagram from its ring, each message's sender
// decoded and each datagram copied out of the message's buffer into one
// caller's buffer of maxDatagram bytes, where ord checks it. rawgro cuts
// each message into the datagrams GRO coalesced into it; a truncated
// control message loses the segment size, an error.
func (r *rawConn) reader(ord *order, size int) func() (uint64, error) {
	p := make([]byte, maxDatagram)
	return func() (uint64, error) {
		n, err := r.readBatch()
		var count uint64
		for i := range n {
			from := sockaddrAddrPort(&r.from[i])
			if !from.IsValid() {
				return count, fmt.Errorf("raw: recvmmsg gave a sender of family %d", r.from[i].Family)
			}
			seg := 0
			if h := &r.hdrs[i].hdr; r.gro {
				if h.Flags&unix.MSG_CTRUNC != 0 {
					return count, errors.New("rawgro: recvmmsg truncated a message's control data (MSG_CTRUNC)")
				}
				var err error
				if seg, err = groSize(r.ctrl[i*groControl : i*groControl+int(h.Controllen)]); err != nil {
					return count, err
				}
			}
			for b, more := r.msg(i), true; more; {
				d := b
				if seg > 0 && len(b) > seg {
					d = b[:seg]
				}
				b, more = b[len(d):], len(b) > len(d) // the last may be shorter; a lone one, of any length
				r.peer = from
				ord.see(p[:copy(p, d)], size)
				count++
			}
		}
		return count, err
	}
}

// groSize is the segment size in a message's control data, the UDP_GRO
// cmsg's int, the only one the socket asks for; 0 where there is none, a
// message of one datagram.
func groSize(ctrl []byte) (int, error) {
	if len(ctrl) < unix.SizeofCmsghdr {
		return 0, nil
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	if h.Level != unix.SOL_UDP || h.Type != unix.UDP_GRO || int(h.Len) < unix.CmsgLen(4) || int(h.Len) > len(ctrl) {
		return 0, fmt.Errorf("rawgro: a control message (level %d, type %d) of %d bytes, not UDP_GRO's", h.Level, h.Type, h.Len)
	}
	if seg := int(*(*int32)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))); seg > 0 {
		return seg, nil
	}
	return 0, errors.New("rawgro: UDP_GRO gives no segment size")
}
