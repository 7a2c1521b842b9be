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
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawAvailable says whether the raw modes, raw and rawgro, run here: on
// Linux, which has sendmmsg, recvmmsg and UDP_GRO.
const rawAvailable = true

// groSlot is a rawgro message's buffer: room for the most GRO coalesces
// into one message, UDP's 64 KiB.
const groSlot = 65535

// groControl is a rawgro message's control buffer: room for the UDP_GRO
// cmsg, an int, the only one its socket asks for. A multiple of the
// cmsg's alignment, so that each message's control buffer, cut from one
// block, is aligned.
var groControl = unix.CmsgSpace(4)

// mmsghdr is the kernel's struct mmsghdr; Go pads it as C does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // bytes sent or received
}

// rawConn is the raw mode: a UDP socket driven with sendmmsg or recvmmsg
// of batchSize messages, one datagram each, on its descriptor through
// syscall.RawConn, so that the runtime's poller does the waiting and the
// socket's deadlines hold as for the other modes. No offload: the socket
// has neither UDP_SEGMENT nor UDP_GRO. Each message has a buffer of its
// own.
type rawConn struct {
	uc   *net.UDPConn
	rc   syscall.RawConn
	hdrs []mmsghdr
	iovs []unix.Iovec
	bufs [][]byte // a buffer per message

	// Sending: the payload copied into each message's buffer, and the
	// destinations' socket addresses, which the messages point to in turn.
	payload  []byte
	names    []*byte
	namelens []uint32

	// Receiving: the senders' socket addresses, one a message, which the
	// kernel fills in as for any read that returns the sender.
	from []unix.RawSockaddrInet6

	// rawgro: the socket has UDP_GRO, and each message a control buffer
	// (groControl bytes of ctrl) where the kernel says at what size it
	// coalesced the message's datagrams.
	gro  bool
	ctrl []byte

	// The call under way, set by the poller's callback (fn: sendmmsg or
	// recvmmsg, a method value made once, so that a call allocates nothing).
	fn     func(fd uintptr) bool
	off, n int   // sending: messages of hdrs sent; receiving: received
	err    error // the call's failure
	calls  callCounts
}

func newRawConn(uc *net.UDPConn, slot int) (*rawConn, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &rawConn{
		uc:   uc,
		rc:   rc,
		hdrs: make([]mmsghdr, batchSize),
		iovs: make([]unix.Iovec, batchSize),
		bufs: make([][]byte, batchSize),
	}
	mem := make([]byte, batchSize*slot)
	for i := range r.hdrs {
		r.bufs[i] = mem[i*slot : (i+1)*slot : (i+1)*slot]
		r.iovs[i].Base = unsafe.SliceData(r.bufs[i])
		r.iovs[i].SetLen(slot)
		r.hdrs[i].hdr.Iov = &r.iovs[i]
		r.hdrs[i].hdr.SetIovlen(1)
	}
	return r, nil
}

// newRawSender prepares uc to send datagrams of size to dsts in turn.
func newRawSender(uc *net.UDPConn, dsts []netip.AddrPort, size int) (*rawConn, error) {
	r, err := newRawConn(uc, size)
	if err != nil {
		return nil, err
	}
	v6, err := isIPv6(r.rc)
	if err != nil {
		return nil, err
	}
	for _, ap := range dsts {
		name, namelen, err := sockaddr(ap, v6)
		if err != nil {
			return nil, err
		}
		r.names, r.namelens = append(r.names, name), append(r.namelens, namelen)
	}
	r.payload = make([]byte, size)
	r.fn = r.sendmmsg
	return r, nil
}

// newRawReceiver prepares uc to receive datagrams of any size.
func newRawReceiver(uc *net.UDPConn) (*rawConn, error) { return newRawReceiverSlot(uc, maxDatagram) }

// groMessages is how many 64 KiB buffers one of rawgro's calls offers.
const groMessages = 8

// newRawGROReceiver is newRawReceiver for rawgro: it turns UDP_GRO on
// for uc and gives each message a buffer that holds what GRO coalesces,
// and a control buffer for its segment size. The messages are laid out
// once: a call resets only what the kernel wrote (recv).
func newRawGROReceiver(uc *net.UDPConn) (*rawConn, error) {
	r, err := newRawReceiverSlot(uc, groSlot)
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
	r.gro = true
	// 8 buffers a call, as batchconn's refill takes while runs come
	// coalesced: 64 of them, 4 MiB, leave the cache between the kernel's
	// copy and the reader's look, and the loop delivered less.
	r.hdrs = r.hdrs[:groMessages]
	r.ctrl = make([]byte, groMessages*groControl)
	for i := range r.hdrs {
		r.hdrs[i].hdr.Control = &r.ctrl[i*groControl]
		r.hdrs[i].hdr.SetControllen(groControl)
	}
	return r, nil
}

// newRawReceiverSlot prepares uc to receive into buffers of slot bytes.
func newRawReceiverSlot(uc *net.UDPConn, slot int) (*rawConn, error) {
	r, err := newRawConn(uc, slot)
	if err != nil {
		return nil, err
	}
	r.from = make([]unix.RawSockaddrInet6, batchSize)
	for i := range r.hdrs {
		r.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.from[i]))
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
	r.fn = r.recvmmsg
	return r, nil
}

// counts is what the system calls moved so far.
func (r *rawConn) counts() callCounts { return r.calls }

// isIPv6 reports whether the socket is an IPv6 one, whose destinations
// take a sockaddr_in6.
func isIPv6(rc syscall.RawConn) (bool, error) {
	var sa unix.Sockaddr
	var serr error
	if err := rc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil {
		return false, err
	}
	if serr != nil {
		return false, os.NewSyscallError("getsockname", serr)
	}
	_, v6 := sa.(*unix.SockaddrInet6)
	return v6, nil
}

// sockaddr is ap as the kernel takes it: a sockaddr_in for an IPv4
// socket, a sockaddr_in6 (IPv4 mapped) for an IPv6 one.
func sockaddr(ap netip.AddrPort, v6 bool) (*byte, uint32, error) {
	a := ap.Addr()
	if !v6 {
		if !a.Is4() {
			return nil, 0, fmt.Errorf("raw: %v is not an IPv4 address", ap)
		}
		sa := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		return (*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet4, nil
	}
	sa := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
	if zone := a.Zone(); zone != "" {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			return nil, 0, fmt.Errorf("raw: %v: %w", ap, err)
		}
		sa.Scope_id = uint32(ifi.Index)
	}
	return (*byte)(unsafe.Pointer(sa)), unix.SizeofSockaddrInet6, nil
}

// send is blast written with sendmmsg: it fills the batch, each message a
// copy of the payload in a buffer of its own, stamped with the next
// sequence number (stream 0) and addressed to the next destination in
// turn, sends it all, and so on until end (looked at before each batch,
// as blast looks every checkEvery datagrams). It returns how many
// datagrams the kernel took.
func (r *rawConn) send(end time.Time) (uint64, error) {
	n := uint64(len(r.names))
	var seq uint64
	for time.Now().Before(end) {
		for i := range r.hdrs {
			b := r.bufs[i]
			copy(b, r.payload)
			stamp(b, seq+uint64(i))
			d := (seq + uint64(i)) % n
			r.hdrs[i].hdr.Name, r.hdrs[i].hdr.Namelen = r.names[d], r.namelens[d]
		}
		sent, err := r.sendBatch()
		seq += uint64(sent)
		if err != nil {
			return seq, err
		}
	}
	return seq, nil
}

// sendBatch sends all of hdrs, in as many calls as the kernel needs (it
// may take part of a batch), waiting for the socket to take more where it
// is full. It returns how many messages went.
func (r *rawConn) sendBatch() (int, error) {
	r.off = 0
	for r.off < len(r.hdrs) {
		r.err = nil
		if err := r.rc.Write(r.fn); err != nil {
			return r.off, err
		}
		if r.err != nil {
			return r.off, r.err
		}
	}
	return r.off, nil
}

// sendmmsg is the poller's callback for a write: false means "wait until
// writable".
func (r *rawConn) sendmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[r.off])), uintptr(len(r.hdrs)-r.off), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.calls.WriteCalls++
		switch {
		case e != 0:
			r.err = os.NewSyscallError("sendmmsg", e)
		case n == 0:
			r.err = io.ErrNoProgress // never seen; must not spin
		default:
			r.off += int(n)
			r.calls.Written += uint64(n)
		}
		return true
	}
}

// recv is one recvmmsg of up to batchSize datagrams, after waiting, as
// the socket's read deadline allows, for at least one. It returns how
// many it received, in bufs, each hdrs[i].n bytes long.
func (r *rawConn) recv() (int, error) {
	for i := range r.n {
		r.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6 // the kernel wrote the length it used
		if r.gro {
			r.hdrs[i].hdr.SetControllen(groControl) // likewise
		}
	}
	r.n, r.err = 0, nil
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// recvmmsg is the poller's callback for a read: false means "wait until
// readable".
func (r *rawConn) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.calls.ReadCalls++
		if e != 0 {
			r.err = os.NewSyscallError("recvmmsg", e)
			return true
		}
		r.n = int(n)
		if !r.gro {
			r.calls.Read += uint64(n) // rawgro's reader counts the datagrams in them
		}
		return true
	}
}

// reader is a receiver's read: one recv, each datagram checked with ord.
func (r *rawConn) reader(ord *order, size int) func() (uint64, error) {
	return func() (uint64, error) {
		n, err := r.recv()
		if err != nil {
			return 0, err
		}
		for i := range n {
			ord.see(r.bufs[i][:r.hdrs[i].n], size)
		}
		return uint64(n), nil
	}
}

// groReader is rawgro's read: one recv, each message's buffer split in
// place into the datagrams GRO coalesced into it, each checked with ord.
// A message whose control data the kernel truncated is an error: its
// segment size is lost, and its datagrams would count as one.
func (r *rawConn) groReader(ord *order, size int) func() (uint64, error) {
	return func() (uint64, error) {
		n, err := r.recv()
		if err != nil {
			return 0, err
		}
		var count uint64
		for i := range n {
			h := &r.hdrs[i]
			if h.hdr.Flags&unix.MSG_CTRUNC != 0 {
				return 0, errors.New("rawgro: recvmmsg truncated a message's control data (MSG_CTRUNC)")
			}
			off := i * groControl
			seg, err := groSize(r.ctrl[off : off+int(h.hdr.Controllen)])
			if err != nil {
				return 0, err
			}
			b := r.bufs[i][:h.n]
			for seg > 0 && len(b) > seg {
				ord.see(b[:seg], size)
				b = b[seg:]
				count++
			}
			ord.see(b, size) // the last, which may be shorter; or the only one
			count++
		}
		r.calls.Read += count
		return count, nil
	}
}

// groSize is the segment size in a message's control data, the UDP_GRO
// cmsg's int; 0 where there is none, a message of one datagram.
func groSize(ctrl []byte) (int, error) {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if int(h.Len) < unix.CmsgLen(0) || int(h.Len) > len(ctrl) {
			return 0, fmt.Errorf("rawgro: a control message of %d bytes in %d", h.Len, len(ctrl))
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO {
			if int(h.Len) < unix.CmsgLen(4) {
				return 0, fmt.Errorf("rawgro: a UDP_GRO control message of %d bytes", h.Len)
			}
			seg := int(*(*int32)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)])))
			if seg <= 0 {
				return 0, fmt.Errorf("rawgro: UDP_GRO gives a segment size of %d", seg)
			}
			return seg, nil
		}
		ctrl = ctrl[min(len(ctrl), unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0))):]
	}
	return 0, nil
}
