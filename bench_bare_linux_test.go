package batchconn

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Bare loops: the floor under a conn's bulk reads and writes. Each does the
// work the conn must do on the same socket in the same harness, and nothing
// else: recvmmsg or sendmmsg through the poller (syscall.RawConn), headers
// made once, every datagram copied as a ring or queue must copy it, no
// allocation per datagram. No locks, timers, pools or adaptation, and the
// shape of the traffic (sizes, destinations) known in advance.

// Their dimensions are the conn's defaults, so that both do the same work,
// but for two: a ring slot without GRO is as short as the benchmarks'
// datagrams allow (the conn's are 64 KiB), and a message carries at most
// the 64 segments every GSO kernel takes (the conn probes for 128).
const (
	bareBatch      = defaultBatchSize                  // messages a call
	bareQueue      = defaultBatchSize * gsoQueueFactor // datagrams a queue holds with GSO
	bareSlot       = 2048                              // a ring slot without GRO: room for the benchmarks' datagrams
	bareGROSlots   = groRunSlots                       // the ring's slots while runs come coalesced
	bareGROSlot    = maxDatagram                       // room for a coalesced run
	bareGROOOB     = 32                                // UDP_GRO's control message, CMSG_SPACE(4), with room to spare
	bareMaxSegs    = gsoMaxSegs                        // segments a message, as every GSO kernel takes
	bareMaxPayload = maxPayload4                       // bytes a message, to an IPv4 destination
)

// benchBareReads runs the bare reader as the sub-benchmark name of a read
// benchmark whose sender has senderCfg: with GRO on where the sender uses
// GSO, as the conn turns it on for a sender whose datagrams come in runs.
func benchBareReads(b *testing.B, name string, senderCfg *Config, size int) {
	gro := senderCfg == nil || !senderCfg.NoOffload
	b.Run(name, func(b *testing.B) {
		benchDrain(b, senderCfg, size, func(rx *net.UDPConn) drainer {
			r := newBareReader(b, rx, gro)
			return drainer{rx.SetReadDeadline, func(p []byte) error {
				_, _, err := r.read(p)
				return err
			}, rx.Close}
		})
	})
}

// benchBareWrites runs the bare writer as the sub-benchmark name: size-byte
// datagrams round-robin to ndst sinks that do not read, counted until the
// socket is closed, as benchRoundRobin and BenchmarkWriteTo count.
func benchBareWrites(b *testing.B, name string, size, ndst int) {
	b.Run(name, func(b *testing.B) {
		dsts := benchSinks(b, ndst)
		uc := listenLoopback(b)
		w := newBareWriter(b, uc, dsts)
		p := make([]byte, size)
		b.ReportAllocs()
		b.ResetTimer()
		for i, d := 0, 0; i < b.N; i++ {
			if err := w.write(p, d); err != nil {
				b.Fatal(err)
			}
			if d++; d == ndst {
				d = 0
			}
		}
		if err := w.flush(); err != nil {
			b.Fatal(err)
		}
		if err := uc.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		reportRate(b, b.N)
	})
}

// bareReader is a read ring: one recvmmsg fills its slots, and read hands
// their datagrams out one at a time, copied into the caller's buffer, with
// the sender decoded once a message. With gro, the socket has UDP_GRO and
// a slot may hold a run of datagrams, split by the segment size its
// control message gives.
type bareReader struct {
	rc    syscall.RawConn
	gro   bool
	slot  int                     // bytes a slot
	mem   []byte                  // the slots, back to back
	hdrs  []mmsghdr               // a slot each
	iovs  []unix.Iovec            // a slot each
	names []unix.RawSockaddrInet6 // a slot each
	oob   []byte                  // bareGROOOB a slot, with gro
	zones zoneNames

	// The ring, as the last refill left it.
	addrs    []netip.AddrPort // each message's sender
	segs     []int            // each message's segment size, 0 for one datagram
	n        int              // messages received
	head     int              // the message being handed out
	off      int              // where in it the next datagram starts
	messages int              // messages received since made, for the tests: fewer than datagrams if GRO coalesced

	// The call, as the poller's callback leaves it; callback is a method
	// value made once.
	callback func(fd uintptr) bool
	errno    syscall.Errno
}

// newBareReader makes a bare reader on uc, with UDP_GRO turned on if gro.
func newBareReader(tb testing.TB, uc *net.UDPConn, gro bool) *bareReader {
	tb.Helper()
	rc, err := uc.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	slots, slot := bareBatch, bareSlot
	if gro {
		slots, slot = bareGROSlots, bareGROSlot
		var serr error
		rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1) })
		if serr != nil {
			tb.Skipf("UDP_GRO: %v", serr)
		}
	}
	r := &bareReader{
		rc: rc, gro: gro, slot: slot,
		mem:   make([]byte, slots*slot),
		hdrs:  make([]mmsghdr, slots),
		iovs:  make([]unix.Iovec, slots),
		names: make([]unix.RawSockaddrInet6, slots),
		addrs: make([]netip.AddrPort, slots),
		segs:  make([]int, slots),
	}
	if gro {
		r.oob = make([]byte, slots*bareGROOOB)
	}
	for i := range r.hdrs {
		r.iovs[i].Base = &r.mem[i*slot]
		r.iovs[i].SetLen(slot)
		h := &r.hdrs[i].Hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		if gro {
			h.Control = &r.oob[i*bareGROOOB]
			h.SetControllen(bareGROOOB)
		}
	}
	r.callback = r.recv
	return r
}

// read copies the next datagram into p, truncated to it, and returns its
// length and sender; it refills the ring when empty, waiting in the poller
// until the socket is readable or its read deadline passes.
func (r *bareReader) read(p []byte) (int, netip.AddrPort, error) {
	for r.head == r.n {
		if err := r.refill(); err != nil {
			return 0, netip.AddrPort{}, err
		}
	}
	i := r.head
	msg := r.mem[i*r.slot : i*r.slot+int(r.hdrs[i].Len)]
	end := segment(len(msg), r.segs[i], r.off)
	n := copy(p, msg[r.off:end])
	if r.off = end; r.off == len(msg) {
		r.head, r.off = r.head+1, 0
	}
	return n, r.addrs[i], nil
}

// refill is one recvmmsg into every slot, after waiting in the poller for
// the first datagram.
func (r *bareReader) refill() error {
	for i := range r.hdrs[:r.n] { // the kernel set the lengths it used
		h := &r.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		if r.gro {
			h.SetControllen(bareGROOOB)
		}
	}
	r.n, r.head, r.off, r.errno = 0, 0, 0, 0
	if err := r.rc.Read(r.callback); err != nil {
		return err
	}
	if r.errno != 0 {
		return os.NewSyscallError("recvmmsg", r.errno)
	}
	for i := range r.n {
		h := &r.hdrs[i]
		r.addrs[i] = sockaddrAddrPort(&r.names[i], &r.zones)
		r.segs[i] = 0
		if r.gro {
			if h.Hdr.Flags&unix.MSG_CTRUNC != 0 {
				return errors.New("recvmmsg cut a message's control data short: its segment size is lost")
			}
			r.segs[i] = cmsgUint(r.oob[i*bareGROOOB:i*bareGROOOB+int(h.Hdr.Controllen)], wordSize, unix.SOL_UDP, unix.UDP_GRO)
		}
	}
	r.messages += r.n
	return nil
}

// recv is the poller's callback: one recvmmsg of up to every slot; false
// means "wait until readable".
func (r *bareReader) recv(fd uintptr) bool {
	n, e := mmsgCall(unix.SYS_RECVMMSG, fd, r.hdrs)
	if e == unix.EAGAIN {
		return false
	}
	r.n, r.errno = n, e
	return true
}

// mmsgCall makes one recvmmsg or sendmmsg (trap) of hdrs on fd, again
// where a signal interrupted it: the messages it moved, or its errno.
func mmsgCall(trap, fd uintptr, hdrs []mmsghdr) (int, syscall.Errno) {
	for {
		n, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		if e != unix.EINTR {
			if e != 0 {
				n = 0
			}
			return int(n), e
		}
	}
}

// bareWriter is a write queue for datagrams to a fixed set of
// destinations: each datagram is copied into its destination's region of
// one arena and joins that destination's last message where GSO allows.
// The queue goes out when it holds bareQueue datagrams or a region has no
// room for the next: one sendmmsg of all its messages, in calls of up to
// bareBatch. The conn's queue is one region in WriteTo order, which it
// arranges by destination as it sends; the bare queue is arranged as it
// fills, by a destination index its caller gives.
type bareWriter struct {
	rc     syscall.RawConn
	arena  []byte
	region int // bytes of arena a destination
	dsts   []bareDest
	queued int // datagrams in the queue

	hdrs  []mmsghdr
	iovs  []unix.Iovec            // a message each: its datagrams are back to back
	names []unix.RawSockaddrInet6 // a destination each
	oob   []byte                  // oobSpace a message

	// The call, as the poller's callback leaves it; callback is a method
	// value made once.
	callback func(fd uintptr) bool
	k, sent  int // headers to send, and sent
	errno    syscall.Errno

	calls, messages int // since made: how the tests tell what went
}

// bareDest is one destination's share of the queue.
type bareDest struct {
	base, used int       // its region of the arena, and the bytes queued in it
	msgs       []bareMsg // its messages, room made for a queue of lone datagrams
	namelen    uint32    // of its sockaddr, in names
}

// bareMsg is one message of the queue: count datagrams, n bytes from off,
// all but the last seg bytes long.
type bareMsg struct{ off, n, seg, count int }

// newBareWriter makes a bare writer on uc to dsts, IPv4 addresses, with the
// conn's arena: defaultQueueBytes for one destination, wideQueueBytes (a
// fan-out queue's, which a conn takes once its queues fill with datagrams to
// several) for more.
func newBareWriter(tb testing.TB, uc *net.UDPConn, dsts []netip.AddrPort) *bareWriter {
	tb.Helper()
	rc, err := uc.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	arena := defaultQueueBytes
	if len(dsts) > 1 {
		arena = wideQueueBytes
	}
	w := &bareWriter{
		rc: rc, arena: make([]byte, arena), region: arena / len(dsts),
		dsts:  make([]bareDest, len(dsts)),
		hdrs:  make([]mmsghdr, bareBatch),
		iovs:  make([]unix.Iovec, bareBatch),
		names: make([]unix.RawSockaddrInet6, len(dsts)),
		oob:   make([]byte, bareBatch*oobSpace),
	}
	if w.region < maxPayload4 {
		tb.Fatalf("bare writer: %d destinations leave %d bytes each, too few for a datagram", len(dsts), w.region)
	}
	for i, ap := range dsts {
		d := &w.dsts[i]
		d.base = i * w.region
		d.msgs = make([]bareMsg, 0, bareQueue)
		d.namelen = putSockaddr(&w.names[i], false, ap)
	}
	w.callback = w.send
	return w
}

// write queues p to destination dst, sending the queue first if dst's
// region has no room for it, and after it if the queue is full.
func (w *bareWriter) write(p []byte, dst int) error {
	d := &w.dsts[dst]
	if d.used+len(p) > w.region {
		if err := w.flush(); err != nil {
			return err
		}
	}
	off := d.base + d.used
	copy(w.arena[off:], p)
	d.used += len(p)
	w.queued++
	// p continues its destination's last message if no longer than its
	// segments, none shorter came before it, and both limits allow.
	if k := len(d.msgs); k > 0 {
		m := &d.msgs[k-1]
		if len(p) > 0 && len(p) <= m.seg && m.n == m.seg*m.count && m.count < bareMaxSegs && m.n+len(p) <= bareMaxPayload {
			m.n += len(p)
			m.count++
			return w.sendFull()
		}
	}
	d.msgs = append(d.msgs, bareMsg{off: off, n: len(p), seg: len(p), count: 1})
	return w.sendFull()
}

func (w *bareWriter) sendFull() error {
	if w.queued < bareQueue {
		return nil
	}
	return w.flush()
}

// flush sends the queue: each destination's messages in turn, a
// UDP_SEGMENT control message on each that carries more than one datagram,
// in calls of up to bareBatch messages.
func (w *bareWriter) flush() error {
	w.k = 0
	for i := range w.dsts {
		d := &w.dsts[i]
		for _, m := range d.msgs {
			if w.k == len(w.hdrs) {
				if err := w.sendHeaders(); err != nil {
					return err
				}
			}
			h := &w.hdrs[w.k].Hdr
			w.iovs[w.k].Base = unsafe.SliceData(w.arena[m.off:])
			w.iovs[w.k].SetLen(m.n)
			h.Iov = &w.iovs[w.k]
			h.SetIovlen(1)
			h.Name = (*byte)(unsafe.Pointer(&w.names[i]))
			h.Namelen = d.namelen
			if m.count > 1 {
				oob := w.oob[w.k*oobSpace : (w.k+1)*oobSpace]
				h.Control = &oob[0]
				h.SetControllen(putSegSize(oob, wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, uint16(m.seg)))
			} else {
				h.Control = nil
				h.SetControllen(0)
			}
			w.k++
		}
		d.msgs, d.used = d.msgs[:0], 0
	}
	w.queued = 0
	return w.sendHeaders()
}

// sendHeaders sends the first k headers, in as many calls as the kernel
// needs, waiting in the poller while the socket is full.
func (w *bareWriter) sendHeaders() error {
	for w.sent = 0; w.sent < w.k; {
		before := w.sent
		if err := w.rc.Write(w.callback); err != nil {
			return err
		}
		if w.errno != 0 {
			e := w.errno
			w.errno = 0
			return os.NewSyscallError("sendmmsg", e)
		}
		if w.sent == before {
			return io.ErrNoProgress // never seen; must not spin
		}
		w.calls++
	}
	w.messages += w.k
	w.k = 0
	return nil
}

// send is the poller's callback: one sendmmsg of the headers not yet
// sent; false means "wait until writable".
func (w *bareWriter) send(fd uintptr) bool {
	n, e := mmsgCall(unix.SYS_SENDMMSG, fd, w.hdrs[w.sent:w.k])
	if e == unix.EAGAIN {
		return false
	}
	w.sent, w.errno = w.sent+n, e
	return true
}

// TestBareWriterDeliversEachDatagram: a bare loop that lost or doubled
// datagrams would make every ratio against it a lie. Each sink gets its
// datagrams, in order, once: across full queues and full regions, runs
// cut at 64 segments and at 65507 bytes, runs ended by a shorter
// datagram, and lone datagrams.
func TestBareWriterDeliversEachDatagram(t *testing.T) {
	mixed := []int{1000, 1000, 700, 1000, 1200, 1200, 0, 64, 1200, 1200, 1200}
	for _, c := range []struct {
		name            string
		ndst            int
		sizes           []int
		calls, messages int // 0: not checked
	}{
		{"1dst/64B", 1, repeat(600, 64), 2, 8 + 2},               // 512 a queue, 64 a message
		{"1dst/1200B", 1, repeat(219, 1200), 2, 5 + 1},           // 218 fill the arena, 54 a message, then one alone
		{"1dst/mixed", 1, mixed, 1, 6},                           // runs end short, start longer
		{"16dst/1200B", 16, repeat(16*33+5, 1200), 2, 16 + 16},   // 32 a destination a queue, then 1 or 2
		{"16dst/64B", 16, repeat(16*40, 64), 2, 16 + 16},         // as BenchmarkWriteToUDPAddrPort
		{"3dst/mixed", 3, append(mixed, repeat(70, 9)...), 0, 0}, // uneven runs
	} {
		t.Run(c.name, func(t *testing.T) {
			var sinks []*net.UDPConn
			var dsts []netip.AddrPort
			for range c.ndst {
				s := listenLoopback(t)
				defer s.Close()
				s.SetReadBuffer(4 << 20)
				sinks = append(sinks, s)
				dsts = append(dsts, s.LocalAddr().(*net.UDPAddr).AddrPort())
			}
			uc := listenLoopback(t)
			defer uc.Close()
			w := newBareWriter(t, uc, dsts)
			for i, size := range c.sizes {
				if err := w.write(numbered(i, size), i%c.ndst); err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
			}
			if err := w.flush(); err != nil {
				t.Fatal(err)
			}
			if c.calls > 0 && (w.calls != c.calls || w.messages != c.messages) {
				t.Errorf("%d sendmmsg calls of %d messages in all, want %d of %d", w.calls, w.messages, c.calls, c.messages)
			}
			for j, s := range sinks {
				var want []string
				for i := j; i < len(c.sizes); i += c.ndst {
					want = append(want, string(numbered(i, c.sizes[i])))
				}
				got := readN(t, s, len(want))
				for k := range want {
					if got[k] != want[k] {
						t.Fatalf("sink %d, datagram %d: got %d bytes %.12q, want %d bytes %.12q", j, k, len(got[k]), got[k], len(want[k]), want[k])
					}
				}
				s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, _, err := s.ReadFrom(make([]byte, 70000)); err == nil {
					t.Fatalf("sink %d: a datagram more than sent, %d bytes", j, n)
				}
			}
		})
	}
}

// TestBareReaderReturnsEachDatagram: the bare reader hands out each
// datagram once, in order, with its sender, split out of coalesced
// buffers with GRO, which must have come coalesced for the test to tell.
func TestBareReaderReturnsEachDatagram(t *testing.T) {
	sizes := append(append(repeat(150, 1200), 500), repeat(200, 64)...)
	for _, gro := range []bool{false, true} {
		t.Run(map[bool]string{false: "recvmmsg", true: "gro"}[gro], func(t *testing.T) {
			rx := listenLoopback(t)
			defer rx.Close()
			rx.SetReadBuffer(4 << 20)
			r := newBareReader(t, rx, gro)
			tx := New(listenLoopback(t), &Config{NoOffload: !gro, MaxDelay: time.Hour})
			defer tx.Close()
			requireBatching(t, tx)
			sendRun(t, tx, rx.LocalAddr(), sizes)
			from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
			p := make([]byte, 2048)
			rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i, size := range sizes {
				n, addr, err := r.read(p)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if string(p[:n]) != string(numbered(i, size)) || addr != from {
					t.Fatalf("datagram %d: got %d bytes %.12q from %v, want %d bytes %.12q from %v", i, n, p[:n], addr, size, numbered(i, size), from)
				}
			}
			rx.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if n, _, err := r.read(p); err == nil {
				t.Fatalf("a datagram more than sent, %d bytes", n)
			}
			if gro && r.messages >= len(sizes) {
				t.Fatalf("GRO on, %d datagrams came in %d buffers: none coalesced", len(sizes), r.messages)
			}
			if !gro && r.messages != len(sizes) {
				t.Fatalf("GRO off, %d datagrams came in %d messages", len(sizes), r.messages)
			}
		})
	}
}
