package batchconn

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// checkGrouped says what is wrong unless got holds ms's datagrams, each
// destination's together and in ms's order, the destinations in order of
// first appearance (destinations that may be one socket being one).
func checkGrouped(ms, got []txMsg) error {
	key := orderKey
	var order []netip.AddrPort
	per := map[netip.AddrPort][]*byte{}
	for i := range ms {
		k := key(ms[i].addr)
		if per[k] == nil {
			order = append(order, k)
		}
		per[k] = append(per[k], &ms[i].buf[0])
	}
	var want []*byte
	for _, k := range order {
		want = append(want, per[k]...)
	}
	if len(got) != len(want) {
		return fmt.Errorf("%d datagrams, want %d", len(got), len(want))
	}
	for i := range got {
		if &got[i].buf[0] != want[i] {
			return fmt.Errorf("datagram %d of %d out of place", i, len(got))
		}
	}
	return nil
}

// group queues ms through f, as the writer does, and arranges them.
func group(f *fanout, ms []txMsg) []txMsg {
	f.reset()
	for _, m := range ms {
		f.add(m.addr, len(m.buf))
	}
	return f.arrange(ms)
}

func TestGroupByDestination(t *testing.T) {
	var f fanout
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.2:1")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 3000 {
		n := rng.IntN(600)
		dsts := []netip.AddrPort{a, b, mapped}
		for range rng.IntN(40) {
			dsts = append(dsts, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(256))}), uint16(rng.IntN(4))))
		}
		ms := make([]txMsg, n)
		for i := range ms {
			ms[i] = txMsg{buf: make([]byte, 1), addr: dsts[rng.IntN(len(dsts))]}
		}
		if err := checkGrouped(ms, group(&f, ms)); err != nil {
			t.Fatalf("round %d, %d datagrams to %d addresses: %v", round, n, len(dsts), err)
		}
	}
	// More destinations than the table takes: sent as queued.
	ms := make([]txMsg, fanoutSlots)
	for i := range ms {
		ms[i] = txMsg{buf: make([]byte, 1), addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 9)}
	}
	ms[len(ms)-1].addr = ms[0].addr
	if got := group(&f, ms); &got[0] != &ms[0] {
		t.Fatal("a queue of more than fanoutSlots/2 destinations was regrouped")
	}
}

// A fan-out stream: datagrams round-robin to 16 receivers, with and
// without offload, grouped and in strict order: each receiver gets exactly its datagrams,
// in order, none lost or doubled; grouped with offload, they go as
// segments.
func TestFanOutKeepsEachDestinationsOrder(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{NoOffload: true},
		{StrictOrder: true},
	} {
		t.Run(fmt.Sprintf("strict=%v,nooffload=%v", cfg.StrictOrder, cfg.NoOffload), func(t *testing.T) {
			cfg.MaxDelay = time.Hour // queuedPair queues every write
			c, peer := queuedPair(t, cfg)
			rx := []*net.UDPConn{peer}
			for range 15 {
				r, _ := diffCase{}.listen(t)
				defer r.Close()
				rx = append(rx, r)
			}
			for _, r := range rx {
				r.SetReadBuffer(1 << 20) // the whole stream waits to be read
			}
			const per = 200
			for round := range per {
				for i, r := range rx {
					if _, err := c.WriteTo(numbered(round, 1200-i), r.LocalAddr()); err != nil {
						t.Fatal(err)
					}
				}
				if round%50 == 49 {
					c.Flush()
				}
			}
			c.Flush()
			for i, r := range rx {
				expectRun(t, r, repeat(per, 1200-i))
				r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if n, _, err := r.ReadFrom(make([]byte, 2000)); err == nil {
					t.Fatalf("receiver %d: a datagram more (%d bytes)", i, n)
				}
			}
			s := c.Stats()
			segmented := s.OffloadSent > 0
			if want := !cfg.StrictOrder && !cfg.NoOffload; segmented != want || s.DatagramsWritten != 16*per {
				t.Fatalf("Stats = %+v: want %d written, segments %v", s, 16*per, want)
			}
		})
	}
}

// Datagrams to destinations that may be one socket on this host keep
// their WriteTo order while the rest of the queue is grouped: a socket
// bound to 0.0.0.0, written to at 127.0.0.1, at the host's own address
// (in a namespace of the test's own) and at 0.0.0.0, in turn with
// datagrams to two other sockets, reads them as written.
func TestOneSocketAtSeveralAddressesKeepsWriteOrder(t *testing.T) {
	ns := newNetns(t)
	ns.ip(t, "addr", "add", "198.18.44.1/32", "dev", "lo")
	if err := ns.inNetns(func() error { readHostAddrs(); return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(readHostAddrs) // the process's own namespace again
	own := netip.MustParseAddr("198.18.44.1")
	if !isHostAddr(own) {
		t.Fatal("premise: the namespace's address is not known as the host's")
	}
	rx := ns.listen(t, "udp4", "0.0.0.0:0")
	port := uint16(rx.LocalAddr().(*net.UDPAddr).Port)
	var others [2]netip.AddrPort
	for i := range others {
		others[i] = ns.listen(t, "udp4", "127.0.0.1:0").LocalAddr().(*net.UDPAddr).AddrPort()
	}
	c := newConn(ns.listen(t, "udp4", "127.0.0.1:0"), &Config{MaxDelay: time.Hour}, hooks{idleGap: time.Hour})
	defer c.Close()
	requireBatching(t, c)
	to := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		netip.AddrPortFrom(own, port),
		netip.AddrPortFrom(netip.IPv4Unspecified(), port),
	}
	const n = 150 // within a new namespace's default receive buffer
	for i := range n {
		if _, err := c.WriteToUDPAddrPort(numbered(i, 100), to[i%len(to)]); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDPAddrPort(make([]byte, 1000), others[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	expectRun(t, rx, repeat(n, 100))
	if s := c.Stats(); s.OffloadSent == 0 || s.DatagramsWritten != 2*n {
		t.Fatalf("Stats %+v: want %d written, the other sockets' grouped into segments", s, 2*n)
	}
}

// A conn whose queues fill with datagrams to several destinations takes
// wide queues, so that each destination's runs grow; one that sends to
// one destination, keeps WriteTo order or set QueueBytes keeps its bound.
func TestOnlyAFanOutQueueGrows(t *testing.T) {
	sinks := make([]netip.AddrPort, 16)
	for i := range sinks {
		s := listenLoopback(t)
		defer s.Close()
		sinks[i] = s.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	p := make([]byte, 1200)
	for _, tc := range []struct {
		name string
		cfg  Config
		ndst int
		want int
	}{
		{"fan-out", Config{}, 16, wideQueueBytes},
		{"one destination", Config{}, 1, defaultQueueBytes},
		{"fan-out, strict order", Config{StrictOrder: true}, 16, defaultQueueBytes},
		{"fan-out, QueueBytes set", Config{QueueBytes: defaultQueueBytes}, 16, defaultQueueBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := queuedPair(t, tc.cfg)
			if !c.b().w.io.segments() {
				t.Skip("the kernel has no UDP GSO")
			}
			for i := range 600 { // a queue of 256 KiB, then most of the next
				if _, err := c.WriteToUDPAddrPort(p, sinks[i%tc.ndst]); err != nil {
					t.Fatal(err)
				}
			}
			c.b().w.mu.Lock()
			got := len(c.b().w.blk.arena)
			c.b().w.mu.Unlock()
			if got != tc.want {
				t.Fatalf("the second queue has %d bytes, want %d", got, tc.want)
			}
		})
	}
}

// A grouped queue keeps each destination's run back to back in its arena,
// so that a message goes to the kernel in a few pieces (gather), and the
// datagrams still arrive whole and in order; a destination written once
// takes no more room than its datagram.
func TestGroupedRunsLieBackToBack(t *testing.T) {
	c, peer := queuedPair(t, Config{})
	other := listenLoopback(t)
	defer other.Close()
	once := listenLoopback(t)
	defer once.Close()
	if !c.b().w.io.segments() {
		t.Skip("no segmentation offload here: the queue is not grouped")
	}
	dsts := []net.Addr{peer.LocalAddr(), other.LocalAddr()}
	c.WriteTo(numbered(99, 100), once.LocalAddr())
	for i := range 40 {
		c.WriteTo(numbered(i, 100), dsts[i%2])
	}
	w := &c.b().w
	w.mu.Lock()
	var runs [2][]txMsg
	for i, m := range w.msgs[1:] {
		runs[i%2] = append(runs[i%2], m)
	}
	used := w.used
	w.mu.Unlock()
	iovs := make([]unix.Iovec, 20)
	// A run's first datagram lies where the group began; the rest in slabs.
	most := 1 + (19+groupSlab-1)/groupSlab
	for k, run := range runs {
		if pieces := gather(iovs, run); pieces > most {
			t.Errorf("run %d of 20 datagrams went in %d pieces, want at most %d", k, pieces, most)
		}
	}
	if most := 41*100 + 2*groupSlab*100; used > most {
		t.Errorf("the queue took %d bytes of arena for 4100 bytes of datagrams, want at most %d", used, most)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for k, rx := range []*net.UDPConn{peer, other} {
		got := readN(t, rx, 20)
		for j, s := range got {
			if want := string(numbered(2*j+k, 100)); s != want {
				t.Fatalf("destination %d, datagram %d: %.8q, want %.8q", k, j, s, want)
			}
		}
	}
	if got := readN(t, once, 1); got[0] != string(numbered(99, 100)) {
		t.Fatalf("the lone destination got %.8q", got[0])
	}
}

// Slabs cost a queue to many peers, a few datagrams each, at most an
// eighth of its arena: 30 destinations written in turn, six or seven
// datagrams each, fill seven eighths of the default arena before the
// queue must go for room (without the bound, their slabs would take more
// than the arena).
func TestSlabsLeaveAManyPeerQueueItsRoom(t *testing.T) {
	c, _ := queuedPair(t, Config{})
	if !c.b().w.io.segments() {
		t.Skip("no segmentation offload here: the queue is not grouped")
	}
	var dsts []net.Addr
	for range 30 {
		sink := listenLoopback(t)
		defer sink.Close()
		dsts = append(dsts, sink.LocalAddr())
	}
	fits := defaultQueueBytes * 7 / 8 / 1200
	for i := range fits {
		if _, err := c.WriteTo(make([]byte, 1200), dsts[i%len(dsts)]); err != nil {
			t.Fatal(err)
		}
	}
	if s := c.Stats(); s.FlushFull != 0 || s.DatagramsWritten != 0 {
		t.Fatalf("after %d datagrams of 1200 B to 30 peers the queue went for room: %+v", fits, s)
	}
}
