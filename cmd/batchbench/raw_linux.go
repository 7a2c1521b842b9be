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

// rawAvailable says whether the raw modes, raw and rawgro, run here: on
// Linux, which has sendmmsg, recvmmsg and UDP_GRO.
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
// the socket has UDP_GRO, and each buffer takes a coalesced run.
type rawConn struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	bufs  [][]byte
	names []*byte // sending: the destinations' sockaddr_in
	from  []unix.RawSockaddrInet6
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
	for _, ap := range dsts {
		if !ap.Addr().Is4() {
			return nil, fmt.Errorf("raw: %v is not an IPv4 address", ap)
		}
		sa := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		r.names = append(r.names, (*byte)(unsafe.Pointer(sa)))
	}
	return r, nil
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
	r.hdrs[i].hdr.Name, r.hdrs[i].hdr.Namelen = r.names[dst], unix.SizeofSockaddrInet4
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
	if r.names != nil {
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

// groReader is rawgro's read: one readBatch, each message split in place
// into the datagrams GRO coalesced into it, each checked with ord; a
// truncated control message loses the segment size, an error.
func (r *rawConn) groReader(ord *order, size int) func() (uint64, error) {
	return func() (uint64, error) {
		n, err := r.readBatch()
		var count uint64
		for i := range n {
			h := &r.hdrs[i].hdr
			if h.Flags&unix.MSG_CTRUNC != 0 {
				return count, errors.New("rawgro: recvmmsg truncated a message's control data (MSG_CTRUNC)")
			}
			seg, err := groSize(r.ctrl[i*groControl : i*groControl+int(h.Controllen)])
			if err != nil {
				return count, err
			}
			b := r.msg(i)
			for ; seg > 0 && len(b) > seg; b = b[seg:] {
				ord.see(b[:seg], size)
				count++
			}
			ord.see(b, size) // the last, which may be shorter; or the only one
			count++
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
