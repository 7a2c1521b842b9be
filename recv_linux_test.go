package batchconn

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
	if c, ok := rx.(*PacketConn); ok && c.b() != nil && groSockopt(t, c) != 1 {
		t.Fatalf("premise: GRO is still off after a burst of %d from one sender", n)
	}
}

// groSockopt reads UDP_GRO back from c's socket.
func groSockopt(t *testing.T, c *PacketConn) int {
	t.Helper()
	v, err := -1, error(nil)
	rc, _ := c.b().s.uc.SyscallConn()
	rc.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO) })
	if err != nil {
		t.Fatalf("getsockopt(UDP_GRO): %v", err)
	}
	return v
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
			limitControlRoom(rx, room)

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
	rc, _ := c.b().s.uc.SyscallConn()
	rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if errno != 0 {
		t.Fatalf("getsockopt(SO_MEMINFO): %v", errno)
	}
	return uint64(info[skMeminfoDrops])
}
