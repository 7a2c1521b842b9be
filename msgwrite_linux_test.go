package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Writes with control messages against plain: what WriteMsgUDP returns
// and what the peer receives (payload, source, TOS or traffic class, TTL
// or hop limit) must be what plain gives, for good and bad input alike.

// mEnv is one run of a write case: the conn under test and a plain peer
// that reports each datagram's TOS, TTL and destination.
type mEnv struct {
	t     *testing.T
	conn  msgConn
	peer  *net.UDPConn
	to    *net.UDPAddr // the peer, as the conn writes to it
	log   []string
	local int // the conn's port
	rep   *strings.Replacer
}

func (e *mEnv) logf(format string, args ...any) {
	e.log = append(e.log, e.rep.Replace(fmt.Sprintf(format, args...)))
}

func (e *mEnv) writeMsg(p, oob []byte) {
	n, oobn, err := e.conn.WriteMsgUDP(p, oob, e.to)
	e.logf("WriteMsgUDP(%d, %d oob) = %d %d %s", len(p), len(oob), n, oobn, describe(err))
}

func (e *mEnv) writeMsgAddrPort(p, oob []byte) {
	n, oobn, err := e.conn.WriteMsgUDPAddrPort(p, oob, e.to.AddrPort())
	e.logf("WriteMsgUDPAddrPort(%d, %d oob) = %d %d %s", len(p), len(oob), n, oobn, describe(err))
}

// peerRead reads n datagrams at the peer (the conn is flushed first) and
// logs each with its control messages.
func (e *mEnv) peerRead(n int) {
	if f, ok := e.conn.(interface{ Flush() error }); ok {
		if err := f.Flush(); err != nil {
			e.logf("Flush = %s", describe(err))
		}
	}
	e.peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for range n {
		b, oob := make([]byte, 70000), make([]byte, 256)
		k, oobn, flags, from, err := e.peer.ReadMsgUDP(b, oob)
		if err != nil {
			e.logf("peer: %s", describe(err))
			return
		}
		e.logf("peer got %d %s flags=%#x from=%s control=%s", k, digest(b[:k]), flags, from.IP, describeControl(oob[:oobn]))
	}
}

func (e *mEnv) peerExpectNothing() {
	e.peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if k, _, err := e.peer.ReadFromUDP(make([]byte, 2048)); err == nil {
		e.logf("peer got an unexpected %d bytes", k)
	}
}

// cm builds a control message.
func cm(level, typ int32, data []byte) []byte {
	b := make([]byte, align(align(wordSize+8, wordSize)+len(data), wordSize))
	n := putCmsg(b, wordSize, level, typ, data)
	return b[:n]
}

func u32(v int32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(v))
	return b
}

func segSize(seg uint16) []byte {
	b := make([]byte, 2)
	binary.NativeEndian.PutUint16(b, seg)
	return cm(unix.SOL_UDP, unix.UDP_SEGMENT, b)
}

func pktinfo4(src [4]byte, ifindex int32) []byte {
	d := make([]byte, 12)
	binary.NativeEndian.PutUint32(d, uint32(ifindex))
	copy(d[4:8], src[:])
	return cm(unix.IPPROTO_IP, unix.IP_PKTINFO, d)
}

func cat(bs ...[]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

type writeCase struct {
	name    string
	network string
	laddr   string // the conn's local address; default loopback
	run     func(e *mEnv)
}

var peerOpts4 = [][3]int{{unix.IPPROTO_IP, unix.IP_RECVTOS, 1}, {unix.IPPROTO_IP, unix.IP_RECVTTL, 1}, {unix.IPPROTO_IP, unix.IP_PKTINFO, 1}}
var peerOpts6 = [][3]int{{unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1}, {unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1}}

func (c writeCase) runOn(t *testing.T, k kind) []string {
	network, laddr, loop := c.network, c.laddr, "127.0.0.1"
	if network == "" {
		network = "udp4"
	}
	if network == "udp6" {
		loop = "::1"
	}
	if laddr == "" {
		laddr = net.JoinHostPort(loop, "0")
	}
	uc, err := net.ListenUDP(network, mustResolve(t, network, laddr))
	if err != nil {
		t.Fatal(err)
	}
	conn := k.wrap(uc).(msgConn)
	defer conn.Close()
	peer, err := net.ListenUDP(network, mustResolve(t, network, net.JoinHostPort(loop, "0")))
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if network == "udp6" {
		setOpt(t, peer, peerOpts6...)
	} else {
		setOpt(t, peer, peerOpts4...)
	}
	e := &mEnv{t: t, conn: conn, peer: peer, to: peer.LocalAddr().(*net.UDPAddr), local: uc.LocalAddr().(*net.UDPAddr).Port}
	e.rep = strings.NewReplacer(":"+strconv.Itoa(e.local), ":LOCALPORT", ":"+strconv.Itoa(e.to.Port), ":PEERPORT")
	c.run(e)
	return e.log
}

var writeCases = []writeCase{
	{name: "no control messages", run: func(e *mEnv) {
		e.writeMsg(seqN(100, 1), nil)
		e.writeMsgAddrPort(seqN(0, 1), nil)
		e.peerRead(2)
	}},
	{name: "TOS and TTL, each form", run: func(e *mEnv) {
		e.writeMsg(seqN(100, 1), cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{0x2e}))
		e.writeMsg(seqN(100, 2), cm(unix.IPPROTO_IP, unix.IP_TOS, u32(0xb8)))
		e.writeMsgAddrPort(seqN(100, 3), cat(cm(unix.IPPROTO_IP, unix.IP_TTL, u32(7)), cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{1})))
		e.writeMsg(seqN(100, 4), nil)
		e.peerRead(4)
	}},
	{name: "refused at the call, the rest sent", run: func(e *mEnv) {
		e.writeMsg(seqN(100, 1), cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{1}))
		bad := cm(unix.IPPROTO_IP, unix.IP_TOS, u32(300))
		e.writeMsg(seqN(100, 2), bad)                                                     // out of range
		e.writeMsg(seqN(100, 3), cm(unix.IPPROTO_IP, unix.IP_TTL, u32(0)))                // TTL 0
		e.writeMsg(seqN(100, 4), cm(unix.IPPROTO_IP, 99, u32(1)))                         // unknown type
		e.writeMsg(seqN(100, 5), cm(unix.SOL_UDP, unix.UDP_GRO, u32(1)))                  // not for sending
		e.writeMsg(seqN(100, 6), cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{1, 2}))          // bad length
		e.writeMsg(seqN(100, 7), append(cm(unix.IPPROTO_IP, unix.IP_TOS, u32(1)), 40, 0)) // trailing bytes: ignored
		long := cm(unix.IPPROTO_IP, unix.IP_TOS, u32(1))
		binary.NativeEndian.PutUint32(long, 200) // a length past the buffer
		e.writeMsg(seqN(100, 8), long)
		e.writeMsg(seqN(100, 9), cm(12345, 1, u32(1))) // unknown level: ignored
		e.writeMsg(seqN(100, 10), nil)
		e.peerRead(4)
		e.peerExpectNothing()
	}},
	{name: "segmented by the caller", run: func(e *mEnv) {
		e.writeMsg(seqN(1000, 1), segSize(100))
		e.writeMsg(seqN(950, 2), cat(cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{2}), segSize(100)))
		e.writeMsg(seqN(50, 3), segSize(100)) // one segment: one datagram
		e.writeMsg(seqN(100, 4), nil)
		e.peerRead(22)
	}},
	{name: "segmented past the kernel's limits", run: func(e *mEnv) {
		e.writeMsg(seqN(200*100+1, 1), segSize(100))             // more segments than any kernel takes: plain's answer
		e.writeMsg(seqN(100, 2), cat(segSize(100), segSize(50))) // two of a kind: plain's kernel takes the last
		e.writeMsg(seqN(100, 3), nil)
		e.peerRead(3)
		e.peerExpectNothing()
	}},
	{name: "source chosen by the caller on a wildcard socket", laddr: "0.0.0.0:0", run: func(e *mEnv) {
		// The peer is heard from at 127.0.0.2 first, then answered from it.
		heard := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: e.local}
		if _, err := e.peer.WriteToUDP([]byte("hello"), heard); err != nil {
			e.t.Fatal(err)
		}
		n, _, _, _, err := e.conn.ReadMsgUDP(make([]byte, 100), make([]byte, 100))
		e.logf("read %d %s", n, describe(err))
		e.writeMsg(seqN(100, 1), pktinfo4([4]byte{127, 0, 0, 2}, 0))
		e.writeMsg(seqN(100, 2), pktinfo4([4]byte{127, 0, 0, 3}, 0)) // never heard at: plain sends it
		e.writeMsg(seqN(100, 3), pktinfo4([4]byte{192, 0, 2, 1}, 0)) // not local: plain's EINVAL
		e.writeMsg(seqN(100, 4), pktinfo4([4]byte{127, 0, 0, 2}, 1))
		// (Without a source of the caller's, the conn answers from where
		// the peer wrote to, where plain leaves it to the route: a
		// difference of its own, srcaddr_linux_test.go.)
		e.peerRead(3)
		e.peerExpectNothing()
	}},
	{name: "v6 source chosen by the caller on a wildcard socket", network: "udp6", laddr: "[::]:0", run: func(e *mEnv) {
		if _, err := e.peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.IPv6loopback, Port: e.local}); err != nil {
			e.t.Fatal(err)
		}
		n, _, _, _, err := e.conn.ReadMsgUDP(make([]byte, 100), make([]byte, 100))
		e.logf("read %d %s", n, describe(err))
		info := func(a net.IP, ifindex uint32) []byte {
			d := make([]byte, 20)
			copy(d, a.To16())
			binary.NativeEndian.PutUint32(d[16:], ifindex)
			return cm(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, d)
		}
		e.writeMsg(seqN(100, 1), info(net.IPv6loopback, 0))
		e.writeMsg(seqN(100, 2), info(net.IPv6loopback, 1))
		e.writeMsg(seqN(100, 3), info(net.IPv6unspecified, 0))
		e.writeMsg(seqN(100, 4), info(net.ParseIP("2001:db8::1"), 0)) // not local: plain's EINVAL
		e.writeMsg(seqN(100, 5), info(net.ParseIP("::ffff:127.0.0.1"), 0))
		e.peerRead(3)
		e.peerExpectNothing()
	}},
	{name: "v6 traffic class and hop limit", network: "udp6", run: func(e *mEnv) {
		e.writeMsg(seqN(100, 1), cm(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, u32(0x0a)))
		e.writeMsg(seqN(100, 2), cat(cm(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, u32(9)), cm(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, u32(-1))))
		e.writeMsg(seqN(100, 3), cm(unix.IPPROTO_IPV6, unix.IPV6_TCLASS, u32(256)))
		e.writeMsg(seqN(100, 4), cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{1})) // IPv4's: ignored on IPv6
		e.peerRead(3)
		e.peerExpectNothing()
	}},
	{name: "WriteBatch", run: func(e *mEnv) {
		ms := make([]ipv4.Message, 4)
		for i := range ms {
			ms[i] = ipv4.Message{Buffers: [][]byte{seqN(60, byte(i)), seqN(40, byte(i))}, Addr: e.to}
		}
		ms[1].OOB = cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{3})
		ms[3].OOB = cm(unix.IPPROTO_IP, unix.IP_TOS, u32(999))
		var n int
		var err error
		if b, ok := e.conn.(interface {
			WriteBatch([]ipv4.Message, int) (int, error)
		}); ok {
			n, err = b.WriteBatch(ms, 0)
		} else {
			n, err = ipv4.NewPacketConn(e.conn.(*net.UDPConn)).WriteBatch(ms, 0)
		}
		e.logf("WriteBatch = %d %v", n, err != nil)
		for i := range n {
			e.logf("  message %d: N=%d NN=%d", i, ms[i].N, ms[i].NN)
		}
		e.peerRead(n)
	}},
}

func TestMessageWritesLikeUDPConn(t *testing.T) {
	for _, c := range writeCases {
		t.Run(c.name, func(t *testing.T) {
			compareKinds(t, kinds, func(k kind) []string { return c.runOn(t, k) })
		})
	}
}

// A caller's segmented message leaves as one segmented message where the
// kernel's gates allow it, and as separate datagrams where they do not
// (offload off, or a kernel that mangles runs of one length): the same
// datagrams arrive, in order, in one system call either way.
func TestCallerSegmentsFollowTheGates(t *testing.T) {
	for _, c := range []struct {
		name    string
		cfg     Config
		kernel  string
		offload uint64 // datagrams the conn should send as segments
	}{
		{"offload", Config{}, "", 20},
		{"no offload", Config{NoOffload: true}, "", 0},
		{"equal runs unsafe", Config{}, "7.0.2", 10}, // the 1000-byte message is a run of one length
	} {
		t.Run(c.name, func(t *testing.T) {
			uc, peer := diffCase{}.listen(t)
			c.cfg.MaxDelay = time.Hour // one flush, however slow the writes (-race)
			conn := newConn(uc, &c.cfg, hooks{idleGap: time.Hour, kernel: c.kernel})
			defer conn.Close()
			defer peer.Close()
			to := peer.LocalAddr().(*net.UDPAddr)
			// A first write probes the kernel's offload, which takes long
			// enough for the queue to go out on age: warm up.
			if _, _, err := conn.WriteMsgUDP([]byte("warm"), nil, to); err != nil || conn.Flush() != nil {
				t.Fatal(err)
			}
			if _, err := peer.Read(make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			before := conn.Stats()
			for i, p := range [][]byte{seqN(1000, 1), seqN(950, 2)} {
				if _, _, err := conn.WriteMsgUDP(p, segSize(100), to); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if err := conn.Flush(); err != nil {
				t.Fatal(err)
			}
			st := conn.Stats()
			calls, written := st.WriteCalls-before.WriteCalls, st.DatagramsWritten-before.DatagramsWritten
			if st.OffloadSent != c.offload || calls != 1 || written != 20 {
				t.Errorf("sent %d datagrams as segments in %d calls, %d datagrams; want %d in 1 call, 20", st.OffloadSent, calls, written, c.offload)
			}
			want := append(seqN(1000, 1), seqN(950, 2)...)
			var got []byte
			peer.SetReadDeadline(time.Now().Add(2 * time.Second))
			for range 20 {
				b := make([]byte, 2000)
				n, err := peer.Read(b)
				if err != nil {
					t.Fatal(err)
				}
				if n != 100 && n != 50 {
					t.Fatalf("a datagram of %d bytes", n)
				}
				got = append(got, b[:n]...)
			}
			if string(got) != string(want) {
				t.Errorf("the datagrams differ from what was written")
			}
		})
	}
}

// A caller's segmented message that the kernel refuses to segment (EIO:
// a device without checksum offload) goes again as separate datagrams,
// with its control messages: none lost, none doubled, the refusal
// counted.
func TestCallerSegmentsFallBackOnInjectedRefusal(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	refused := 0
	injectSendFault(c, func(h *mmsghdr) syscall.Errno {
		if h.Hdr.Controllen > 0 && cmsgData(unsafe.Slice(h.Hdr.Control, h.Hdr.Controllen), wordSize, unix.SOL_UDP, unix.UDP_SEGMENT) != nil {
			refused++
			return syscall.EIO
		}
		return 0
	})
	tos := cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{0x02})
	setOpt(t, peer, [3]int{unix.IPPROTO_IP, unix.IP_RECVTOS, 1})
	to := peer.LocalAddr().(*net.UDPAddr)
	if _, _, err := c.WriteMsgUDP(seqN(1000, 1), cat(tos, segSize(100)), to); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	want := seqN(1000, 1)
	for i := range 10 {
		b, oob := make([]byte, 2000), make([]byte, 64)
		n, oobn, _, _, err := peer.ReadMsgUDP(b, oob)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if string(b[:n]) != string(want[i*100:(i+1)*100]) || string(cmsgData(oob[:oobn], wordSize, unix.IPPROTO_IP, unix.IP_TOS)) != "\x02" {
			t.Fatalf("datagram %d: %d bytes, control %x: not the caller's segment with its TOS", i, n, oob[:oobn])
		}
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := peer.Read(make([]byte, 2000)); err == nil {
		t.Fatal("a datagram arrived twice")
	}
	if s := c.Stats(); refused != 1 || s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.DatagramsWritten != 10 || s.OffloadSent != 0 {
		t.Fatalf("refused %d times, Stats = %+v; want one refusal, one fallback, 10 sent one by one", refused, s)
	}
}

// Message writes from many goroutines, some segmented, beside Control
// calls and message reads, under the race detector: every datagram
// arrives once.
func TestMessageCallsConcurrently(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	c := New(uc, nil)
	defer c.Close()
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	setsockoptInt(t, peer, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	to := peer.LocalAddr().(*net.UDPAddr)
	const writers, each = 4, 100 // each message: 3 datagrams
	done := make(chan error, writers+2)
	for w := range writers {
		go func() {
			for i := range each {
				oob := cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{byte(w)})
				if i%2 == 0 {
					oob = cat(oob, segSize(100))
				}
				p := seqN(300, byte(i))
				if i%2 == 1 {
					p = p[:100]
					_, _, err := c.WriteMsgUDP(p, oob, to)
					if err == nil {
						_, _, err = c.WriteMsgUDPAddrPort(p, oob, to.AddrPort())
					}
					if err == nil {
						_, _, err = c.WriteMsgUDP(p, nil, to)
					}
					if err != nil {
						done <- err
						return
					}
					continue
				}
				if _, _, err := c.WriteMsgUDP(p, oob, to); err != nil {
					done <- err
					return
				}
			}
			done <- c.Flush()
		}()
	}
	go func() { // options changed through Control while traffic flows
		for i := range 50 {
			rc, _ := c.SyscallConn()
			rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, i%2) })
		}
		done <- nil
	}()
	go func() { // a reader of message calls, with nothing to read but its deadline
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, _, _, _, err := c.ReadMsgUDP(make([]byte, 10), make([]byte, 64))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			done <- fmt.Errorf("ReadMsgUDP = %v, want the deadline", err)
			return
		}
		done <- nil
	}()
	for range writers + 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got < writers*each*3 {
		if _, err := peer.Read(make([]byte, 2000)); err != nil {
			t.Fatalf("after %d of %d datagrams: %v (Stats %+v)", got, writers*each*3, err, c.Stats())
		}
		got++
	}
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := peer.Read(make([]byte, 2000)); err == nil {
		t.Fatal("more datagrams than written")
	}
	if s := c.Stats(); s.WriteFailures != 0 {
		t.Fatalf("Stats = %+v, want no failures", s)
	}
}

// A write with a source the socket received at (as quic-go writes back the
// packet info it read, interface included) is queued, not handed to
// plain; and a segmented message sent at once on an idle conn counts its
// datagrams as offload.
func TestCallerSourceIsQueued(t *testing.T) {
	for _, tc := range []struct {
		network string
		kernel  bool // KernelChoosesSource: the conn learns where datagrams came in from its caller's packet info
	}{{"udp4", false}, {"udp6", false}, {"udp4", true}, {"udp6", true}} {
		network := tc.network
		t.Run(fmt.Sprintf("%s/KernelChoosesSource=%v", network, tc.kernel), func(t *testing.T) {
			loop := net.IPv4(127, 0, 0, 1)
			if network == "udp6" {
				loop = net.IPv6loopback
			}
			uc, err := net.ListenUDP(network, &net.UDPAddr{IP: net.IPv4zero})
			if network == "udp6" {
				uc, err = net.ListenUDP(network, &net.UDPAddr{IP: net.IPv6unspecified})
			}
			if err != nil {
				t.Fatal(err)
			}
			c := newConn(uc, &Config{MaxDelay: time.Hour, KernelChoosesSource: tc.kernel}, hooks{idleGap: time.Hour})
			defer c.Close()
			if network == "udp6" {
				setOpt(t, c, [3]int{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1})
			} else {
				setOpt(t, c, [3]int{unix.IPPROTO_IP, unix.IP_PKTINFO, 1})
			}
			peer, err := net.ListenUDP(network, &net.UDPAddr{IP: loop})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			peer.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: loop, Port: uc.LocalAddr().(*net.UDPAddr).Port})
			oob := make([]byte, 128)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, oobn, _, _, err := c.ReadMsgUDP(make([]byte, 64), oob)
			if err != nil || oobn == 0 {
				t.Fatalf("ReadMsgUDP: %d bytes of control, %v", oobn, err)
			}
			// The packet info read, written back as the source.
			var back []byte
			if d := cmsgData(oob[:oobn], wordSize, unix.IPPROTO_IP, unix.IP_PKTINFO); d != nil {
				back = pktinfo4([4]byte(d[8:12]), int32(binary.NativeEndian.Uint32(d[:4])))
			} else if d := cmsgData(oob[:oobn], wordSize, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO); d != nil {
				back = cm(unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, d)
			}
			if back == nil {
				t.Fatalf("no packet info in %x", oob[:oobn])
			}
			if _, _, err := c.WriteMsgUDP([]byte("answer"), back, peer.LocalAddr().(*net.UDPAddr)); err != nil {
				t.Fatal(err)
			}
			if q := c.b().w.queued.Load(); q != 1 {
				t.Fatalf("%d datagrams queued after a write with the source read, want 1: it went to plain", q)
			}
		})
	}
	// An idle conn sends a segmented message at once, as one.
	c, peer := queuedPair(t, Config{})
	defer peer.Close()
	c.b().s.cfg.idleGap = 0 // idle at once
	if _, _, err := c.WriteMsgUDP(seqN(1000, 1), segSize(100), peer.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(); s.FlushIdle != 1 || s.OffloadSent != 10 || s.DatagramsWritten != 10 || s.WriteCalls != 1 {
		t.Fatalf("Stats = %+v, want one call sent at once, 10 datagrams as segments", s)
	}
}

// A WriteMsgUDP the kernel refuses (an nftables rule, EPERM; a route MTU
// below a datagram that must not fragment, EMSGSIZE) fails at the call on
// an idle conn, as on plain, its error naming the destination as the
// caller gave it. (A queued one would be reported by Flush: Errors in the
// package documentation.)
func TestMessageErrorsLikeUDPConn(t *testing.T) {
	v := newVethPair(t)
	setupBadDestinations(t, v)
	tos := cm(unix.IPPROTO_IP, unix.IP_TOS, []byte{0x02})
	// plain, batchconn, single: not the all-queued kind
	compareKinds(t, []kind{kinds[0], kinds[1], kinds[3]}, func(k kind) []string {
		c := k.wrap(listenDF(t, v)).(msgConn)
		var log []string
		for _, w := range []struct {
			dst  *net.UDPAddr
			size int
		}{{nftDst, 100}, {mtuDst, 1400}, {mtuDst, 100}} {
			for _, addrPort := range []bool{false, true} {
				var err error
				if addrPort {
					_, _, err = c.WriteMsgUDPAddrPort(seqN(w.size, 1), tos, w.dst.AddrPort())
				} else {
					_, _, err = c.WriteMsgUDP(seqN(w.size, 1), tos, w.dst)
				}
				s := describe(err)
				var oe *net.OpError
				if errors.As(err, &oe) {
					s += fmt.Sprintf(" addrtype=%T", oe.Addr)
				}
				log = append(log, fmt.Sprintf("%v %d addrport=%v: %s", w.dst, w.size, addrPort, strings.ReplaceAll(s, c.LocalAddr().String(), "LOCAL")))
				time.Sleep(2 * time.Millisecond) // idle again: the next goes at once too
			}
		}
		c.Close()
		return log
	})
}
