package batchconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Accounting: every datagram is delivered, or counted by the kernel as
// dropped. In a namespace of the test's own, only the test's datagrams
// move the counters.

// accountingPayload is datagram i of sender s, size bytes that say so.
func accountingPayload(s, i, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, uint32(s))
	binary.BigEndian.PutUint32(p[4:], uint32(i))
	for j := 8; j < size; j++ {
		p[j] = byte(s*31 + i + j)
	}
	return p
}

// orderCheck follows the datagrams of several senders: each one's must
// come in order, with gaps only (drops), never twice or backwards.
type orderCheck struct {
	mu   sync.Mutex
	next []int
	n    int64
	errs []string
}

func newOrderCheck(senders int) *orderCheck { return &orderCheck{next: make([]int, senders)} }

func (o *orderCheck) see(p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n++
	if len(p) < 8 {
		o.errs = append(o.errs, fmt.Sprintf("a %d-byte datagram", len(p)))
		return
	}
	s, i := int(binary.BigEndian.Uint32(p)), int(binary.BigEndian.Uint32(p[4:]))
	switch {
	case s >= len(o.next):
		o.errs = append(o.errs, fmt.Sprintf("sender %d unknown", s))
	case i < o.next[s]:
		o.errs = append(o.errs, fmt.Sprintf("sender %d: datagram %d after %d (duplicate or reordered)", s, i, o.next[s]-1))
	case string(p) != string(accountingPayload(s, i, len(p))):
		o.errs = append(o.errs, fmt.Sprintf("sender %d: datagram %d corrupt", s, i))
	default:
		o.next[s] = i + 1
	}
}

func (o *orderCheck) count() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

func (o *orderCheck) check(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.errs {
		if i == 10 {
			t.Errorf("... and %d more", len(o.errs)-10)
			break
		}
		t.Error(e)
	}
}

// settle waits until delivered plus the kernel's drops account for n
// datagrams, or stop changing: delivery on loopback may finish in softirq
// context after the send returns. It returns the counters' growth since
// before.
func settle(t *testing.T, ns *netns, before kernelCounters, n int64, delivered func() int64) (kernelCounters, int64) {
	t.Helper()
	var k kernelCounters
	var got, last int64 = 0, -1
	for i, still := 0, 0; i < 1000 && still < 20; i++ {
		k = ns.snmp(t).sub(before)
		got = delivered()
		sum := got + k.udp["InErrors"] + k.devDrop
		if sum >= n {
			break
		}
		if sum == last {
			still++
		} else {
			still = 0
		}
		last = sum
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // anything beyond n shows now
	return ns.snmp(t).sub(before), delivered()
}

func TestAccountingWrittenDatagrams(t *testing.T) {
	t.Run("NoOffload", func(t *testing.T) { accountWrites(t, false) })
	t.Run("Offload", func(t *testing.T) { accountWrites(t, true) })
}

// accountWrites writes through batchconn to a plain reader that cannot
// keep up. Without offload every packet is one datagram, and delivered
// plus the kernel's drops is exactly what was written. With offload
// (GSO) a packet the device drops before the socket cuts it up may carry
// several datagrams, and the device counts one drop.
func accountWrites(t *testing.T, offload bool) {
	ns := newLoopbackNetns(t)
	rx := ns.listenLoopback(t)
	defer rx.Close()
	// A small receive buffer and a reader that cannot keep up with two
	// writers: the kernel drops, and counts.
	if err := rx.SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	const writers = 2
	each := 10000
	if testing.Short() {
		each = 2000
	}
	n := int64(writers * each)
	before := ns.snmp(t)
	c := New(ns.listenLoopback(t), &Config{NoOffload: !offload})
	requireBatching(t, c)

	order := newOrderCheck(writers)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		p := make([]byte, 2000)
		for {
			m, _, err := rx.ReadFrom(p)
			if err != nil {
				return
			}
			order.see(p[:m])
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Runs of equal sizes (GSO) broken by other sizes.
				size := 100 + 1300*((i/7)%2) + i%3
				if _, err := c.WriteTo(accountingPayload(w, i, size), rx.LocalAddr()); err != nil {
					t.Errorf("writer %d: WriteTo %d = %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	k, delivered := settle(t, ns, before, n, order.count)
	rx.Close()
	<-rdone
	order.check(t)
	s := c.Stats()
	drops := k.udp["InErrors"] + k.devDrop
	t.Logf("offload %v: written %d through batchconn: delivered %d + kernel drops %d (InErrors %d, of which RcvbufErrors %d; device drops %d) = %d; "+
		"Stats: DatagramsWritten %d in %d calls, OffloadSent %d, WriteFailures %d; kernel %v",
		offload, n, delivered, drops, k.udp["InErrors"], k.udp["RcvbufErrors"], k.devDrop, delivered+drops,
		s.DatagramsWritten, s.WriteCalls, s.OffloadSent, s.WriteFailures, k)
	switch {
	case delivered+drops == n:
	case offload && delivered+drops < n && delivered+k.udp["InErrors"]+gsoMaxSegsProbe*k.devDrop >= n:
		t.Logf("the device dropped %d packets, GSO packets among them: %d datagrams in them beyond one each",
			k.devDrop, n-delivered-drops)
	default:
		t.Errorf("delivered %d + dropped %d = %d, want %d: datagrams unaccounted for", delivered, drops, delivered+drops, n)
	}
	if k.udp["InDatagrams"] != delivered {
		t.Errorf("the kernel counts %d datagrams received by sockets, the reader %d", k.udp["InDatagrams"], delivered)
	}
	if s.DatagramsWritten != uint64(n) || s.WriteFailures != 0 {
		t.Errorf("Stats = %+v, want %d written and no failure", s, n)
	}
}

func TestAccountingReadDatagrams(t *testing.T) {
	t.Run("ReadAll", func(t *testing.T) { accountReads(t, false) })
	t.Run("CloseWithDatagramsBuffered", func(t *testing.T) { accountReads(t, true) })
}

// accountReads sends from plain senders to a batchconn reader. Every
// datagram the kernel delivered to the socket is returned by ReadFrom;
// or, when the reader stops early, is in the ring (discarded at Close,
// as the docs say) or still in the kernel's buffer.
func accountReads(t *testing.T, stopEarly bool) {
	ns := newLoopbackNetns(t)
	uc := ns.listenLoopback(t)
	if err := uc.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	c := New(uc, &Config{BatchSize: 32})
	defer c.Close()
	requireBatching(t, c)
	const senders, size = 2, 500
	each := 10000
	if testing.Short() {
		each = 2000
	}
	n := int64(senders * each)
	var peers []*net.UDPConn
	for range senders {
		p := ns.listenLoopback(t)
		defer p.Close()
		peers = append(peers, p)
	}
	before := ns.snmp(t)

	order := newOrderCheck(senders)
	var returned atomic.Int64
	stop := make(chan struct{})
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		p := make([]byte, 2000)
		for {
			select {
			case <-stop:
				return
			default:
			}
			m, _, err := c.ReadFrom(p)
			if err != nil {
				return
			}
			order.see(p[:m])
			returned.Add(1)
		}
	}()
	var wg sync.WaitGroup
	for s, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := p.WriteTo(accountingPayload(s, i, size), c.LocalAddr()); err != nil {
					t.Errorf("sender %d: %v", s, err)
					return
				}
				if stopEarly && s == 0 && i == each/2 {
					close(stop) // the reader stops after its current read
				}
			}
		}()
	}
	wg.Wait()
	if !stopEarly {
		k, got := settle(t, ns, before, n, returned.Load)
		c.SetReadDeadline(time.Now().Add(-time.Second)) // wakes the reader
		<-rdone
		order.check(t)
		s := c.Stats()
		drops := k.udp["InErrors"] + k.devDrop
		t.Logf("sent %d to batchconn: ReadFrom returned %d + kernel drops %d (InErrors %d, RcvbufErrors %d; device drops %d) = %d; "+
			"Stats: DatagramsRead %d in %d calls; kernel %v", n, got, drops, k.udp["InErrors"], k.udp["RcvbufErrors"], k.devDrop, got+drops,
			s.DatagramsRead, s.ReadCalls, k)
		if got+drops != n {
			t.Errorf("returned %d + dropped %d = %d, want %d", got, drops, got+drops, n)
		}
		if s.DatagramsRead != uint64(got) || k.udp["InDatagrams"] != got {
			t.Errorf("Stats.DatagramsRead %d, kernel InDatagrams %d: want both %d, what ReadFrom returned", s.DatagramsRead, k.udp["InDatagrams"], got)
		}
		return
	}

	// The reader stopped half way: what the kernel delivered is what
	// ReadFrom returned, what the ring holds, and what the kernel still
	// buffers. A past deadline wakes the reader if it waits; it fails
	// without touching the ring.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	<-rdone
	// Reads until the ring holds datagrams: the kernel's buffer is full,
	// and the ring has grown under the flood.
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	p := make([]byte, 2000)
	var inRing int64
	for range 5 {
		c.b().r.mu.Lock()
		inRing = int64(c.b().r.n - c.b().r.head)
		c.b().r.mu.Unlock()
		if inRing > 0 {
			break
		}
		m, _, err := c.ReadFrom(p)
		if err != nil {
			t.Fatal(err)
		}
		order.see(p[:m])
		returned.Add(1)
	}
	if inRing == 0 {
		t.Fatal("premise: the ring holds no datagram to discard at Close")
	}
	s := c.Stats()
	got := returned.Load()
	// Drain the kernel's buffer through the socket itself.
	var inKernel int64
	for {
		uc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		m, _, err := uc.ReadFrom(p)
		if err != nil {
			break
		}
		if m != size {
			t.Fatalf("a %d-byte datagram in the kernel's buffer", m)
		}
		inKernel++
	}
	order.check(t)
	k := ns.snmp(t).sub(before)
	drops := k.udp["InErrors"] + k.devDrop
	t.Logf("sent %d: ReadFrom returned %d, the ring held %d at Close, the kernel %d; dropped %d (RcvbufErrors %d); Stats.DatagramsRead %d",
		n, got, inRing, inKernel, drops, k.udp["RcvbufErrors"], s.DatagramsRead)
	if s.DatagramsRead != uint64(got+inRing) {
		t.Errorf("Stats.DatagramsRead = %d, want %d returned + %d in the ring", s.DatagramsRead, got, inRing)
	}
	if got+inRing+inKernel+drops != n {
		t.Errorf("returned %d + ring %d + kernel %d + dropped %d = %d, want %d",
			got, inRing, inKernel, drops, got+inRing+inKernel+drops, n)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if _, _, err := c.ReadFrom(p); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrom after Close = %v: the ring's datagrams must be discarded", err)
	}
}
