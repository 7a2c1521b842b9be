package batchconn

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

var (
	dstA = netip.MustParseAddrPort("127.0.0.1:1000")
	dstB = netip.MustParseAddrPort("127.0.0.2:1000")
	dst6 = netip.MustParseAddrPort("[::1]:1000")
)

func msgsOf(dst netip.AddrPort, sizes ...int) []txMsg {
	var ms []txMsg
	for i, s := range sizes {
		p := bytes.Repeat([]byte{byte(i)}, s)
		ms = append(ms, txMsg{buf: p, addr: dst})
	}
	return ms
}

func TestCoalesce(t *testing.T) {
	for _, c := range []struct {
		name    string
		msgs    []txMsg
		maxSegs int
		n, seg  int
	}{
		{"empty", nil, 64, 0, 0},
		{"lone datagram goes without segment size", msgsOf(dstA, 1200), 64, 1, 0},
		{"equal sizes", msgsOf(dstA, 1200, 1200, 1200), 64, 3, 1200},
		{"shorter last ends the run", msgsOf(dstA, 1200, 1200, 500, 1200), 64, 3, 1200},
		{"longer one ends the run", msgsOf(dstA, 500, 500, 1200), 64, 2, 500},
		{"zero-length first goes alone", msgsOf(dstA, 0, 0), 64, 1, 0},
		{"zero-length is never a segment", msgsOf(dstA, 100, 0), 64, 1, 0},
		{"segment limit", msgsOf(dstA, 10, 10, 10, 10, 10), 4, 4, 10},
		{"no GSO", msgsOf(dstA, 10, 10), 1, 1, 0},
		{"IPv4 payload limit", msgsOf(dstA, 30000, 30000, 30000), 64, 2, 30000},
		{"IPv4 payload limit exactly", msgsOf(dstA, 32753, 32754), 64, 1, 0},
		{"IPv4 payload limit fits", msgsOf(dstA, 32754, 32753), 64, 2, 32754},
		{"IPv6 allows more", msgsOf(dst6, 32764, 32763), 64, 2, 32764},
		{"IPv4 would not", msgsOf(dstA, 32764, 32763), 64, 1, 0},
		{"other destination ends the run", append(msgsOf(dstA, 100, 100), msgsOf(dstB, 100)...), 64, 2, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, seg := coalesce(c.msgs, c.maxSegs)
			if n != c.n || seg != c.seg {
				t.Fatalf("coalesce = %d, %d; want %d, %d", n, seg, c.n, c.seg)
			}
		})
	}
}

// checkCoalesce cuts msgs into messages as a flush would and checks the
// kernel's rules and that splitting each message gives back its datagrams.
func checkCoalesce(t *testing.T, msgs []txMsg, maxSegs int) {
	for i := 0; i < len(msgs); {
		n, seg := coalesce(msgs[i:], maxSegs)
		if n < 1 || i+n > len(msgs) {
			t.Fatalf("coalesce at %d = %d: out of range", i, n)
		}
		run := msgs[i : i+n]
		if n == 1 {
			if seg != 0 {
				t.Fatalf("lone datagram with segment size %d", seg)
			}
			i++
			continue
		}
		if n > maxSegs || seg == 0 {
			t.Fatalf("run of %d with segment size %d, limit %d", n, seg, maxSegs)
		}
		var buf []byte
		for k, m := range run {
			if m.addr != run[0].addr {
				t.Fatalf("run mixes destinations")
			}
			if len(m.buf) == 0 || len(m.buf) > seg || k < n-1 && len(m.buf) != seg {
				t.Fatalf("segment %d of %d has %d bytes, segment size %d", k, n, len(m.buf), seg)
			}
			buf = append(buf, m.buf...)
		}
		if len(buf) > payloadLimit(run[0].addr) {
			t.Fatalf("run carries %d bytes", len(buf))
		}
		// What a GRO receiver would hand back: the same datagrams.
		k := 0
		for off := 0; off < len(buf); k++ {
			end := segment(len(buf), seg, off)
			if end <= off || !bytes.Equal(buf[off:end], run[k].buf) {
				t.Fatalf("segment %d splits to %d..%d, not the datagram", k, off, end)
			}
			off = end
		}
		if k != n {
			t.Fatalf("split gives %d datagrams, want %d", k, n)
		}
		i += n
	}
}

func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{10, 10, 10, 5}, uint8(64), uint16(1200))
	f.Add([]byte{0, 1, 0, 1, 255}, uint8(2), uint16(30000))
	f.Fuzz(func(t *testing.T, shape []byte, maxSegs uint8, scale uint16) {
		// Each byte is one datagram: its low bits the size, its top bit
		// the destination.
		var msgs []txMsg
		for _, b := range shape {
			dst := dstA
			if b&0x80 != 0 {
				dst = dst6
			}
			size := int(b&0x7f) * int(scale) / 127
			msgs = append(msgs, txMsg{buf: bytes.Repeat([]byte{b}, size), addr: dst})
		}
		checkCoalesce(t, msgs, max(int(maxSegs), 1))
	})
}

func TestSegment(t *testing.T) {
	for _, c := range []struct{ n, seg, off, end int }{
		{0, 0, 0, 0},
		{100, 0, 0, 100},
		{100, 40, 0, 40},
		{100, 40, 40, 80},
		{100, 40, 80, 100},
		{120, 40, 80, 120},
		{100, 100, 0, 100},
		{50, 100, 0, 50},
	} {
		if end := segment(c.n, c.seg, c.off); end != c.end {
			t.Errorf("segment(%d, %d, %d) = %d, want %d", c.n, c.seg, c.off, end, c.end)
		}
	}
}

func TestKernelGSORunMustSplitOnlyWhenAllSegmentsAreEqual(t *testing.T) {
	for _, tc := range []struct {
		sizes []int
		split bool
	}{
		{nil, false},
		{[]int{1200}, false},             // alone: no UDP_SEGMENT at all
		{[]int{1200, 1200}, true},        // two equal segments: the broken shape
		{[]int{1200, 800}, false},        // last shorter: safe
		{[]int{1200, 1200, 1200}, true},  // n-1 segmented would still be equal
		{[]int{1200, 1200, 1199}, false}, // one byte short is enough
		{[]int{1, 1}, true},
		{[]int{1200, 1200, 1200, 1200, 1200, 1200, 1200, 1200, 1}, false},
	} {
		if got := gsoRunMustSplit(msgsOf(dstA, tc.sizes...)); got != tc.split {
			t.Errorf("gsoRunMustSplit(%v) = %v, want %v", tc.sizes, got, tc.split)
		}
	}
}

// On a kernel where equal runs are unsafe, the plan coalesce and
// gsoRunMustSplit make together sends every datagram once, in order, and
// never a segmented message of equal segments; it keeps GSO for every run
// whose last datagram is shorter.
func TestKernelGSORunPlanNeverSendsEqualSegments(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 7))
	dst := netip.MustParseAddrPort("127.0.0.1:9")
	var split, kept int
	for round := range 2000 {
		sizes := randomSizes(rng)
		msgs := msgsOf(dst, sizes...)
		var sent []int
		for i := 0; i < len(msgs); {
			n, _ := coalesce(msgs[i:], gsoMaxSegs)
			run := sizes[i : i+n]
			if gsoRunMustSplit(msgs[i : i+n]) {
				sent = append(sent, run...) // one datagram a message
				split++
			} else {
				if len(run) >= 2 && allEqual(run) {
					t.Fatalf("round %d: a segmented message of equal segments %v from %v", round, run, sizes)
				}
				if len(run) >= 2 && run[len(run)-1] >= run[0] {
					t.Fatalf("round %d: kept run %v does not end short", round, run)
				}
				sent = append(sent, run...)
				if len(run) >= 2 {
					kept++
				}
			}
			i += n
		}
		if fmt.Sprint(sent) != fmt.Sprint(sizes) {
			t.Fatalf("round %d: sent %v, want %v", round, sent, sizes)
		}
	}
	if split == 0 || kept == 0 {
		t.Errorf("the random runs were %d split and %d kept segmented: both must occur", split, kept)
	}
	t.Logf("%d runs split, %d kept segmented", split, kept)
}

func randomSizes(rng *rand.Rand) []int {
	sizes := make([]int, 1+rng.IntN(200))
	common := []int{1, 100, 1200, 1400}
	for i := range sizes {
		if rng.IntN(4) == 0 {
			sizes[i] = 1 + rng.IntN(1500)
		} else {
			sizes[i] = common[rng.IntN(len(common))]
		}
	}
	return sizes
}

func allEqual(s []int) bool {
	for _, n := range s {
		if n != s[0] {
			return false
		}
	}
	return true
}
