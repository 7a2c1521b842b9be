package batchconn

import (
	"bytes"
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

func TestSegSizeControlMessageRoundTrip(t *testing.T) {
	for _, word := range []int{4, 8} {
		oob := make([]byte, 64)
		n := putSegSize(oob, word, 17, 103, 1200)
		if got := cmsgUint(oob[:n], word, 17, 103); got != 1200 {
			t.Errorf("word %d: read back %d, want 1200", word, got)
		}
		if got := cmsgUint(oob[:n], word, 17, 104); got != 0 {
			t.Errorf("word %d: another type read as %d", word, got)
		}
		// A second message after one of another type.
		m := putSegSize(oob, word, 1, 1, 7)
		putSegSize(oob[m:], word, 17, 103, 1400)
		if got := cmsgUint(oob[:m+n], word, 17, 103); got != 1400 {
			t.Errorf("word %d: second message read as %d, want 1400", word, got)
		}
	}
}

func FuzzGROSegSize(f *testing.F) {
	oob := make([]byte, 24)
	putSegSize(oob, 8, 17, 104, 1200)
	f.Add(oob, true)
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255}, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, oob []byte, wide bool) {
		word := 4
		if wide {
			word = 8
		}
		if seg := cmsgUint(oob, word, 17, 104); seg < 0 {
			t.Fatalf("negative segment size %d", seg)
		}
	})
}
