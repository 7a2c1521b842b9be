package batchconn

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// numbered returns datagram i of a run: size bytes that say which it is.
func numbered(i, size int) []byte {
	p := bytes.Repeat([]byte{byte('a' + i%26)}, size)
	copy(p, fmt.Sprintf("%d:", i))
	return p
}

// sendRun queues sizes as numbered datagrams from c to dst and flushes.
func sendRun(t *testing.T, c *PacketConn, dst net.Addr, sizes []int) {
	t.Helper()
	for i, size := range sizes {
		if _, err := c.WriteTo(numbered(i, size), dst); err != nil {
			t.Fatalf("WriteTo %d: %v", i, err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// expectRun reads len(sizes) datagrams on peer and checks each one.
func expectRun(t *testing.T, peer *net.UDPConn, sizes []int) {
	t.Helper()
	got := readN(t, peer, len(sizes))
	for i, size := range sizes {
		if got[i] != string(numbered(i, size)) {
			t.Fatalf("datagram %d: got %d bytes %.12q..., want %d bytes %.12q...", i, len(got[i]), got[i], size, numbered(i, size))
		}
	}
}

// warmGRO gives rx, if batched, the evidence that turns GRO on: a burst
// from one sender, read in one call. Plain reads the same datagrams, so a
// differential test stays one.
func warmGRO(t *testing.T, rx net.PacketConn, tx *PacketConn) {
	t.Helper()
	const n = 16
	for range n {
		tx.WriteTo([]byte("warm"), rx.LocalAddr())
	}
	tx.Flush()
	rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 16)
	for range n {
		if _, _, err := rx.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := rx.(*PacketConn); ok && c.bio != nil && groSockopt(t, c) != 1 {
		t.Fatalf("premise: GRO is still off after a burst of %d from one sender", n)
	}
}

// groSockopt reads UDP_GRO back from c's socket.
func groSockopt(t *testing.T, c *PacketConn) int {
	t.Helper()
	v, err := -1, error(nil)
	rc, _ := c.uc.SyscallConn()
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO) })
	if err != nil {
		t.Fatalf("getsockopt(UDP_GRO): %v", err)
	}
	return v
}

// GRO costs a kernel-wide switch the first time a socket turns it on, and
// again when the last one closes: only a conn that receives runs from one
// sender turns it on. One that reads a reply at a time, or that receives
// bursts from many senders one datagram each, never does.
func TestGROOnlyForRunsFromOneSender(t *testing.T) {
	c, peer := batchedPair(t, Config{})
	p := make([]byte, 64)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 20 { // replies one at a time
		go func() {
			time.Sleep(100 * time.Microsecond)
			peer.WriteTo([]byte{byte(i)}, c.LocalAddr())
		}()
		if _, _, err := c.ReadFrom(p); err != nil {
			t.Fatal(err)
		}
	}
	many := make([]*net.UDPConn, 16)
	for i := range many {
		many[i], _ = diffCase{}.listen(t)
		defer many[i].Close()
	}
	before := c.Stats()
	for range 8 { // bursts, one datagram from each of 16 senders
		for _, s := range many {
			s.WriteTo([]byte("x"), c.LocalAddr())
		}
		for range many {
			if _, _, err := c.ReadFrom(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := groSockopt(t, c); v != 0 {
		t.Fatalf("UDP_GRO = %d after single replies and interleaved bursts, want 0", v)
	}
	if s := c.Stats(); s.DatagramsRead-before.DatagramsRead < 2*(s.ReadCalls-before.ReadCalls) {
		t.Fatalf("premise: the bursts were read about a datagram a call: %+v", s)
	}

	tx := newConn(peer, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer tx.Close()
	for range 3 { // a GSO sender's bulk
		sendRun(t, tx, c.LocalAddr(), repeat(64, 1200))
		for range 64 {
			if _, _, err := c.ReadFrom(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if v := groSockopt(t, c); v != 1 {
		t.Fatalf("UDP_GRO = %d after a GSO sender's bulk, want 1", v)
	}
	if s := c.Stats(); s.OffloadReceived == 0 {
		t.Fatalf("Stats = %+v: nothing received coalesced once GRO was on", s)
	}
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func TestGSOSendsRunsAsSegments(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	sizes := append(repeat(10, 1200), 300, 1200, 1200)
	sendRun(t, c, peer.LocalAddr(), sizes)
	expectRun(t, peer, sizes)
	s := c.Stats()
	if s.OffloadSent != 13 || s.WriteCalls != 1 || s.OffloadFallbacks != 0 {
		t.Fatalf("Stats = %+v, want 13 datagrams as segments in 1 call", s)
	}
}

func TestNoOffloadSendsDatagramsOneByOne(t *testing.T) {
	c, peer := queuedPair(t, Config{NoOffload: true})
	sizes := repeat(10, 1200)
	sendRun(t, c, peer.LocalAddr(), sizes)
	expectRun(t, peer, sizes)
	if s := c.Stats(); s.OffloadSent != 0 || s.DatagramsWritten != 10 {
		t.Fatalf("Stats = %+v, want 10 datagrams and no segments", s)
	}
}

// A receiver with GRO gets a sender's segments as one buffer and must hand
// them out one at a time exactly as plain, which gets them one by one.
func TestGROReadsLikePlain(t *testing.T) {
	sizes := append(append(repeat(5, 1000), 300), repeat(3, 1000)...)
	var want []string
	for _, k := range []kind{kinds[0], kinds[1]} {
		t.Run(k.name, func(t *testing.T) {
			a, b := diffCase{}.listen(t)
			rx := k.wrap(b)
			defer rx.Close()
			tx := newConn(a, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
			defer tx.Close()
			warmGRO(t, rx, tx)
			sendRun(t, tx, rx.LocalAddr(), sizes)
			if s := tx.Stats(); s.OffloadSent-16 != uint64(len(sizes)) {
				t.Fatalf("premise: sender Stats = %+v, want every datagram sent as a segment", s)
			}
			var log []string
			rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i := range sizes {
				p := make([]byte, 600+i*100) // truncates some, per datagram
				n, addr, err := rx.ReadFrom(p)
				from := describeAddr(addr)
				from = strings.Replace(from, tx.LocalAddr().String(), "SENDER", 1)
				log = append(log, fmt.Sprintf("%d %.8q %s %v", n, p[:n], from, err))
			}
			if bc, ok := rx.(*PacketConn); ok {
				if s := bc.Stats(); s.OffloadReceived == 0 {
					t.Fatalf("premise: receiver Stats = %+v, want coalesced datagrams", s)
				}
			}
			if want == nil {
				want = log
			} else if strings.Join(log, "\n") != strings.Join(want, "\n") {
				t.Fatalf("differs from plain:\n%s", lineDiff(want, log))
			}
		})
	}
}

// In a namespace whose loopback has an MTU of 1280, a 1400-byte datagram
// sent plainly is fragmented and arrives; as a GSO segment the kernel
// refuses it. The datagrams must still all arrive, once, in order.
func TestGSOFallsBackWhenSegmentExceedsMTU(t *testing.T) {
	ns := newNetns(t)
	ns.setMTU(t, "lo", 1280)
	uc, peer := ns.listen(t), ns.listen(t)
	defer peer.Close()
	c := newConn(uc, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()

	sizes := repeat(10, 1400)
	sendRun(t, c, peer.LocalAddr(), sizes)
	expectRun(t, peer, sizes)
	s := c.Stats()
	if s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.DatagramsWritten != 10 {
		t.Fatalf("Stats = %+v, want one fallback and all 10 sent", s)
	}
	sendRun(t, c, peer.LocalAddr(), sizes) // offload stays off: no second refusal
	expectRun(t, peer, sizes)
	if s := c.Stats(); s.OffloadFallbacks != 1 || s.DatagramsWritten != 20 {
		t.Fatalf("Stats = %+v, want still one fallback and 20 sent", s)
	}
}

// Kernels and devices without checksum offload refuse GSO with EIO, and
// routes refuse segments longer than their MTU with EINVAL; this kernel
// segments in software instead, so the refusal is injected. After EIO no
// run goes segmented to that destination; after EINVAL for 1000-byte
// segments, the run of 10-byte ones still does.
func TestGSOFallsBackOnInjectedRefusal(t *testing.T) {
	for _, tc := range []struct {
		errno       syscall.Errno
		offloadSent uint64
	}{{syscall.EIO, 0}, {syscall.EINVAL, 3}} {
		errno := tc.errno
		t.Run(errno.Error(), func(t *testing.T) {
			c, peer := queuedPair(t, Config{})
			refused := 0
			c.bio.(*mmsgIO).tx.fault = func(h *mmsghdr) syscall.Errno {
				if h.Hdr.Controllen > 0 {
					refused++
					return errno
				}
				return 0
			}
			sizes := append(repeat(20, 1000), 10, 10, 10)
			sendRun(t, c, peer.LocalAddr(), sizes)
			expectRun(t, peer, sizes)
			peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := peer.ReadFrom(make([]byte, 2000)); err == nil {
				t.Fatal("a datagram arrived twice")
			}
			if s := c.Stats(); refused != 1 || s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.OffloadSent != tc.offloadSent {
				t.Fatalf("refused %d times, Stats = %+v; want one refusal, one fallback, none lost, %d sent as segments",
					refused, s, tc.offloadSent)
			}
		})
	}
}

// The probe finds the kernel's segment limit: a message of that many
// segments goes, and, where the probe settled for 64, one more does not.
// No kernel takes more than 128.
func TestGSOSegmentLimitIsTheKernels(t *testing.T) {
	limit := gsoSegmentLimit()
	if limit != gsoMaxSegs && limit != gsoMaxSegsProbe {
		t.Fatalf("gsoSegmentLimit() = %d, want %d or %d", limit, gsoMaxSegs, gsoMaxSegsProbe)
	}
	uc, peer := diffCase{}.listen(t)
	defer uc.Close()
	defer peer.Close()
	send := func(segs int) error {
		var oob [oobSpace]byte
		n := putSegSize(oob[:], wordSize, unix.SOL_UDP, unix.UDP_SEGMENT, 1)
		_, _, err := uc.WriteMsgUDP(make([]byte, segs), oob[:n], peer.LocalAddr().(*net.UDPAddr))
		return err
	}
	if err := send(limit); err != nil {
		t.Fatalf("a message of %d segments, the probed limit: %v", limit, err)
	}
	if err := send(limit + 1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("a message of %d segments, one over the probed limit: %v, want EINVAL", limit+1, err)
	}
	t.Logf("this kernel takes %d segments a message", limit)
}

// A route whose MTU is smaller than a segment refuses segmented messages
// to that destination only: its datagrams go one by one (the kernel
// fragments them, as plain's), and runs to other destinations keep
// offload. None lost, doubled or reordered.
func TestGSOOffForOneDestinationOnly(t *testing.T) {
	v := newVethPair(t)
	small := net.IPv4(198, 18, 0, 3).To4()
	v.b.ip(t, "addr", "add", small.String()+"/32", "dev", "vb")
	v.a.ip(t, "route", "add", small.String()+"/32", "dev", "va", "mtu", "1280")
	v.a.ip(t, "neigh", "replace", small.String(), "lladdr", "02:00:c6:12:00:02", "dev", "va", "nud", "permanent")

	good := v.b.listen(t, "udp4", v.bIP.String()+":0")
	defer good.Close()
	narrow := v.b.listen(t, "udp4", small.String()+":0")
	defer narrow.Close()
	c := newConn(v.a.listen(t, "udp4", v.aIP.String()+":0"), &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()
	if !c.bio.(*mmsgIO).tx.gso.allowed {
		t.Skip("this kernel has no UDP GSO")
	}

	sizes := repeat(10, 1400)
	for round := 1; round <= 2; round++ {
		for i, size := range sizes {
			for _, dst := range []net.Addr{narrow.LocalAddr(), good.LocalAddr()} {
				if _, err := c.WriteTo(numbered(i, size), dst); err != nil {
					t.Fatalf("WriteTo %d to %v: %v", i, dst, err)
				}
			}
		}
		// Runs: 10 to narrow, then 10 to good.
		for i, size := range sizes {
			if _, err := c.WriteTo(numbered(i, size), narrow.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		for i, size := range sizes {
			if _, err := c.WriteTo(numbered(i, size), good.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatalf("round %d: Flush: %v", round, err)
		}
		for _, rx := range []*net.UDPConn{narrow, good} {
			expectRun(t, rx, sizes) // interleaved, one by one
			expectRun(t, rx, sizes) // the run
		}
		s := c.Stats()
		if s.OffloadFallbacks != 1 || s.WriteFailures != 0 || s.DatagramsWritten != uint64(round*40) {
			t.Fatalf("round %d: Stats = %+v, want one fallback, %d written, none failed", round, s, round*40)
		}
		if s.OffloadSent != uint64(round*10) {
			t.Fatalf("round %d: OffloadSent = %d, want %d: the runs to the good destination segmented, none to the narrow one",
				round, s.OffloadSent, round*10)
		}
	}
	// Shorter segments still go segmented to the narrow destination: what
	// its route refused was segments of 1400 bytes (as a path-MTU probe
	// among shorter packets would be).
	short := repeat(10, 1000)
	sendRun(t, c, narrow.LocalAddr(), short)
	expectRun(t, narrow, short)
	if s := c.Stats(); s.OffloadSent != 30 || s.OffloadFallbacks != 1 {
		t.Fatalf("Stats = %+v: want the run of 1000-byte datagrams segmented, no new fallback", s)
	}
	for _, rx := range []*net.UDPConn{narrow, good} {
		rx.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := rx.ReadFrom(make([]byte, 2000)); err == nil {
			t.Fatalf("%v: a datagram arrived twice", rx.LocalAddr())
		}
	}
}

// Runs through GSO and back through GRO in each family: IPv4, IPv6, and
// an IPv6 socket sending to an IPv4 peer (IPv4-mapped destinations).
// Runs longer than the kernel's segment limit and than the family's 64 KiB
// payload limit split into several messages; every datagram arrives once,
// in order, whole, from the sender.
func TestOffloadAcrossFamilies(t *testing.T) {
	var sizes []int
	sizes = append(sizes, repeat(200, 1000)...) // over 64 KiB: several messages
	sizes = append(sizes, 65000)                // alone: no segments
	sizes = append(sizes, repeat(256, 10)...)   // over 128 segments: several messages
	sizes = append(sizes, 7, 7)                 // a run of two
	for _, fam := range []struct {
		name string
		dc   diffCase
	}{
		{"IPv4", diffCase{}},
		{"IPv6", diffCase{net: "udp6"}},
		{"IPv6-socket-to-IPv4-peer", diffCase{net: "udp", addr: "[::]:0"}},
	} {
		t.Run(fam.name, func(t *testing.T) {
			a, b := fam.dc.listen(t)
			tx := newConn(a, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
			defer tx.Close()
			requireBatching(t, tx)
			rx := New(b, nil)
			defer rx.Close()
			if err := rx.SetReadBuffer(4 << 20); err != nil {
				t.Fatal(err)
			}
			warmGRO(t, rx, tx)
			ts0, rs0 := tx.Stats(), rx.Stats()
			sendRun(t, tx, rx.LocalAddr(), sizes)

			p := make([]byte, 70000)
			rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			for i, size := range sizes {
				n, from, err := rx.ReadFromUDPAddrPort(p)
				if err != nil {
					t.Fatalf("datagram %d of %d: %v", i, len(sizes), err)
				}
				if want := numbered(i, size); string(p[:n]) != string(want) {
					t.Fatalf("datagram %d: got %d bytes %.12q..., want %d bytes %.12q...", i, n, p[:n], size, want)
				}
				if from.Port() != uint16(tx.LocalAddr().(*net.UDPAddr).Port) {
					t.Fatalf("datagram %d from %v, want the sender's port %v", i, from, tx.LocalAddr())
				}
			}
			ts, rs := tx.Stats(), rx.Stats()
			ts.OffloadSent -= ts0.OffloadSent
			rs.OffloadReceived -= rs0.OffloadReceived
			rs.DatagramsRead -= rs0.DatagramsRead
			if ts.OffloadSent != uint64(len(sizes)-1) || ts.OffloadFallbacks != 0 || ts.WriteFailures != 0 {
				t.Fatalf("sender Stats = %+v, want all but the 65000-byte datagram sent as segments, no fallback", ts)
			}
			if rs.OffloadReceived == 0 || rs.DatagramsRead != uint64(len(sizes)) {
				t.Fatalf("receiver Stats = %+v, want %d datagrams, some coalesced", rs, len(sizes))
			}
		})
	}
}

// Options users turn on before wrapping a socket make the kernel write
// control messages ahead of UDP_GRO's; each received buffer must still be
// split by its own segment size. With less control room than they need
// (here forced), a coalesced buffer whose segment size was cut off is
// discarded and counted, never handed out as one datagram.
func TestOptionsSetBeforeWrappingKeepGRODatagramsApart(t *testing.T) {
	for _, room := range []int{rxOOBSpace, 40} {
		t.Run(fmt.Sprint(room), func(t *testing.T) {
			a, b := diffCase{}.listen(t)
			rc, _ := b.SyscallConn()
			rc.Control(func(fd uintptr) {
				for _, o := range [][2]int{
					{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS},
					{unix.IPPROTO_IP, unix.IP_RECVTOS},
					{unix.IPPROTO_IP, unix.IP_RECVTTL},
					{unix.IPPROTO_IP, unix.IP_PKTINFO},
				} {
					if err := unix.SetsockoptInt(int(fd), o[0], o[1], 1); err != nil {
						t.Fatal(err)
					}
				}
			})
			rx := New(b, nil)
			defer rx.Close()
			requireBatching(t, rx)
			tx := newConn(a, &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
			defer tx.Close()
			warmGRO(t, rx, tx)
			rx.bio.(*mmsgIO).rx.ctlRoom = room

			sizes := repeat(9, 1000)
			sendRun(t, tx, rx.LocalAddr(), sizes)
			p := make([]byte, 70000)
			got := 0
			for rx.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); ; got++ {
				n, _, err := rx.ReadFrom(p)
				if err != nil {
					break
				}
				if n != 1000 || string(p[:n]) != string(numbered(got, 1000)) && room == rxOOBSpace {
					t.Fatalf("datagram %d: %d bytes %.12q", got, n, p[:n])
				}
			}
			s := rx.Stats()
			switch {
			case room == rxOOBSpace && (got != 9 || s.ReadDiscards != 0 || s.OffloadReceived == 0):
				t.Fatalf("read %d of 9 datagrams, Stats %+v: want all, coalesced, none discarded", got, s)
			case room < rxOOBSpace && (got != 0 || s.ReadDiscards == 0):
				t.Fatalf("read %d datagrams, Stats %+v: want the cut buffers discarded and counted", got, s)
			}
		})
	}
}

// Datagrams the kernel drops on a full receive queue show in Stats as the
// kernel counts them for the socket.
func TestReceiveDropsShowAsTheKernelCountsThem(t *testing.T) {
	c, peer := batchedPair(t, Config{})
	if err := c.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 2048)
	drain := func() {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			if _, _, err := c.ReadFrom(p); err != nil {
				return
			}
		}
	}
	for range 2 { // the first drain asks for the count, which counts both floods
		for range 1000 {
			peer.WriteTo(make([]byte, 1000), c.LocalAddr())
		}
		drain()
	}
	peer.WriteTo([]byte("after"), c.LocalAddr()) // brings the count as of now
	drain()
	kernel := socketDrops(t, c)
	if kernel == 0 {
		t.Fatal("premise: the kernel dropped nothing")
	}
	if s := c.Stats(); s.ReceiveDrops != kernel {
		t.Fatalf("Stats.ReceiveDrops = %d, the kernel counts %d", s.ReceiveDrops, kernel)
	}
}

// socketDrops reads the kernel's drop count for c's socket
// (SO_MEMINFO's SK_MEMINFO_DROPS, the count /proc/net/udp shows).
func socketDrops(t *testing.T, c *PacketConn) uint64 {
	t.Helper()
	const skMeminfoDrops, skMeminfoVars = 8, 9 // linux/sock_diag.h
	var info [skMeminfoVars]uint32
	size := uint32(unsafe.Sizeof(info))
	var errno syscall.Errno
	rc, _ := c.uc.SyscallConn()
	rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if errno != 0 {
		t.Fatalf("getsockopt(SO_MEMINFO): %v", errno)
	}
	return uint64(info[skMeminfoDrops])
}
