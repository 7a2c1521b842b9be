package batchconn

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A flood of maximum-size datagrams: memory stays within what the docs
// say one conn holds (BatchSize × ReadSlotSize for the ring, QueueBytes
// for the queue) and the read pool keeps, and no goroutine is left.

func TestFloodOfMaxSizeDatagramsStaysWithinBound(t *testing.T) {
	ns := newLoopbackNetns(t)
	peer, uc := ns.listenLoopback(t), ns.listenLoopback(t)
	defer peer.Close()
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	g0 := runtime.NumGoroutine()
	before := memNow(true)
	k0 := ns.snmp(t)
	c := New(uc, nil)
	requireBatching(t, c)
	// The conn's ring while it holds datagrams and its queue (doc.go,
	// Memory), and one more ring's block: the reader, which goes on while
	// memNow empties the read pool, may give one back before the heap is
	// read.
	bound := uint64(2*c.b().s.cfg.BatchSize*c.b().s.cfg.ReadSlotSize + c.b().s.cfg.QueueBytes)

	var sent, read, echoed, bad atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the peer floods
		defer wg.Done()
		p := seq(maxPayload4)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := peer.WriteTo(p, c.LocalAddr()); err == nil {
				sent.Add(1)
			}
		}
	}()
	go func() { // the conn reads, and echoes one in four at full size
		defer wg.Done()
		p := make([]byte, maxDatagram)
		want := seq(maxPayload4)
		for {
			n, from, err := c.ReadFrom(p)
			if err != nil {
				return
			}
			if n != maxPayload4 || p[0] != want[0] || p[n/2] != want[n/2] || p[n-1] != want[n-1] {
				bad.Add(1)
			}
			if read.Add(1)%4 == 0 {
				if _, err := c.WriteTo(p[:n], from); err == nil {
					echoed.Add(1)
				}
			}
		}
	}()

	var peak memFigures
	maxG := 0
	var mid memFigures
	start := time.Now()
	for i := 0; time.Since(start) < dur && i < 1000; i++ {
		time.Sleep(50 * time.Millisecond)
		m := memNow(false)
		peak.heapInuse, peak.sys = max(peak.heapInuse, m.heapInuse), max(peak.sys, m.sys)
		maxG = max(maxG, runtime.NumGoroutine())
		if mid == (memFigures{}) && time.Since(start) > dur/3 {
			mid = memNow(true)
		}
	}
	end := memNow(true) // the conn is open: it holds its ring and queue
	close(stop)
	c.Close()
	peer.Close()
	wg.Wait()
	slots := c.b().r.want // the reader is gone
	after := memNow(true) // the conn is no longer used: what is left is a leak
	g1 := runtime.NumGoroutine()
	for i := 0; i < 500 && g1 > g0; i++ {
		time.Sleep(10 * time.Millisecond)
		g1 = runtime.NumGoroutine()
	}
	k := ns.snmp(t).sub(k0)

	t.Logf("flood of %d-byte datagrams for %v: sent %d, read %d (%d MB), echoed %d; kernel: %v",
		maxPayload4, dur, sent.Load(), read.Load(), read.Load()*maxPayload4/mib, echoed.Load(), k)
	t.Logf("documented bound %.2f MiB; heap in use: before %.2f MiB, a third in %.2f, at the end %.2f, peak %.2f, after Close %.2f; "+
		"Sys: before %.2f, a third in %.2f, at the end %.2f, peak %.2f; goroutines: before %d, at most %d, after %d",
		mb(bound), mb(before.heapInuse), mb(mid.heapInuse), mb(end.heapInuse), mb(peak.heapInuse), mb(after.heapInuse),
		mb(before.sys), mb(mid.sys), mb(end.sys), mb(peak.sys), g0, maxG, g1)

	if read.Load() == 0 || bad.Load() > 0 {
		t.Fatalf("read %d datagrams, %d of them wrong", read.Load(), bad.Load())
	}
	// What the conn holds live is its ring, which grows with the load up
	// to BatchSize slots, and its queue: a third in and at the end alike.
	for _, m := range []struct {
		when string
		at   memFigures
	}{{"a third in", mid}, {"at the end", end}} {
		if grow := int64(m.at.heapInuse) - int64(before.heapInuse); grow > int64(bound)+2*mib {
			t.Errorf("live heap %.2f MiB above the start %s, with the conn open; the docs bound what it holds at %.2f MiB",
				mb(uint64(grow)), m.when, mb(bound))
		}
	}
	if slots > defaultBatchSize {
		t.Errorf("the ring has %d slots, more than BatchSize %d", slots, defaultBatchSize)
	}
	// Garbage (one address per ReadFrom) at most doubles the heap
	// before a collection (GOGC=100).
	if grow := int64(peak.heapInuse) - int64(before.heapInuse); grow > 2*int64(bound)+16*mib {
		t.Errorf("heap in use peaked %.2f MiB above the start", mb(uint64(grow)))
	}
	if grow := int64(end.sys) - int64(before.sys); grow > 2*int64(bound)+32*mib {
		t.Errorf("memory from the OS grew %.2f MiB", mb(uint64(grow)))
	}
	if maxG > g0+4 {
		t.Errorf("%d goroutines during the flood, %d before: the conn may start two (its timer, and the process's watcher of timers, timeridle.go), the test two", maxG, g0)
	}
	if g1 > g0 {
		t.Errorf("%d goroutines after Close, %d before", g1, g0)
	}
	if grow := int64(after.heapInuse) - int64(before.heapInuse); grow > 2*mib {
		t.Errorf("heap in use %.2f MiB above the start after Close", mb(uint64(grow)))
	}
}
