package batchconn

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

// A message's datagrams that lie back to back in the arena go to the
// kernel as one iovec; a gap starts another, and every byte is pointed at
// once, in order.
func TestGatherJoinsDatagramsBackToBack(t *testing.T) {
	arena := make([]byte, 100)
	at := func(off, n int) txMsg { return txMsg{buf: arena[off : off+n : off+n]} }
	for _, tc := range []struct {
		name  string
		ds    []txMsg
		iovs  int
		bytes int
	}{
		{"one", []txMsg{at(0, 10)}, 1, 10},
		{"a run in a row", []txMsg{at(0, 10), at(10, 10), at(20, 5)}, 1, 25},
		{"a run with a gap", []txMsg{at(0, 10), at(30, 10), at(40, 10)}, 2, 30},
		{"out of order", []txMsg{at(20, 10), at(10, 10)}, 2, 20},
		{"an empty datagram", []txMsg{at(0, 10), at(10, 0)}, 2, 10},
	} {
		iovs := make([]unix.Iovec, len(tc.ds))
		n := gather(iovs, tc.ds)
		total := 0
		for _, v := range iovs[:n] {
			total += int(v.Len)
		}
		if n != tc.iovs || total != tc.bytes || iovs[0].Base != unsafe.SliceData(tc.ds[0].buf) {
			t.Errorf("%s: %d iovecs of %d bytes, want %d of %d from the first datagram", tc.name, n, total, tc.iovs, tc.bytes)
		}
	}
}
