package main

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRawGROSplit sends rawgro one GSO message on loopback, 3 datagrams
// of 100 B and one of 40, then one datagram alone: the kernel keeps the
// message whole for a socket with UDP_GRO, and rawgro must split it at
// the size UDP_GRO gives, in order, the last one shorter, and take the
// datagram alone, which has no UDP_GRO cmsg, for one; each from tx.
func TestRawGROSplit(t *testing.T) {
	rx, r, tx := groPair(t)
	sendGSO(t, tx, rx, 100, 3, 40)
	alone := make([]byte, 100)
	stamp(alone, 4)
	if _, err := tx.WriteToUDP(alone, rx.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if err := rx.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var ord order
	read := r.reader(&ord, 100)
	var total, calls uint64
	for ; total < 5; calls++ {
		n, err := read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", total, err)
		}
		if total == 0 && r.hdrs[0].n != 340 {
			t.Fatalf("the first message has %d bytes, want the 340 sent as one", r.hdrs[0].n)
		}
		total += n
	}
	if total != 5 || calls > 2 || ord.next[0] != 5 || ord.resize != 1 || ord.backwards+ord.corrupt != 0 {
		t.Errorf("read %d datagrams in %d calls, order %+v; want 5 in 1 or 2 calls, the 4th short", total, calls, ord)
	}
	if r.peer != addrPort(tx) {
		t.Errorf("the sender read is %v, want %v", r.peer, addrPort(tx))
	}
}

// TestRawRead: raw's read takes each datagram of a batch, of any length
// (zero too), with its sender; the one caller's buffer is what it checks.
func TestRawRead(t *testing.T) {
	rx, tx := must(listen()), must(listen())
	defer rx.Close()
	defer tx.Close()
	r := must(newRawConn(rx, maxDatagram, nil))
	for i, size := range []int{100, 0, 100, 3000} {
		p := make([]byte, size)
		if size > 0 {
			stamp(p, uint64(i))
		}
		if _, err := tx.WriteToUDPAddrPort(p, addrPort(rx)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rx.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var ord order
	read := r.reader(&ord, 100)
	var total uint64
	for total < 4 {
		n, err := read()
		if err != nil {
			t.Fatalf("after %d datagrams: %v", total, err)
		}
		total += n
	}
	if total != 4 || ord.next[0] != 3 || ord.resize != 2 || ord.backwards+ord.corrupt != 0 || r.peer != addrPort(tx) {
		t.Errorf("read %d datagrams from %v, order %+v; want 4 from %v, 2 of another size", total, r.peer, ord, addrPort(tx))
	}
}

// TestRawGSOQueue: rawgso's queue of 5 datagrams from 1 to 3 receivers
// goes as one message to each, its datagrams in order, with UDP_SEGMENT
// where it has two; and messages of a full queue hold at most perMsg.
func TestRawGSOQueue(t *testing.T) {
	var rxs []*net.UDPConn
	var dsts []netip.AddrPort
	for range 3 {
		rx := must(listen())
		defer rx.Close()
		rxs, dsts = append(rxs, rx), append(dsts, addrPort(rx))
	}
	tx := must(listen())
	defer tx.Close()
	s := must(newRawGSOSender(tx, 100, dsts))
	if s.queue != batchSize*gsoQueueFactor || s.perMsg != gsoSegments() {
		t.Errorf("queue %d, %d a message; want %d, %d", s.queue, s.perMsg, batchSize*gsoQueueFactor, gsoSegments())
	}
	s.queue = 5
	sent, err := s.sendQueue(make([]byte, 100), 1)
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
		t.Skipf("this kernel sends no UDP GSO here: %v", err)
	}
	if err != nil || sent != 5 || len(s.hdrs) != 3 || !slices.Equal(s.runs[:3], []int{2, 2, 1}) {
		t.Fatalf("sent %d in %d messages %v, %v; want 5 in 3, 2 2 1", sent, len(s.hdrs), s.runs[:len(s.hdrs)], err)
	}
	if s.hdrs[2].hdr.Control != nil || s.hdrs[0].hdr.Control == nil {
		t.Error("UDP_SEGMENT on the lone datagram's message, or none on a run's")
	}
	buf := make([]byte, maxDatagram)
	for d, want := range [][]uint64{{3}, {1, 4}, {2, 5}} {
		if err := rxs[d].SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		for _, seq := range want {
			n, from, err := rxs[d].ReadFromUDPAddrPort(buf)
			if err != nil || n != 100 || seqOf(buf) != seq || buf[99] != byte(seq) || from != addrPort(tx) {
				t.Fatalf("receiver %d read %d B, #%d from %v, %v; want 100 B, #%d from %v", d, n, seqOf(buf), from, err, seq, addrPort(tx))
			}
		}
	}
	s.queue = batchSize * gsoQueueFactor
	if _, err := s.sendQueue(make([]byte, 100), 0); err != nil {
		t.Fatal(err)
	}
	for i, n := range s.runs[:len(s.hdrs)] {
		if n > s.perMsg || n*100 > maxPayload {
			t.Errorf("message %d has %d datagrams of 100 B", i, n)
		}
	}
}

// TestRawGROTruncated: a message whose control buffer cannot hold the
// UDP_GRO cmsg (MSG_CTRUNC) is an error, not one datagram.
func TestRawGROTruncated(t *testing.T) {
	rx, r, tx := groPair(t)
	r.hdrs[0].hdr.SetControllen(unix.SizeofCmsghdr - 1) // room for no cmsg
	sendGSO(t, tx, rx, 100, 3, 0)
	if err := rx.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var ord order
	if _, err := r.reader(&ord, 100)(); err == nil || !strings.Contains(err.Error(), "MSG_CTRUNC") {
		t.Errorf("err = %v, want MSG_CTRUNC's", err)
	}
}

func TestGROSize(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, unix.CmsgSpace(len(data)))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	seg := make([]byte, 4)
	*(*int32)(unsafe.Pointer(&seg[0])) = 1200
	for _, c := range []struct {
		name string
		ctrl []byte
		want int
		ok   bool
	}{
		{"none", nil, 0, true},
		{"gro", cmsg(unix.SOL_UDP, unix.UDP_GRO, seg), 1200, true},
		{"another", cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, seg), 0, false},
		{"gro too short", cmsg(unix.SOL_UDP, unix.UDP_GRO, seg[:2]), 0, false},
		{"length past the buffer", cmsg(unix.SOL_UDP, unix.UDP_GRO, seg)[:unix.CmsgLen(2)], 0, false},
		{"zero", cmsg(unix.SOL_UDP, unix.UDP_GRO, make([]byte, 4)), 0, false},
	} {
		got, err := groSize(c.ctrl)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("%s: groSize = %d, %v; want %d, ok %v", c.name, got, err, c.want, c.ok)
		}
	}
}

// groPair is a rawgro receiver on loopback and a socket to send it from,
// both closed when the test ends.
func groPair(t *testing.T) (rx *net.UDPConn, r *rawConn, tx *net.UDPConn) {
	t.Helper()
	rx, err := listen()
	if err == nil {
		t.Cleanup(func() { rx.Close() })
		if r, err = newRawGROReceiver(rx); errors.Is(err, unix.ENOPROTOOPT) {
			t.Skip("this kernel has no UDP_GRO")
		}
	}
	if err == nil {
		tx, err = listen()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Close() })
	return rx, r, tx
}

// sendGSO sends to rx, as one message with UDP_SEGMENT, n datagrams of
// seg bytes stamped 0 to n-1, and one of last bytes after them (none if
// 0), stamped n.
func sendGSO(t *testing.T, tx, rx *net.UDPConn, seg, n, last int) {
	t.Helper()
	p := make([]byte, seg*n+last)
	for i := range n {
		stamp(p[i*seg:(i+1)*seg], uint64(i))
	}
	if last > 0 {
		stamp(p[n*seg:], uint64(n))
	}
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(seg)
	_, _, err := tx.WriteMsgUDP(p, oob, rx.LocalAddr().(*net.UDPAddr))
	if errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) {
		t.Skipf("this kernel sends no UDP GSO here: %v", err)
	}
	if err != nil {
		t.Fatal(os.NewSyscallError("sendmsg", err))
	}
}
