package batchconn

import (
	"net"
	"runtime"
	"testing"
	"unsafe"
)

// What a conn costs beyond plain where batching cannot help: a fresh conn
// that carries one query, and conns that exchanged a datagram and went
// quiet. The bound is the one doc.go's Memory section gives.
const costBound = 2 << 10 // bytes more than plain, per query or per idle conn

// bytesPerQuery is the bytes allocated per fresh conn that dials, wraps
// as k does, exchanges one query with srv and closes.
func bytesPerQuery(t *testing.T, k kind, srv *net.UDPAddr) float64 {
	const n = 200
	q, p := make([]byte, 40), make([]byte, 2048)
	exchange(t, k, srv, q, p).Close() // process-wide setup, once
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		exchange(t, k, srv, q, p).Close()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / n
}

func TestFreshConnAllocatesAboutWhatPlainDoes(t *testing.T) {
	srv := echoServer(t)
	plain := bytesPerQuery(t, kinds[0], srv)
	batched := bytesPerQuery(t, kinds[1], srv)
	t.Logf("bytes allocated per fresh query: plain %.0f, batchconn %.0f", plain, batched)
	if batched > plain+costBound {
		t.Fatalf("a fresh batchconn allocates %.0f bytes a query, plain %.0f: more than %d over", batched, plain, costBound)
	}
}

// heldPerIdleConn is the live heap per conn of n conns that each
// exchanged one query with srv and stay open.
func heldPerIdleConn(t *testing.T, k kind, srv *net.UDPAddr, n int) float64 {
	q, p := make([]byte, 40), make([]byte, 2048)
	before := heapInUse()
	conns := make([]net.PacketConn, n)
	for i := range conns {
		conns[i] = exchange(t, k, srv, q, p)
	}
	held := float64(heapInUse()-before) / float64(n)
	for _, c := range conns {
		c.Close()
	}
	return held
}

func TestThousandsOfIdleConnsHoldAboutWhatPlainHolds(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	srv := echoServer(t)
	plain := heldPerIdleConn(t, kinds[0], srv, n)
	batched := heldPerIdleConn(t, kinds[1], srv, n)
	t.Logf("heap held per idle conn, %d conns: plain %.0f bytes, batchconn %.0f", n, plain, batched)
	if batched > plain+costBound {
		t.Fatalf("an idle batchconn holds %.0f bytes, plain %.0f: more than %d over", batched, plain, costBound)
	}
}

func TestAllocations(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	dst := peer.LocalAddr().(*net.UDPAddr)
	p := make([]byte, 64)
	if n := testing.AllocsPerRun(1000, func() { c.WriteTo(p, dst) }); n != 0 {
		t.Errorf("WriteTo: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.WriteToUDPAddrPort(p, dst.AddrPort()) }); n != 0 {
		t.Errorf("WriteToUDPAddrPort: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { c.WriteToUDP(p, dst) }); n != 0 {
		t.Errorf("WriteToUDP: %v allocations, want 0", n)
	}
	c.Flush()

	r := New(peer, nil)
	buf := make([]byte, 64)
	fill := func() {
		for range 100 {
			c.WriteTo(p, dst)
		}
		c.Flush()
	}
	fill()
	r.ReadFrom(buf) // the first read allocates the ring
	if n := testing.AllocsPerRun(50, func() { r.ReadFromUDPAddrPort(buf) }); n != 0 {
		t.Errorf("ReadFromUDPAddrPort: %v allocations, want 0", n)
	}
	fill()
	if n := testing.AllocsPerRun(50, func() { r.ReadFrom(buf) }); n > 1 {
		t.Errorf("ReadFrom: %v allocations, want at most 1 (plain makes 2)", n)
	}
	fill()
	if n := testing.AllocsPerRun(50, func() { r.ReadFromUDP(buf) }); n > 1 {
		t.Errorf("ReadFromUDP: %v allocations, want at most 1 (plain makes 2)", n)
	}
}

// A batched conn is one allocation of the runtime's 704-byte size class on
// 64-bit systems: a field that pushes it past costs every conn 64 bytes or
// more (the next classes are 768 and 896), fresh or idle.
func TestBatchedConnStaysInItsSizeClass(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the size class is 64-bit's")
	}
	if size := unsafe.Sizeof(batched{}); size > 704 {
		t.Fatalf("a batched conn is %d bytes, past the 704-byte size class", size)
	}
}
