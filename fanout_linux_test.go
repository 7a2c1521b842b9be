package batchconn

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"
)

// checkGrouped says what is wrong unless got holds ms's datagrams, each
// destination's together and in ms's order, the destinations in order of
// first appearance (IPv4 and IPv4-mapped forms being one).
func checkGrouped(ms, got []txMsg) error {
	key := func(ap netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
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
		if err := checkGrouped(ms, groupByDestination(ms, &f)); err != nil {
			t.Fatalf("round %d, %d datagrams to %d addresses: %v", round, n, len(dsts), err)
		}
	}
	// More destinations than the table takes: sent as queued.
	ms := make([]txMsg, fanoutSlots)
	for i := range ms {
		ms[i] = txMsg{buf: make([]byte, 1), addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 9)}
	}
	ms[len(ms)-1].addr = ms[0].addr
	if got := groupByDestination(ms, &f); &got[0] != &ms[0] {
		t.Fatal("a queue of more than fanoutSlots/2 destinations was regrouped")
	}
}

// A fan-out stream: datagrams round-robin to 16 receivers, with and
// without offload and grouping: each receiver gets exactly its datagrams,
// in order, none lost or doubled; grouped with offload, they go as
// segments.
func TestFanOutKeepsEachDestinationsOrder(t *testing.T) {
	for _, cfg := range []Config{
		{GroupByDestination: true},
		{GroupByDestination: true, NoOffload: true},
		{},
	} {
		t.Run(fmt.Sprintf("group=%v,nooffload=%v", cfg.GroupByDestination, cfg.NoOffload), func(t *testing.T) {
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
			if want := cfg.GroupByDestination && !cfg.NoOffload; segmented != want || s.DatagramsWritten != 16*per {
				t.Fatalf("Stats = %+v: want %d written, segments %v", s, 16*per, want)
			}
		})
	}
}
