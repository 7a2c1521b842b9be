package batchconn

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The soak: an echo workload with many concurrent clients, plain and
// batchconn, against batchconn echo servers, with faults injected, every
// datagram's content and sequence checked, and memory and goroutines
// watched. `go test` runs a short form (~3s); `go test -run TestSoak
// -soak=5m` the long one.

var soakFor = flag.Duration("soak", 0, "how long TestSoakEcho runs (e.g. -soak=5m); 0: a short run of ~3s (1s with -short)")

// A soakNet is where the soak runs: sockets, and the kernel's count of
// the datagrams it dropped there.
type soakNet struct {
	listen func(t *testing.T) *net.UDPConn
	drops  func(t *testing.T) int64 // nil where the kernel's drops cannot be told apart
}

// soakNetwork, where set (Linux), gives the soak a network namespace of
// its own, whose counters only the soak moves.
var soakNetwork func(t *testing.T) soakNet

func loopbackNet() soakNet {
	return soakNet{listen: func(t *testing.T) *net.UDPConn {
		t.Helper()
		return listenLoopback(t)
	}}
}

const (
	soakClients = 32
	soakWindow  = 4 // echoes each client waits for at most
	soakJunkID  = 0xffffffff
)

// soakPayload is datagram seq of client id: its size varies with seq.
func soakPayload(id, seq uint32) []byte {
	p := make([]byte, 8+int(seq*37%1200))
	binary.BigEndian.PutUint32(p, id)
	binary.BigEndian.PutUint32(p[4:], seq)
	for i := 8; i < len(p); i++ {
		p[i] = byte(id*7 + seq + uint32(i))
	}
	return p
}

type soakStats struct {
	sent, echoed, lost, churns            atomic.Int64
	readInterrupts, flushes, badWrites    atomic.Int64
	junkSent, junkEchoed, serverDatagrams atomic.Int64

	mu   sync.Mutex
	errs []string
}

func (s *soakStats) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func TestSoakEcho(t *testing.T) {
	dur := 3 * time.Second
	if testing.Short() {
		dur = time.Second
	}
	if *soakFor > 0 {
		dur = *soakFor
	}
	sn := loopbackNet()
	if soakNetwork != nil {
		sn = soakNetwork(t)
	}
	g0 := runtime.NumGoroutine()
	var drops0 int64
	if sn.drops != nil {
		drops0 = sn.drops(t)
	}
	st := &soakStats{}

	// Two echo servers: defaults, and small batches without offload.
	var servers []*PacketConn
	for _, cfg := range []*Config{nil, {BatchSize: 16, NoOffload: true}} {
		s := New(sn.listen(t), cfg)
		s.SetReadBuffer(4 << 20) // the kernel caps it; more room for bursts
		servers = append(servers, s)
	}
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakServer(s, st)
		}()
	}

	stop := make(chan struct{})
	var cwg sync.WaitGroup
	for id := range soakClients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			soakClient(t, sn, uint32(id), servers[id%len(servers)].LocalAddr(), stop, st)
		}()
	}

	// A junk peer: maximum-size datagrams now and then, echoed back to it.
	junk := sn.listen(t)
	wg.Add(1)
	go func() {
		defer wg.Done()
		p := make([]byte, 70000)
		for {
			n, _, err := junk.ReadFrom(p)
			if err != nil {
				return
			}
			if n != maxPayload4 || binary.BigEndian.Uint32(p) != soakJunkID {
				st.fail("junk echo of %d bytes, id %x", n, binary.BigEndian.Uint32(p))
			}
			st.junkEchoed.Add(1)
		}
	}()

	// Faults, in turn, every 10ms, until the clients stop.
	fdone := make(chan struct{})
	go func() {
		defer close(fdone)
		big := seq(maxPayload4)
		binary.BigEndian.PutUint32(big, soakJunkID)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			s := servers[i%len(servers)]
			switch i % 4 {
			case 0: // a read deadline that passes under a blocked ReadFrom
				s.SetReadDeadline(time.Now())
				st.readInterrupts.Add(1)
			case 1: // Flush from another goroutine
				if err := s.Flush(); err != nil {
					st.fail("Flush = %v", err)
				}
				st.flushes.Add(1)
			case 2: // writes plain refuses, among the echoes
				if _, err := s.WriteTo([]byte("x"), nil); err == nil {
					st.fail("WriteTo(nil address) succeeded")
				}
				if _, err := s.WriteTo(make([]byte, maxPayload4+1), junk.LocalAddr()); err == nil {
					st.fail("WriteTo(oversize) succeeded")
				}
				if _, err := s.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv6loopback, Port: 9}); err == nil {
					st.fail("WriteTo(IPv6 address on an IPv4 socket) succeeded")
				}
				st.badWrites.Add(3)
			case 3: // a maximum-size datagram
				if _, err := junk.WriteTo(big, s.LocalAddr()); err == nil {
					st.junkSent.Add(1)
				}
			}
		}
	}()

	// Memory and goroutines once warm, and at the end.
	time.Sleep(dur / 4)
	warm, gWarm := memNow(true), runtime.NumGoroutine()
	time.Sleep(dur - dur/4)
	end, gEnd := memNow(true), runtime.NumGoroutine()
	close(stop)
	cwg.Wait()
	<-fdone
	// The junk peer's last echo may still be on its way: wait for it a
	// little, then close everything.
	for i := 0; i < 100 && st.junkEchoed.Load() < st.junkSent.Load(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range servers {
		if err := s.Close(); err != nil {
			t.Errorf("server Close = %v", err)
		}
	}
	junk.Close()
	wg.Wait()
	gAfter := runtime.NumGoroutine()
	for i := 0; i < 500 && gAfter > g0; i++ {
		time.Sleep(10 * time.Millisecond)
		gAfter = runtime.NumGoroutine()
	}

	lost := st.lost.Load() + st.junkSent.Load() - st.junkEchoed.Load()
	moved := 2*st.echoed.Load() + st.junkSent.Load() + st.junkEchoed.Load()
	drops, dropsText := int64(-1), "not counted (no network of its own)"
	if sn.drops != nil {
		drops = sn.drops(t) - drops0
		dropsText = strconv.FormatInt(drops, 10)
	}
	t.Logf("soak of %v, %d clients (half plain, half batchconn) on 2 batchconn echo servers: "+
		"datagrams moved %d (%d echoed, %d max-size junk sent, %d echoed back), lost %d, kernel drops %s; "+
		"faults injected: %d read deadlines passed under a blocked read, %d concurrent Flush, %d refused writes, %d client sockets replaced",
		dur, soakClients, moved, st.echoed.Load(), st.junkSent.Load(), st.junkEchoed.Load(), lost, dropsText,
		st.readInterrupts.Load(), st.flushes.Load(), st.badWrites.Load(), st.churns.Load())
	for _, s := range servers {
		t.Logf("server %v: %+v", s.LocalAddr(), s.Stats())
	}
	t.Logf("heap in use once warm %.2f MiB, at the end %.2f MiB; Sys %.2f MiB, %.2f MiB; goroutines %d before, %d warm, %d at the end, %d after",
		mb(warm.heapInuse), mb(end.heapInuse), mb(warm.sys), mb(end.sys), g0, gWarm, gEnd, gAfter)

	st.mu.Lock()
	for _, e := range st.errs {
		t.Error(e)
	}
	st.mu.Unlock()
	if st.echoed.Load() == 0 {
		t.Fatal("nothing was echoed")
	}
	switch {
	case drops < 0 && lost != 0:
		t.Errorf("%d datagrams lost", lost)
	case drops >= 0 && lost > drops:
		t.Errorf("%d datagrams lost, the kernel dropped %d: %d unaccounted for", lost, drops, lost-drops)
	}
	// Each conn runs one goroutine of its own (its timer, from its first
	// queued write): the count moves as clients replace their sockets,
	// within this bound.
	if gMax := g0 + 2*len(servers) + soakClients + soakClients/2 + 3; gWarm > gMax || gEnd > gMax {
		t.Errorf("%d goroutines once warm, %d at the end; at most %d expected", gWarm, gEnd, gMax)
	}
	if gAfter > g0 {
		t.Errorf("%d goroutines before, %d after everything was closed", g0, gAfter)
	}
	if grow := int64(end.heapInuse) - int64(warm.heapInuse); grow > 8<<20 {
		t.Errorf("heap in use grew %.2f MiB from warm to the end", mb(uint64(grow)))
	}
}

// soakServer echoes every datagram to its sender until the conn closes.
// A passed read deadline (an injected fault) is cleared and reading goes
// on: no datagram may be lost to it.
func soakServer(s *PacketConn, st *soakStats) {
	p := make([]byte, maxDatagram)
	for {
		n, from, err := s.ReadFromUDPAddrPort(p)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.SetReadDeadline(time.Time{})
			continue
		case errors.Is(err, net.ErrClosed):
			return
		case err != nil:
			st.fail("server ReadFrom = %v", err)
			return
		}
		st.serverDatagrams.Add(1)
		if _, err := s.WriteToUDPAddrPort(p[:n], from); err != nil {
			st.fail("server echo of %d bytes to %v = %v", n, from, err)
		}
	}
}

// soakClient keeps soakWindow datagrams in flight to its server and
// checks each echo: from the server, the next in sequence, intact. A gap
// is a loss; an echo from before the last one, a duplicate or a
// reordering, which fails the test. Some clients replace their socket now
// and then, with nothing in flight.
func soakClient(t *testing.T, sn soakNet, id uint32, server net.Addr, stop <-chan struct{}, st *soakStats) {
	open := func() net.PacketConn {
		uc := sn.listen(t)
		if id%2 == 0 {
			return uc
		}
		return New(uc, &Config{ReadSlotSize: 2048}) // small datagrams: a small ring
	}
	conn := open()
	defer func() { conn.Close() }()
	var next, expect uint32 // next to send, next echo due
	p := make([]byte, 2048)
	churn := id%8 == 1
	var lastChurn uint32
	for {
		stopping := false
		select {
		case <-stop:
			stopping = true
		default:
		}
		// A client due for a new socket lets its window drain first.
		draining := churn && expect-lastChurn >= 500
		if draining && expect == next {
			conn.Close()
			conn = open()
			st.churns.Add(1)
			lastChurn, draining = expect, false
		}
		for !stopping && !draining && next-expect < soakWindow {
			if _, err := conn.WriteTo(soakPayload(id, next), server); err != nil {
				st.fail("client %d: WriteTo %d = %v", id, next, err)
				return
			}
			next++
			st.sent.Add(1)
		}
		if expect == next {
			if stopping {
				return
			}
			continue
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := conn.ReadFrom(p)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			st.lost.Add(int64(next - expect)) // all in flight: gone
			expect = next
			continue
		}
		if err != nil {
			st.fail("client %d: ReadFrom = %v", id, err)
			return
		}
		if from.String() != server.String() {
			st.fail("client %d: a datagram from %v", id, from)
			continue
		}
		if n < 8 || binary.BigEndian.Uint32(p) != id {
			st.fail("client %d: someone else's datagram (%d bytes)", id, n)
			continue
		}
		got := binary.BigEndian.Uint32(p[4:])
		switch {
		case got < expect:
			st.fail("client %d: echo %d after %d: duplicated or reordered", id, got, expect-1)
			continue
		case got >= next:
			st.fail("client %d: echo %d never sent", id, got)
			continue
		case string(p[:n]) != string(soakPayload(id, got)):
			st.fail("client %d: echo %d corrupt", id, got)
		}
		st.lost.Add(int64(got - expect))
		expect = got + 1
		st.echoed.Add(1)
	}
}
