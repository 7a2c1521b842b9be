package batchconn

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"
)

// Helpers shared by the tests of several rooms.

// queuedPair returns a batchconn that queues every write, and a plain peer.
// Unless cfg says otherwise, the timer never sends the queue.
func queuedPair(t *testing.T, cfg Config, h ...hooks) (*PacketConn, *net.UDPConn) {
	t.Helper()
	hk := hooks{}
	if len(h) > 0 {
		hk = h[0]
	}
	hk.idleGap = time.Hour
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = time.Hour
	}
	return batchedPair(t, cfg, hk)
}

// batchedPair is a batched conn with cfg and a plain peer on loopback,
// both closed when the test ends; it skips where nothing is batched.
func batchedPair(t *testing.T, cfg Config, h ...hooks) (*PacketConn, *net.UDPConn) {
	t.Helper()
	uc, peer := diffCase{}.listen(t)
	hk := hooks{}
	if len(h) > 0 {
		hk = h[0]
	}
	c := newConn(uc, &cfg, hk)
	t.Cleanup(func() { c.Close(); peer.Close() })
	requireBatching(t, c)
	return c, peer
}

// requireBatching skips a test of the batching path where the system has
// none (it is only vetted there: CI runs on Linux, where it never skips).
func requireBatching(t *testing.T, c *PacketConn) {
	t.Helper()
	if c.b() == nil {
		t.Skip("this system has no recvmmsg/sendmmsg: conns are served one datagram at a time")
	}
}

// readN reads n datagrams on peer, failing the test after a second without one.
func readN(t *testing.T, peer *net.UDPConn, n int) []string {
	t.Helper()
	var got []string
	p := make([]byte, 70000)
	for range n {
		peer.SetReadDeadline(time.Now().Add(time.Second))
		m, _, err := peer.ReadFrom(p)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, string(p[:m]))
	}
	return got
}

func listenLoopback(b testing.TB) *net.UDPConn {
	b.Helper()
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	return uc
}

// echoServer runs a plain echo server on loopback until the test ends.
func echoServer(b testing.TB) *net.UDPAddr {
	b.Helper()
	srv := listenLoopback(b)
	b.Cleanup(func() { srv.Close() })
	echoOn(srv)
	return srv.LocalAddr().(*net.UDPAddr)
}

// echoOn serves conn as an unchanged echo server, a reply to each
// datagram, until conn is closed.
func echoOn(conn net.PacketConn) {
	go func() {
		p := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(p)
			if err != nil {
				return
			}
			conn.WriteTo(p[:n], from)
		}
	}()
}

// exchange dials srv, wraps the socket as k does, sends one 40-byte query,
// reads the reply and returns the conn, still open.
func exchange(b testing.TB, k kind, srv *net.UDPAddr, q, p []byte) net.PacketConn {
	uc, err := net.DialUDP("udp4", nil, srv)
	if err != nil {
		b.Fatal(err)
	}
	conn := k.wrap(uc)
	c := conn.(net.Conn)
	if _, err := c.Write(q); err != nil {
		b.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(p); err != nil {
		b.Fatal(err)
	}
	return conn
}

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

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

// heapInUse is the heap's live bytes once nothing is left that only waits
// for collections: the read pool lets blocks nobody took go after two
// ages (done here at once, rather than by the cleanup after collections),
// and sync.Pool's victim cache empties at the second.
func heapInUse() int64 {
	readPools.Range(func(_, v any) bool {
		p := v.(*readPool)
		p.mu.Lock()
		p.age()
		p.age()
		p.mu.Unlock()
		return true
	})
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// memFigures are the heap in use and the memory taken from the OS.
type memFigures struct{ heapInuse, sys uint64 }

// memNow takes the figures now; with gc, once nothing is left that only
// waits for collections (heapInUse), so that what counts is live.
func memNow(gc bool) memFigures {
	if gc {
		heapInUse()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{m.HeapInuse, m.Sys}
}

const mib = 1 << 20

func mb(n uint64) float64 { return float64(n) / mib }
